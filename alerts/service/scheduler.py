"""APScheduler on the project's database: the scheduler `alerts run` drives, and how its
jobs are reported (live from the scheduler, or read from the job table by another process).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict
from zoneinfo import ZoneInfo

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import Column, Engine, Float, MetaData, Table, Unicode, inspect, select

from alerts.config import Settings

# APScheduler creates and owns this table; the migrations leave it alone (see migrations/env.py).
JOB_TABLE = "apscheduler_jobs"

# A digest missed while the service was down still goes out, once, if the service is back
# within the hour; later than that it waits for its next time rather than arriving stale.
MISFIRE_GRACE_SECONDS = 3600


class JobStatus(TypedDict):
    id: str
    next_run_time: str | None


class SchedulerStatus(TypedDict):
    running: bool
    jobs: list[JobStatus]
    role: NotRequired[str]


def make_scheduler(engine: Engine, settings: Settings) -> Any:
    """An AsyncIOScheduler whose jobs live in `apscheduler_jobs` of the project's database.

    Its default executor runs plain (non-async) job functions in the event loop's default
    executor, a thread pool, so blocking jobs never hold up the loop.
    """
    return AsyncIOScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename=JOB_TABLE)},
        timezone=settings.scheduler.timezone,
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": MISFIRE_GRACE_SECONDS,
        },
    )


def scheduler_status(scheduler: Any) -> SchedulerStatus:
    """What a running scheduler holds: every job and when it next runs."""
    jobs: list[JobStatus] = [
        {"id": job.id, "next_run_time": _iso(job.next_run_time)}
        for job in sorted(scheduler.get_jobs(), key=lambda job: job.id)
    ]
    return {"running": bool(scheduler.running), "jobs": jobs}


def stored_status(engine: Engine, timezone: str) -> SchedulerStatus:
    """The jobs as the job table holds them, for a process that runs no scheduler itself."""
    if not inspect(engine).has_table(JOB_TABLE):
        return {"running": False, "jobs": []}
    # Only the two plain columns are read: unpickling job state is the scheduler's business.
    table = Table(JOB_TABLE, MetaData(), Column("id", Unicode(191), primary_key=True),
                  Column("next_run_time", Float(25)))
    zone = ZoneInfo(timezone)
    with engine.connect() as connection:
        rows = connection.execute(select(table.c.id, table.c.next_run_time).order_by(table.c.id))
        jobs: list[JobStatus] = [
            {
                "id": ident,
                "next_run_time": None if stamp is None else _iso(
                    datetime.fromtimestamp(stamp, UTC).astimezone(zone)
                ),
            }
            for ident, stamp in rows
        ]
    return {"running": False, "jobs": jobs}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
