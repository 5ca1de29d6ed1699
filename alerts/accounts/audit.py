"""The audit log: every change a person makes, who made it, what it was and when.

Entries name records by id ("subscription 42", "ward RIV"), never a resident's address or
words, so the log can be read by anyone who runs the service.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from subscriptions.base import Base, utcnow


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None, index=True)
    # The staff address at the time (kept when the account goes): who did it.
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200), default="")
    detail: Mapped[str] = mapped_column(String(500), default="")


def record(session: Session, actor: str, action: str, target: str = "", detail: str = "", *,
           user_id: int | None = None, now: datetime | None = None) -> AuditEntry:
    entry = AuditEntry(at=now or utcnow(), user_id=user_id, actor=actor[:320],
                       action=action[:64], target=target[:200], detail=detail[:500])
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True)
class AuditRow:
    at: datetime
    actor: str
    action: str
    target: str
    detail: str


def recent(session: Session, *, limit: int = 200) -> list[AuditRow]:
    return [AuditRow(e.at, e.actor, e.action, e.target, e.detail) for e in session.scalars(
        select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit))]
