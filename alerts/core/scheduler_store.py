"""The scheduler's job table as the rest of the product reads it: its name, and the status
of the jobs it holds (when each runs next, which are stalled, and how each one's last runs
went, from `job_runs`). `alerts run` owns the table (`alerts.service.scheduler`);
`alerts status`, `/healthz`, `/metrics` and the migrations only read it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict
from zoneinfo import ZoneInfo

from sqlalchemy import Column, Engine, Float, MetaData, Row, Table, Unicode, inspect, select
from sqlalchemy.exc import DBAPIError

from alerts.core.config import SchedulerSettings
from alerts.core.job_runs import JobRun

# APScheduler creates and owns this table; the migrations leave it alone (see migrations/env.py).
JOB_TABLE = "apscheduler_jobs"


class JobRuns(TypedDict):
    """How a job's runs went (`job_runs`); a job that never ran has none of these."""

    last_started_at: str | None
    last_success_at: str | None
    last_failure_at: str | None
    last_failure: str | None  # "ClassName: short reason"
    consecutive_failures: int


class JobStatus(TypedDict):
    id: str
    next_run_time: str | None
    # Those of `JobRuns`, once the job has run.
    last_started_at: NotRequired[str | None]
    last_success_at: NotRequired[str | None]
    last_failure_at: NotRequired[str | None]
    last_failure: NotRequired[str | None]
    consecutive_failures: NotRequired[int]


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


# Only the two plain columns are read: unpickling job state is the scheduler's business.
_JOB_TABLE = Table(JOB_TABLE, MetaData(), Column("id", Unicode(191), primary_key=True),
                   Column("next_run_time", Float(25)))
_RUNS = JobRun.__table__.c
# One read, built once: each job's runs joined on job_runs' key, so a job removed since it
# last ran is not reported.
_JOBS = (select(_JOB_TABLE.c.id, _JOB_TABLE.c.next_run_time, _RUNS.job_id,
                _RUNS.last_started_at, _RUNS.last_success_at, _RUNS.last_failure_at,
                _RUNS.last_failure, _RUNS.consecutive_failures)
         .outerjoin(JobRun.__table__, _RUNS.job_id == _JOB_TABLE.c.id)
         .order_by(_JOB_TABLE.c.id))


def _job_rows(engine: Engine) -> Sequence[Row[*tuple[Any, ...]]]:
    with engine.connect() as connection:
        return connection.execute(_JOBS).all()


def stored_status(engine: Engine, settings: SchedulerSettings, now: datetime) -> SchedulerStatus:
    """The jobs as the job table holds them, read by any process (`alerts web`, a follower,
    `alerts status`): a job overdue by more than `stall_grace_seconds` is stalled."""
    zone = ZoneInfo(settings.timezone)
    try:
        rows = _job_rows(engine)
    except DBAPIError:
        # Asked only now, not at every probe: the table is there from `alerts run`'s start.
        if not inspect(engine).has_table(JOB_TABLE):
            return {"running": False, "jobs": [], "stalled": []}
        rows = _job_rows(engine)  # made meanwhile, by an `alerts run` starting: read again
    reported: dict[str, JobRuns] = {
        row.id: {"last_started_at": _iso(row.last_started_at, zone),
                 "last_success_at": _iso(row.last_success_at, zone),
                 "last_failure_at": _iso(row.last_failure_at, zone),
                 "last_failure": row.last_failure,
                 "consecutive_failures": row.consecutive_failures}
        for row in rows if row.job_id is not None
    }
    return report_of([(row.id, row.next_run_time) for row in rows], settings, now, reported)


def report_of(rows: Sequence[tuple[str, float | None]], settings: SchedulerSettings,
              now: datetime, runs: Mapping[str, JobRuns] | None = None) -> SchedulerStatus:
    zone = ZoneInfo(settings.timezone)
    jobs: list[JobStatus] = []
    for ident, stamp in sorted(rows):
        planned = None if stamp is None else _iso(datetime.fromtimestamp(stamp, UTC), zone)
        ran = (runs or {}).get(ident)
        jobs.append({"id": ident, "next_run_time": planned} if ran is None
                    else {"id": ident, "next_run_time": planned, **ran})
    late = [(now.timestamp() - stamp, ident) for ident, stamp in rows if stamp is not None]
    stalled: list[StalledJob] = [
        {"id": ident, "overdue_seconds": int(seconds)}
        for seconds, ident in sorted(late, reverse=True)
        if seconds > settings.stall_grace_seconds
    ]
    return {"running": False, "jobs": jobs, "stalled": stalled}


def _iso(moment: datetime | None, zone: ZoneInfo) -> str | None:
    return None if moment is None else moment.astimezone(zone).isoformat()
