"""Was this useful? Residents' votes on posts, counted per post without knowing who voted.

Each digest and alert carries, per post, a "useful" and a "not useful" link. The link is
signed and holds the post, the message and a random ballot number made when the email was
sent and kept nowhere else: a vote stores only the hash of that number (so the same link
cannot count twice), the post, the message, the answer and the time.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from subscriptions.base import Base, utcnow


class UsefulVote(Base):
    __tablename__ = "useful_votes"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), default=None
    )
    # SHA-256 of the ballot number in the link: one vote per link, and nothing more.
    ballot: Mapped[str] = mapped_column(String(64), unique=True)
    useful: Mapped[bool]
    voted_at: Mapped[datetime] = mapped_column(default=utcnow)
