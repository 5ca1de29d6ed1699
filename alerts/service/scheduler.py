"""APScheduler on the project's database: the scheduler `alerts run` drives, how it
outlives a job store that fails for a while, and how its jobs are reported (by the leader,
or read from the job table by any other process), stalled ones named.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_RUNNING, STATE_STOPPED
from apscheduler.util import utc_timestamp_to_datetime
from sqlalchemy import Engine, null, select

from alerts.core.config import SchedulerSettings, Settings
from alerts.core.scheduler_store import JOB_TABLE, SchedulerStatus, report_of, stored_status

log = logging.getLogger(__name__)

# A digest missed while the service was down still goes out, once, if the service is back
# within the hour; later than that it waits for its next time rather than arriving stale.
MISFIRE_GRACE_SECONDS = 3600


# While its job store fails, the scheduler tries it again after these many seconds, doubling
# each time up to the last, so a long outage costs one try a minute.
STORE_RETRY_FIRST = 1.0
STORE_RETRY_MOST = 60.0

# How many of the next jobs the scheduler keeps in mind, to name the overdue ones while the
# job table cannot be read.
REMEMBERED_JOBS = 20


def describe(error: BaseException) -> str:
    """An error in one short line: its kind and the database's own words, not the SQL (whose
    parameters hold pickled job state)."""
    reason = getattr(error, "orig", None) or error
    words = " ".join(str(reason).split())
    return f"{type(error).__name__}: {words}"[:200]


class JobStore(SQLAlchemyJobStore):  # type: ignore[misc]
    """`apscheduler_jobs` in the project's database, for `ServiceScheduler`.

    A failure to read the due jobs is kept in `failure` for the scheduler to handle (APScheduler
    would log it at every retry itself), and the next jobs read with the next run time are kept
    in `upcoming`, so that the overdue ones can be named while the table cannot be read. A
    job whose next run could not be stored after it was started is kept in `unsaved` and
    stored first when the table answers again, so that it does not run a second time.
    """

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine=engine, tablename=JOB_TABLE)
        self.failure: Exception | None = None
        self.upcoming: list[tuple[str, float]] = []
        self.unsaved: dict[str, Any] = {}

    def update_job(self, job: Any) -> None:
        try:
            super().update_job(job)
        except JobLookupError:
            raise
        except Exception:
            self.unsaved[job.id] = job
            raise
        self.unsaved.pop(job.id, None)

    def save_unsaved(self) -> None:
        """Store the next runs that a failure kept back (a job removed meanwhile stays
        removed); raises, keeping the rest, if the table still fails."""
        for job in list(self.unsaved.values()):
            try:
                self.update_job(job)
            except JobLookupError:
                self.unsaved.pop(job.id, None)

    def get_due_jobs(self, now: datetime) -> list[Any]:
        try:
            jobs: list[Any] = super().get_due_jobs(now)
        except Exception as exc:
            self.failure = exc
            return []
        return jobs

    def get_next_run_time(self) -> datetime | None:
        column = self.jobs_t.c.next_run_time
        query = (select(self.jobs_t.c.id, column).where(column != null()).order_by(column)
                 .limit(REMEMBERED_JOBS))
        with self.engine.begin() as connection:
            self.upcoming = [(ident, stamp) for ident, stamp in connection.execute(query)]
        if not self.upcoming:
            return None
        moment: datetime = utc_timestamp_to_datetime(self.upcoming[0][1])
        return moment

    def check_writable(self) -> None:
        """Raise unless the job table takes a write now (on SQLite: no other process holds
        the write lock past the busy timeout). Changes nothing."""
        with self.engine.connect() as connection:
            connection.execute(self.jobs_t.update().where(self.jobs_t.c.id == "")
                               .values(next_run_time=None))
            connection.rollback()


@dataclass(frozen=True)
class StoreFailure:
    since: float  # time.monotonic()
    reason: str


class ServiceScheduler(AsyncIOScheduler):  # type: ignore[misc]
    """APScheduler's asyncio scheduler, made to outlive a job store that fails for a while.

    APScheduler 3.11 runs the due jobs in `_process_jobs`, which `wakeup()` calls on the
    event loop before arming its timer with the wait it returns. A store error there (from
    `update_job` after submitting a job, `get_next_run_time` or `remove_job`; a locked SQLite
    or a PostgreSQL that went away) propagates out of `wakeup()`, so the timer is never armed
    again: the scheduler says it is running and never runs another job. Here such an error
    is logged once and the processing stops; a probe in a worker thread (never blocking the
    loop) tries the store for a write after 1 s, then 2, 4, … up to a minute, and once it
    answers the scheduler wakes up: each job that came due meanwhile runs once (coalesced),
    and one line says the store is back. Jobs are not submitted while the store fails, since
    a job whose next run cannot be stored would be submitted again at every retry; a job
    started in the very pass that failed has its next run stored first when the store
    answers, so it does not run twice.
    The one store call that fails still holds up the loop for as long as it takes to fail
    (on SQLite, `database.busy_timeout_seconds`); the probes never do.
    """

    def __init__(self, store: JobStore, **options: Any) -> None:
        super().__init__(jobstores={"default": store}, **options)
        self.store = store
        self.store_failure: StoreFailure | None = None
        self._retry_in = STORE_RETRY_FIRST
        self._store_answered = False
        self._probing = False

    def start(self, paused: bool = False) -> None:
        self._retry_in = STORE_RETRY_FIRST
        super().start(paused)

    def _process_jobs(self) -> float | None:
        if self.state != STATE_RUNNING:
            return None
        if self.store_failure is not None and not self._store_answered:
            self._probe_later()
            return None
        self.store.failure = None
        try:
            self.store.save_unsaved()
            wait: float | None = super()._process_jobs()
        except Exception as exc:
            self._store_failed(exc)
            return None
        if self.store.failure is not None:
            self._store_failed(self.store.failure)
            return None
        if self.store_failure is not None:
            log.warning("the scheduler's job store answers again after %.0f s; the jobs due "
                        "meanwhile run now", time.monotonic() - self.store_failure.since)
            self.store_failure = None
            self._retry_in = STORE_RETRY_FIRST
        self._store_answered = False
        return wait

    def _store_failed(self, error: Exception) -> None:
        self._store_answered = False
        if self.store_failure is None:
            self.store_failure = StoreFailure(time.monotonic(), describe(error))
            log.error("the scheduler cannot use its job store (%s); no job runs until it "
                      "answers again (tried after %g s, then twice as long each time, up to "
                      "every %g s)", self.store_failure.reason, STORE_RETRY_FIRST,
                      STORE_RETRY_MOST)
        else:
            self._retry_in = min(self._retry_in * 2, STORE_RETRY_MOST)
        self._probe_later()

    def _probe_later(self) -> None:
        if self._probing or self._eventloop is None:
            return
        self._probing = True
        self._eventloop.call_later(self._retry_in, self._probe)

    def _probe(self) -> None:
        if self.state == STATE_STOPPED or self._eventloop is None:
            self._probing = False
            return
        try:
            probe = self._eventloop.run_in_executor(None, self.store.check_writable)
        except RuntimeError:  # the loop is closing
            self._probing = False
            return
        probe.add_done_callback(self._probed)

    def _probed(self, probe: asyncio.Future[None]) -> None:
        self._probing = False
        if self.state == STATE_STOPPED:
            return
        if probe.cancelled() or probe.exception() is not None:
            self._retry_in = min(self._retry_in * 2, STORE_RETRY_MOST)
            self._probe_later()
            return
        self._store_answered = True
        self.wakeup()


def make_scheduler(engine: Engine, settings: Settings) -> ServiceScheduler:
    """The scheduler of `alerts run`: its jobs live in `apscheduler_jobs` of the project's
    database, and it outlives that store's failures.

    Its default executor runs plain (non-async) job functions in the event loop's default
    executor, a thread pool, so blocking jobs never hold up the loop.
    """
    return ServiceScheduler(
        JobStore(engine),
        timezone=settings.scheduler.timezone,
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": MISFIRE_GRACE_SECONDS,
        },
    )


def scheduler_status(scheduler: ServiceScheduler, engine: Engine, settings: SchedulerSettings,
                     now: datetime) -> SchedulerStatus:
    """What this process's scheduler has planned: the job table as stored (so a job whose
    run could not be recorded shows as overdue), or, while the table cannot be read, the
    next jobs as the scheduler last read them; and why the store fails, if it does."""
    try:
        report = stored_status(engine, settings, now)
    except Exception as exc:
        report = report_of(scheduler.store.upcoming, settings, now)
        report["store_error"] = describe(exc)
    report["running"] = bool(scheduler.running)
    failure = scheduler.store_failure
    if failure is not None and report["running"]:
        report["store_error"] = failure.reason
    return report


