"""The outbox: one Delivery row per (message, subscriber), or per (message, staff address)
for staff mail, claimed with a lease, retried.

A sender claims due rows by moving them to `sending` with a lease in one atomic
statement, so two senders never take the same row; a sender that dies leaves rows whose
lease runs out and which the next claim takes again. Each lease also names its holder
(`lease_holder`: host, pid and what tells that process from a later one with the same pid),
so a sender starting on the same host ends at once the leases of a holder that is provably
gone (`end_leases_of_the_dead`) instead of waiting `mail.lease_seconds` for them.
"""

from __future__ import annotations

import functools
import os
import random
import socket
from collections.abc import Collection
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

from sqlalchemy import (
    CheckConstraint,
    Connection,
    ForeignKey,
    Index,
    Select,
    String,
    Text,
    UniqueConstraint,
    and_,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql import ColumnElement

from alerts.mail.messages import Message
from subscriptions.base import NEVER_REUSED, Base, id_never_reused, utcnow
from subscriptions.links import nonce_column


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("message_id", "subscriber_id"),
        Index("ix_deliveries_due", "status", "next_attempt_at"),
        # The claim order: urgent first, then the longest waiting.
        Index("ix_deliveries_claim", "status", "priority", "next_attempt_at"),
        Index("ix_deliveries_lease", "status", "lease_until"),
        # A subscriber, or a staff address (a ward team's, an account's): never both.
        CheckConstraint("(subscriber_id IS NULL) <> (recipient IS NULL)",
                        name="one_recipient"),
        NEVER_REUSED,
    )

    id: Mapped[int] = id_never_reused()
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    # Staff mail's address (see STAFF_KINDS); None for a subscriber's row. Never logged.
    recipient: Mapped[str | None] = mapped_column(String(320), default=None)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.QUEUED)
    # Urgent alerts go ahead of digests already queued.
    priority: Mapped[int] = mapped_column(default=0, server_default="0")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    # Who holds the lease: "host:pid:identity" (see lease_holder); None when not sending.
    lease_holder: Mapped[str | None] = mapped_column(String(255), default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The reply+ and bounces+ addresses of this email are bound to it (see links).
    nonce: Mapped[str] = nonce_column()


def due_condition(now: datetime) -> ColumnElement[bool]:
    """Rows a claim would take: queued and due, or held by a sender whose lease ran out."""
    return or_(
        and_(Delivery.status == DeliveryStatus.QUEUED, Delivery.next_attempt_at <= now),
        and_(Delivery.status == DeliveryStatus.SENDING, Delivery.lease_until < now),
    )


def any_due(session: Session, now: datetime) -> bool:
    """The cheap question an idle sender asks before claiming."""
    return session.scalar(select(Delivery.id).where(due_condition(now)).limit(1)) is not None


def lease_holder(pid: int | None = None) -> str:
    """The holder a lease names: "host:pid:identity", for this process unless `pid` is given.

    The identity tells the process from a later one given the same pid: on Linux
    "<boot id>/<pid namespace>/<start time>" (the start in clock ticks after boot, from
    /proc/<pid>/stat); "" where /proc cannot say.
    """
    pid = os.getpid() if pid is None else pid
    where, started = _this_boot_and_namespace(), _start_ticks(pid)
    identity = f"{where}/{started}" if where and started is not None else ""
    return f"{_host()}:{pid}:{identity}"


def holder_is_gone(holder: str) -> bool:
    """True only when the holder provably runs no more: it ran on this host, in this boot and
    pid namespace, and its pid is free, a zombie, or now another process (a different start
    time). Without an identity to compare, only a free pid proves it. A holder on another
    host, or one that may still run, keeps its lease."""
    host, pid_text, identity = ["", "", "", *holder.rsplit(":", 2)][-3:]
    if host != _host() or not pid_text.isdigit() or int(pid_text) <= 0:
        return False  # never os.kill(0, …): that would be the process group
    pid = int(pid_text)
    if not identity:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # someone else's process: running
        return False
    where, _, started = identity.rpartition("/")
    if where != _this_boot_and_namespace() or not started.isdigit():
        return False
    return _start_ticks(pid) != int(started)


def end_leases_of_the_dead(session: Session, now: datetime) -> int:
    """End now the leases whose holder is provably gone (see `holder_is_gone`), so the next
    claim takes their rows at once; return how many rows that freed (commits)."""
    holders = session.scalars(
        select(Delivery.lease_holder)
        .where(Delivery.status == DeliveryStatus.SENDING, Delivery.lease_holder.is_not(None))
        .distinct()
    ).all()
    gone = [holder for holder in holders if holder is not None and holder_is_gone(holder)]
    if not gone:
        return 0
    freed = session.scalars(
        update(Delivery)
        .where(Delivery.status == DeliveryStatus.SENDING, Delivery.lease_holder.in_(gone))
        .values(lease_until=now - timedelta(seconds=1))
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    ).all()
    session.commit()
    return len(freed)


def _host() -> str:
    return socket.gethostname()[:200]  # so that a holder fits its column


@functools.cache
def _this_boot_and_namespace() -> str:
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return ""
    return f"{boot}/{''.join(filter(str.isdigit, namespace))}"


def _start_ticks(pid: int) -> int | None:
    """The process's start time (field 22 of /proc/<pid>/stat); None if it is not running
    (or is a zombie), or /proc cannot say."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # after the name, which may hold anything
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def claim_due(session: Session, *, limit: int, lease_seconds: int, now: datetime,
              holder: str | None = None, kinds: Collection[str] | None = None) -> list[int]:
    """Lease up to `limit` due rows to `holder` (this process by default) and return their
    ids (commits). With `kinds`, only rows of messages of those kinds (a command that sends
    its own mail now, such as `alerts replies remind`)."""
    holder = holder or lease_holder()
    scope: ColumnElement[bool] = true() if kinds is None else Delivery.message_id.in_(
        select(Message.id).where(Message.kind.in_(kinds)))
    # Two index-ordered look-ups rather than one over "queued or expired": an OR, or an
    # order the index does not hold, makes the database sort every due row on each claim,
    # which grows with the queue (about 50 ms a claim with 100,000 queued on SQLite).
    expired = (
        select(Delivery.id)
        .where(Delivery.status == DeliveryStatus.SENDING, Delivery.lease_until < now, scope)
        .order_by(Delivery.lease_until)
        .limit(limit)
    )
    claimed = _lease(session, expired, now, lease_seconds, holder)
    queued_due = (Delivery.status == DeliveryStatus.QUEUED) & (Delivery.next_attempt_at <= now)
    if len(claimed) < limit:  # urgent rows first: few, so sorting them costs nothing
        urgent = (
            select(Delivery.id)
            .where(queued_due, Delivery.priority > 0, scope)
            .order_by(Delivery.priority.desc(), Delivery.next_attempt_at)
            .limit(limit - len(claimed))
        )
        claimed += _lease(session, urgent, now, lease_seconds, holder)
    if len(claimed) < limit:  # then the rest, oldest first, in the claim index's order
        ordinary = (
            select(Delivery.id)
            .where(queued_due, Delivery.priority == 0, scope)
            .order_by(Delivery.next_attempt_at)
            .limit(limit - len(claimed))
        )
        claimed += _lease(session, ordinary, now, lease_seconds, holder)
    session.commit()
    return sorted(claimed)


def _lease(session: Session, candidates: Select[int], now: datetime,
           lease_seconds: int, holder: str) -> list[int]:
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    # Materialised, so the LIMIT holds: as a plain subquery PostgreSQL may plan a nested
    # loop that runs it again for each row it updates, each run skipping the rows locked by
    # the last, and lease far more rows than asked (seen: all 5 with a limit of 2).
    picked = candidates.cte("picked").prefix_with("MATERIALIZED")
    return list(session.scalars(
        update(Delivery)
        .where(Delivery.id.in_(select(picked.c.id)), due_condition(now))
        .values(
            status=DeliveryStatus.SENDING,
            lease_until=now + timedelta(seconds=lease_seconds),
            lease_holder=holder,
            attempts=Delivery.attempts + 1,
        )
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    ).all())


def mark_all_sent(session: Session | Connection, delivery_ids: list[int],
                  now: datetime) -> None:
    """One statement for many successes: most rows end this way."""
    if delivery_ids:
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(delivery_ids), Delivery.status == DeliveryStatus.SENDING)
            .values(status=DeliveryStatus.SENT, sent_at=now, lease_until=None,
                    lease_holder=None, last_error=None)
            .execution_options(synchronize_session=False)
        )


def mark_cancelled(session: Session, delivery_id: int, reason: str) -> None:
    session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.status == DeliveryStatus.SENDING)
        .values(status=DeliveryStatus.CANCELLED, lease_until=None, lease_holder=None,
                last_error=reason)
    )


def mark_failed(session: Session, delivery_id: int, reason: str) -> None:
    session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.status == DeliveryStatus.SENDING)
        .values(status=DeliveryStatus.FAILED, lease_until=None, lease_holder=None,
                last_error=reason)
    )


def retry_delay(attempts: int, base_seconds: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: up to base * 2**(attempts-1), capped at a day."""
    ceiling = min(base_seconds * (2 ** max(attempts - 1, 0)), 86_400.0)
    return (rng or random).uniform(ceiling / 2, ceiling)


def mark_for_retry(
    session: Session,
    delivery_id: int,
    reason: str,
    *,
    attempts: int,
    max_attempts: int,
    base_seconds: float,
    now: datetime,
) -> bool:
    """Queue the row again after a backoff, or fail it past `max_attempts`; True if retried."""
    if attempts >= max_attempts:
        mark_failed(session, delivery_id, f"gave up after {attempts} attempts: {reason}")
        return False
    session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.status == DeliveryStatus.SENDING)
        .values(
            status=DeliveryStatus.QUEUED,
            lease_until=None, lease_holder=None,
            last_error=reason,
            next_attempt_at=now + timedelta(seconds=retry_delay(attempts, base_seconds)),
        )
    )
    return True
