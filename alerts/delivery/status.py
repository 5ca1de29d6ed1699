"""The outbox as an operator sees it: depth by state, what is due, how old the oldest
queued row is, the recent send rate and failures grouped by reason; and, for `alerts status`,
the rows of each kind of message by state (staff mail included: it is in the outbox too).

Counts only: no address or content is read, so the report is safe to print and to serve.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts.delivery.outbox import Delivery, DeliveryStatus, due_condition
from alerts.mail.messages import Message

_SMTP_CODE = re.compile(r"\b([45]\d\d)(?:[ -]([45]\.\d{1,3}\.\d{1,3}))?\b")


@dataclass(frozen=True)
class OutboxReport:
    by_status: dict[str, int]
    due: int
    oldest_queued_seconds: float | None
    sent_last_minute: int
    sent_last_hour: int
    failures_by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def per_second_last_minute(self) -> float:
        return self.sent_last_minute / 60.0


def failure_reason(error: str | None) -> str:
    """A short, stable label for a failure: its SMTP codes if it has them."""
    if not error:
        return "unknown"
    match = _SMTP_CODE.search(error)
    if match:
        return " ".join(code for code in match.groups() if code)
    text = " ".join(error.split())
    return text.split(":")[0][:60] if ":" in text[:60] else text[:60]


def smtp_class(reason: str) -> str:
    """A failure's label kept only when it is SMTP codes ("550 5.1.1"), else "other": other
    error text might name an address, which a metric label must not."""
    return reason if _SMTP_CODE.fullmatch(reason) else "other"


def outbox_waiting(session: Session, now: datetime,
                   statuses: tuple[DeliveryStatus, ...] = tuple(DeliveryStatus),
                   ) -> tuple[dict[str, int], int, float | None]:
    """Rows in each of `statuses`, rows due now, and the age of the oldest queued row: read
    through the (status, ...) indexes, so asking only for the waiting states (as /healthz
    does) costs as little as the outbox is short, however many rows were sent."""
    counts = {
        status: count
        for status, count in session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.status.in_([status.value for status in statuses]))
            .group_by(Delivery.status)
        )
    }
    due = session.scalar(
        select(func.count()).select_from(Delivery).where(due_condition(now))
    ) or 0
    oldest = session.scalar(
        select(func.min(Delivery.created_at)).where(Delivery.status == DeliveryStatus.QUEUED)
    )
    return ({status.value: counts.get(status.value, 0) for status in statuses}, due,
            None if oldest is None else round(max((now - oldest).total_seconds(), 0.0), 3))


def outbox_report(session: Session, now: datetime) -> OutboxReport:
    by_status, due, oldest = outbox_waiting(session, now)

    def sent_since(delta: timedelta) -> int:
        return session.scalar(
            select(func.count()).select_from(Delivery).where(
                Delivery.status == DeliveryStatus.SENT, Delivery.sent_at >= now - delta
            )
        ) or 0

    failures: dict[str, int] = {}
    for error, count in session.execute(
        select(Delivery.last_error, func.count())
        .where(Delivery.status == DeliveryStatus.FAILED)
        .group_by(Delivery.last_error)
    ):
        reason = failure_reason(error)
        failures[reason] = failures.get(reason, 0) + count
    return OutboxReport(
        by_status=by_status,
        due=due,
        oldest_queued_seconds=oldest,
        sent_last_minute=sent_since(timedelta(minutes=1)),
        sent_last_hour=sent_since(timedelta(hours=1)),
        failures_by_reason=dict(sorted(failures.items(), key=lambda kv: -kv[1])),
    )


def outbox_by_kind(session: Session) -> dict[str, dict[str, int]]:
    """Rows by kind of message ("digest", "forward", "reset", …) and state, kinds with no
    row left out."""
    found: dict[str, dict[str, int]] = {}
    for kind, status, count in session.execute(
        select(Message.kind, Delivery.status, func.count())
        .join(Message, Message.id == Delivery.message_id)
        .group_by(Message.kind, Delivery.status)
    ):
        found.setdefault(kind, {state.value: 0 for state in DeliveryStatus})[status] = count
    return dict(sorted(found.items()))
