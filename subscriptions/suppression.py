"""The suppression list: addresses that are never sent to (hard bounce, complaint, erasure,
an operator's decision), checked when messages are fanned out and again when sent.

Each entry is keyed by a SHA-256 hash of the normalised address, so that an entry can
outlive the address itself: after erasure only the hash is kept, and a later import of the
same address is still recognised and refused. The one way back from an erasure is the
resident's own: a sign-up at the web form may add the address again, pending, and its
confirmation link, once pressed, lifts the entry (`lift_erasure`); a bounce or a complaint
is lifted only by an operator.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum

from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from subscriptions.addresses import normalise_address
from subscriptions.base import Base, utcnow


class SuppressionReason(StrEnum):
    HARD_BOUNCE = "hard_bounce"
    COMPLAINT = "complaint"
    ERASURE = "erasure"
    MANUAL = "manual"


class Suppression(Base):
    __tablename__ = "suppressions"

    address_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Kept so an operator can read the list; erasure clears it and keeps the hash.
    email: Mapped[str | None] = mapped_column(String(320), default=None, index=True)
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def address_hash(email: str) -> str:
    return normal_address_hash(normalise_address(email))


def normal_address_hash(normal: str) -> str:
    """`address_hash` of an address already in its stored form (checking it again costs
    more than the hash, and an import hashes every row)."""
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()


def suppress(session: Session, email: str, reason: SuppressionReason, detail: str = "", *,
             keep_address: bool = True, now: datetime | None = None) -> Suppression:
    """Add the address (or refresh its entry); the first reason recorded is kept."""
    key = address_hash(email)
    entry = session.get(Suppression, key)
    if entry is None:
        entry = Suppression(address_hash=key, reason=reason, detail=detail[:300],
                            created_at=now or utcnow())
        session.add(entry)
    entry.email = normalise_address(email) if keep_address else None
    session.flush()
    return entry


def unsuppress(session: Session, email: str) -> bool:
    entry = session.get(Suppression, address_hash(email))
    if entry is None:
        return False
    session.delete(entry)
    session.flush()
    return True


def erasure_only(entry: Suppression) -> bool:
    """Whether an erasure alone put the entry there: its reason, and no address in it (a
    bounce or a complaint since, recorded on the same entry, writes the address back)."""
    return entry.reason == SuppressionReason.ERASURE and entry.email is None


def lift_erasure(session: Session, email: str) -> bool:
    """Remove the address's entry if an erasure alone put it there (a bounce or a complaint
    stays); return whether one went. For a resident who erased their data and has since
    confirmed a new subscription with the link mailed to them: new consent, asked for."""
    entry = session.get(Suppression, address_hash(email))
    if entry is None or not erasure_only(entry):
        return False
    session.delete(entry)
    session.flush()
    return True


def is_suppressed(session: Session, email: str) -> bool:
    return session.get(Suppression, address_hash(email)) is not None


def list_suppressions(session: Session) -> list[Suppression]:
    return list(session.scalars(select(Suppression).order_by(Suppression.created_at)))
