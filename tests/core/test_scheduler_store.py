"""The job table as `/healthz`, `/metrics` and `alerts status` read it (issue 19): once the
table is there, each probe is one statement, with no inspector asking whether it exists."""

from __future__ import annotations

from datetime import UTC, datetime

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import Engine, event
from sqlalchemy.engine import ExceptionContext

from alerts.core.config import Settings
from alerts.core.scheduler_store import JOB_TABLE, stored_status
from subscriptions.base import utcnow


def noop() -> None:
    """A job for the table."""


def test_before_the_scheduler_ever_ran_no_job_is_reported(
        engine: Engine, settings: Settings) -> None:
    assert stored_status(engine, settings.scheduler, utcnow()) == {
        "running": False, "jobs": [], "stalled": []}


def test_with_the_table_there_a_probe_is_one_statement(
        engine: Engine, settings: Settings) -> None:
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename=JOB_TABLE)})
    scheduler.start(paused=True)
    try:
        scheduler.add_job(noop, DateTrigger(datetime(2999, 1, 1, tzinfo=UTC)), id="collect")
        statements: list[str] = []

        def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
            statements.append(statement)

        event.listen(Engine, "before_cursor_execute", count)
        try:
            report = stored_status(engine, settings.scheduler, utcnow())
        finally:
            event.remove(Engine, "before_cursor_execute", count)
    finally:
        scheduler.shutdown(wait=False)

    assert [job["id"] for job in report["jobs"]] == ["collect"]
    assert len(statements) == 1 and JOB_TABLE in statements[0]


def test_a_table_made_between_the_read_and_the_question_is_read_again(
        engine: Engine, settings: Settings) -> None:
    """`alerts run` starting as a probe runs: the read fails for want of the table, which is
    there when the probe asks why: the jobs are read again, not an error raised."""
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename=JOB_TABLE)})

    raced: list[bool] = []

    def start_meanwhile(context: ExceptionContext) -> None:
        if not scheduler.running and JOB_TABLE in str(context.statement):
            raced.append(True)
            scheduler.start(paused=True)  # makes the table, on a connection of its own
            scheduler.add_job(noop, DateTrigger(datetime(2999, 1, 1, tzinfo=UTC)),
                              id="collect")

    event.listen(engine, "handle_error", start_meanwhile)
    try:
        report = stored_status(engine, settings.scheduler, utcnow())
    finally:
        event.remove(engine, "handle_error", start_meanwhile)
        if scheduler.running:
            scheduler.shutdown(wait=False)

    assert raced == [True]  # the race was played
    assert [job["id"] for job in report["jobs"]] == ["collect"]
