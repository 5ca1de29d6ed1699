"""What `/healthz` reports: whether the database answers, what the scheduler has planned
(and whether it has stalled), and how deep and how old the outbox is. Counts only: no address
or content is read.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypedDict

from sqlalchemy.orm import Session, sessionmaker

from alerts.core.scheduler_store import SchedulerStatus
from alerts.delivery.outbox import DeliveryStatus
from alerts.delivery.status import outbox_waiting


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
WAITING = (DeliveryStatus.QUEUED, DeliveryStatus.SENDING, DeliveryStatus.FAILED)


def outbox_status(session: Session, now: datetime) -> OutboxStatus:
    # Only the waiting states: not a count of every row ever sent at each probe.
    counts, due, oldest = outbox_waiting(session, now, WAITING)
    return {
        "queued": counts[DeliveryStatus.QUEUED],
        "sending": counts[DeliveryStatus.SENDING],
        "failed": counts[DeliveryStatus.FAILED],
        "due": due,
        "oldest_queued_seconds": oldest,
    }


def check_health(
    factory: sessionmaker[Session],
    scheduler: Callable[[], SchedulerStatus] | None,
    *,
    scheduler_required: bool,
    now: datetime,
) -> Health:
    """The report; `status` is "stalled" when a process that schedules (`alerts run`, leader
    or follower) sees a job overdue by more than `scheduler.stall_grace_seconds`, else
    "degraded" when the database fails or a required scheduler is not running."""
    database = "ok"
    outbox: OutboxStatus | None = None
    try:
        with factory() as session:  # the outbox's read is the probe: no `SELECT 1` before it
            outbox = outbox_status(session, now)
    except Exception as exc:
        database = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    try:
        planned = scheduler() if scheduler is not None else NOT_RUNNING
    except Exception:
        planned = NOT_RUNNING
    # A follower's scheduler is idle by design while another process leads.
    following = planned.get("role") == "follower"
    healthy = database == "ok" and (planned["running"] or following or not scheduler_required)
    stalled = scheduler_required and bool(planned.get("stalled"))
    return {
        "status": "stalled" if stalled else "ok" if healthy else "degraded",
        "database": database,
        "scheduler": planned,
        "outbox": outbox,
    }


def http_status(report: Health) -> int:
    """503 when the database fails or the scheduler has stalled, so a monitor notices."""
    return 200 if report["database"] == "ok" and report["status"] != "stalled" else 503
