"""The inbound journal: one row for every email that came in, what it was and what was done,
and the copies kept for a person to look at.

The row keeps no address and no body text: the kind, the reason in safe words, and links to
the delivery, subscriber and ward it concerned. A SHA-256 of the raw bytes makes intake
idempotent: an MTA that hands the same message over twice (a timeout after our 250) or an
IMAP move that failed after handling does not act twice. Soft bounces are counted here.

A held copy (`inbound.held_dir`/review/ or dead-letter/) is the whole email, addresses and
words. Each is linked to the subscribers it names (every subscriber whose address appears in
it, and the one a genuine token matched), so that erasing a resident deletes their copies.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import cast

from sqlalchemy import (
    ForeignKey,
    Index,
    Insert,
    Select,
    String,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from alerts.inbound.kinds import Kind, Severity
from subscriptions.base import Base, utcnow

# Anything shaped like an address, wherever it is in a held copy (headers, a report, a quote).
# Starting only where a run of local-part characters starts keeps the scan linear: otherwise
# every line of a base64 photo is tried from each of its 76 characters (24 MB took 19 s).
_ADDRESS = re.compile(r"(?<![\w.!#$%&'*+/=?^`{|}~-])[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
MAX_ADDRESSES_LOOKED_UP = 1000
_LOOKUP_CHUNK = 500


class Via(StrEnum):
    LMTP = "lmtp"
    IMAP = "imap"
    FILE = "file"
    WEBHOOK = "webhook"  # a provider's event (a complaint through record_complaint)


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


class HeldCopyOwner(Base):
    """A subscriber a held copy names: erasing them deletes the copy."""

    __tablename__ = "inbound_held_owners"

    inbound_id: Mapped[int] = mapped_column(
        ForeignKey("inbound_messages.id", ondelete="CASCADE"), primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True, index=True)


def content_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


@functools.cache
def _seen_query() -> Select[InboundRecord]:
    # Built once: every message asks it, and building it cost as much as running it.
    return select(InboundRecord).where(InboundRecord.content_hash == bindparam("digest"))


def already_seen(session: Session, digest: str) -> InboundRecord | None:
    return session.scalars(_seen_query(), {"digest": digest}).first()


@functools.cache
def _seen_among_query() -> Select[InboundRecord]:
    return select(InboundRecord).where(
        InboundRecord.content_hash.in_(bindparam("digests", expanding=True)))


def seen_among(session: Session, digests: list[str]) -> dict[str, InboundRecord]:
    """`already_seen` for several messages in one read: the rows of those handled before."""
    found = session.scalars(_seen_among_query(), {"digests": digests})
    return {record.content_hash: record for record in found}


@functools.cache
def _journal_insert() -> Insert:
    table = cast(Table, InboundRecord.__table__)
    return insert(table).returning(table.c.id)


def journal(session: Session, fields: dict[str, object]) -> int:
    """Insert a journal row (`InboundRecord`'s fields) at once, in the session's transaction;
    its id. A Core INSERT: through the session (an object flushed, or even an ORM insert
    statement) it cost three times as much. It names only rows already written."""
    ident: int = session.connection().execute(_journal_insert(), fields).scalar_one()
    return ident


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


def hold(held_dir: str, folder: str, raw: bytes, reason: str, digest: str,
         now: datetime) -> str:
    """Keep a copy for a person to look at: NAME.eml and NAME.reason.txt; return the path."""
    directory = Path(held_dir).absolute() / folder
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{now.astimezone(UTC).strftime('%Y%m%dT%H%M%S')}-{digest[:16]}"
    for suffix, data in ((".reason.txt", (reason + "\n").encode()), (".eml", raw)):
        partial = directory / f".{name}{suffix}.part"
        partial.write_bytes(data)
        os.replace(partial, directory / f"{name}{suffix}")
    return str(directory / f"{name}.eml")


def _addresses_in(raw: bytes) -> list[str]:
    found: dict[str, None] = {}
    for match in _ADDRESS.finditer(raw.decode("utf-8", "replace").lower()):
        found[match.group()] = None
        if len(found) >= MAX_ADDRESSES_LOOKED_UP:
            break
    return list(found)


def record_owners(session: Session, record: int, raw: bytes,
                  matched: int | None = None) -> None:
    """Link the held copy journal row `record` keeps to the subscribers whose addresses
    appear in it (the first `MAX_ADDRESSES_LOOKED_UP` different ones), and to `matched`."""
    from subscriptions.subscribers import Subscriber  # here: reading the journal needs none

    owners = {matched} if matched is not None else set()
    addresses = _addresses_in(raw)
    for start in range(0, len(addresses), _LOOKUP_CHUNK):
        owners.update(session.scalars(select(Subscriber.id).where(
            Subscriber.email.in_(addresses[start:start + _LOOKUP_CHUNK]))))
    session.add_all(HeldCopyOwner(inbound_id=record, subscriber_id=ident)
                    for ident in sorted(owners))
    session.flush()


def erase_held_copies(session: Session, subscriber_id: int) -> int:
    """Delete the held copies that name the subscriber (the .eml and its .reason.txt), for
    everyone they name; their journal rows stay, without a copy. Return how many."""
    records = session.scalars(select(InboundRecord).where(InboundRecord.id.in_(
        select(HeldCopyOwner.inbound_id).where(HeldCopyOwner.subscriber_id == subscriber_id)
    ))).all()
    for record in records:
        if record.held_as is not None:
            copy = Path(record.held_as)
            copy.unlink(missing_ok=True)
            copy.with_suffix(".reason.txt").unlink(missing_ok=True)
            record.held_as = None
    if records:
        session.execute(delete(HeldCopyOwner)
                        .where(HeldCopyOwner.inbound_id.in_([r.id for r in records]))
                        .execution_options(synchronize_session=False))
    session.flush()
    return len(records)
