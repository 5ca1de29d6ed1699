"""The scheduler's job table as the rest of the product reads it: its name, and the status
of the jobs it holds (when each runs next, which are stalled). `alerts run` owns the table
(`alerts.service.scheduler`); `alerts status`, `/healthz` and the migrations only read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NotRequired, TypedDict
from zoneinfo import ZoneInfo

from sqlalchemy import Column, Engine, Float, MetaData, Table, Unicode, inspect, select

from alerts.core.config import SchedulerSettings

# APScheduler creates and owns this table; the migrations leave it alone (see migrations/env.py).
JOB_TABLE = "apscheduler_jobs"


class JobStatus(TypedDict):
    id: str
    next_run_time: str | None


class StalledJob(TypedDict):
    id: str
    overdue_seconds: int


class SchedulerStatus(TypedDict):
    running: bool
    jobs: list[JobStatus]
    # Jobs overdue by more than `scheduler.stall_grace_seconds`: nothing is running them.
    stalled: NotRequired[list[StalledJob]]
    role: NotRequired[str]
    # Why the scheduler cannot use its job store, while it cannot.
    store_error: NotRequired[str]


def stored_status(engine: Engine, settings: SchedulerSettings, now: datetime) -> SchedulerStatus:
    """The jobs as the job table holds them, read by any process (`alerts web`, a follower,
    `alerts status`): a job overdue by more than `stall_grace_seconds` is stalled."""
    if not inspect(engine).has_table(JOB_TABLE):
        return {"running": False, "jobs": [], "stalled": []}
    # Only the two plain columns are read: unpickling job state is the scheduler's business.
    table = Table(JOB_TABLE, MetaData(), Column("id", Unicode(191), primary_key=True),
                  Column("next_run_time", Float(25)))
    with engine.connect() as connection:
        rows = connection.execute(select(table.c.id, table.c.next_run_time).order_by(table.c.id))
        return report_of([(ident, stamp) for ident, stamp in rows], settings, now)


def report_of(rows: Sequence[tuple[str, float | None]], settings: SchedulerSettings,
            now: datetime) -> SchedulerStatus:
    zone = ZoneInfo(settings.timezone)
    jobs: list[JobStatus] = [
        {
            "id": ident,
            "next_run_time": None if stamp is None else _iso(
                datetime.fromtimestamp(stamp, UTC).astimezone(zone)
            ),
        }
        for ident, stamp in sorted(rows)
    ]
    late = [(now.timestamp() - stamp, ident) for ident, stamp in rows if stamp is not None]
    stalled: list[StalledJob] = [
        {"id": ident, "overdue_seconds": int(seconds)}
        for seconds, ident in sorted(late, reverse=True)
        if seconds > settings.stall_grace_seconds
    ]
    return {"running": False, "jobs": jobs, "stalled": stalled}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
