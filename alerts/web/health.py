"""What `/healthz` reports: whether the database answers, what the scheduler has planned,
and how deep and how old the outbox is. Counts only: no address or content is read.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypedDict

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from alerts.delivery.outbox import Delivery, DeliveryStatus, due_condition
from alerts.service.scheduler import SchedulerStatus


class OutboxStatus(TypedDict):
    queued: int
    sending: int
    failed: int
    due: int
    oldest_queued_seconds: float | None


class Health(TypedDict):
    status: str
    database: str
    scheduler: SchedulerStatus
    outbox: OutboxStatus | None


NOT_RUNNING: SchedulerStatus = {"running": False, "jobs": []}


def outbox_status(session: Session, now: datetime) -> OutboxStatus:
    rows = session.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
    counts: dict[str, int] = {status: count for status, count in rows}
    due_count = session.scalar(
        select(func.count()).select_from(Delivery).where(due_condition(now))
    ) or 0
    oldest = session.scalar(
        select(func.min(Delivery.created_at)).where(Delivery.status == DeliveryStatus.QUEUED)
    )
    return {
        "queued": counts.get(DeliveryStatus.QUEUED, 0),
        "sending": counts.get(DeliveryStatus.SENDING, 0),
        "failed": counts.get(DeliveryStatus.FAILED, 0),
        "due": due_count,
        "oldest_queued_seconds": None if oldest is None else round(
            max((now - oldest).total_seconds(), 0.0), 3),
    }


def check_health(
    factory: sessionmaker[Session],
    scheduler: Callable[[], SchedulerStatus] | None,
    *,
    scheduler_required: bool,
    now: datetime,
) -> Health:
    """The report; `status` is "degraded" when the database fails or a required scheduler
    is not running."""
    database = "ok"
    outbox: OutboxStatus | None = None
    try:
        with factory() as session:
            session.execute(text("SELECT 1"))
            outbox = outbox_status(session, now)
    except Exception as exc:
        database = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    try:
        planned = scheduler() if scheduler is not None else NOT_RUNNING
    except Exception:
        planned = NOT_RUNNING
    healthy = database == "ok" and (planned["running"] or not scheduler_required)
    return {
        "status": "ok" if healthy else "degraded",
        "database": database,
        "scheduler": planned,
        "outbox": outbox,
    }
