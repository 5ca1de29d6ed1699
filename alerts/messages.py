"""Messages: a digest or alert rendered once for a ward, and the items it carried."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from subscriptions.base import Base, utcnow
from subscriptions.wards import Ward


class MessageKind(StrEnum):
    DIGEST = "digest"
    POST = "post"
    ALERT = "alert"
    CONFIRM = "confirm"  # the double opt-in email: the one message a pending address gets
    # The "my data" link: goes to a resident whatever the state of their subscriptions,
    # since leaving does not end their right to see or erase what is held.
    DATA_REQUEST = "data_request"


# Rendered bodies hold these markers where each recipient's own signed links go;
# delivery swaps them in, so a message is rendered once however many it reaches.
UNSUBSCRIBE_MARK = "__ALERTS_UNSUBSCRIBE_URL__"
PREFERENCES_MARK = "__ALERTS_PREFERENCES_URL__"

MAX_SUBJECT = 300


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    ward_id: Mapped[int] = mapped_column(ForeignKey("wards.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(MAX_SUBJECT))
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    calendar: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    ward: Mapped[Ward] = relationship()


class MessageItem(Base):
    """Which items a message carried: a ward's next digest holds only items not yet sent."""

    __tablename__ = "message_items"

    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    item_id: Mapped[int] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True, index=True
    )
