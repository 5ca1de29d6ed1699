"""The inbound journal: one row for every email that came in, what it was and what was done.

The row keeps no address and no body text: the kind, the reason in safe words, and links to
the delivery, subscriber and ward it concerned. A SHA-256 of the raw bytes makes intake
idempotent: an MTA that hands the same message over twice (a timeout after our 250) or an
IMAP move that failed after handling does not act twice. Soft bounces are counted here.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from alerts.inbound.classify import Kind, Severity
from subscriptions.base import Base, utcnow


class Via(StrEnum):
    LMTP = "lmtp"
    IMAP = "imap"
    FILE = "file"


class InboundRecord(Base):
    __tablename__ = "inbound_messages"
    __table_args__ = (Index("ix_inbound_subscriber_kind", "subscriber_id", "kind", "received_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    via: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str | None] = mapped_column(String(8), default=None)
    status: Mapped[str | None] = mapped_column(String(16), default=None)
    action: Mapped[str] = mapped_column(String(200), default="")
    reason: Mapped[str] = mapped_column(String(300), default="")
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL"), default=None)
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL"), default=None)
    ward_id: Mapped[int | None] = mapped_column(
        ForeignKey("wards.id", ondelete="SET NULL"), default=None)
    # Where a copy was kept for a person to look at (review/ or dead-letter/), if anywhere.
    held_as: Mapped[str | None] = mapped_column(String(300), default=None)


def content_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def already_seen(session: Session, digest: str) -> InboundRecord | None:
    return session.scalars(
        select(InboundRecord).where(InboundRecord.content_hash == digest)).first()


def soft_bounces_since(session: Session, subscriber_id: int, *, days: int,
                       now: datetime) -> int:
    """Soft bounces recorded for the subscriber within the last `days` days."""
    return session.scalar(
        select(func.count()).select_from(InboundRecord).where(
            InboundRecord.subscriber_id == subscriber_id,
            InboundRecord.kind == Kind.BOUNCE,
            InboundRecord.severity == Severity.SOFT,
            InboundRecord.received_at >= now - timedelta(days=days),
        )
    ) or 0
