"""Each scheduled job's runs are recorded where the jobs are run (`alerts.service.jobs`):
its start, then its success or its failure (class name and a short reason, no resident's
words), and failures in a row. `/metrics` exports the last success and failure as Unix time
and the failures in a row (parsed with prometheus-client's own parser), `alerts status`
prints them (and /healthz carries them), and a database locked while a run is recorded
never stops the run. The jobs
run here as the scheduler's worker threads run them, on a job table planned by the real
`reconcile` (both stores); `alerts run` records them as a real process."""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from click.testing import CliRunner
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from alerts.cli import cli
from alerts.core.config import Settings
from alerts.core.db import make_engine, session_factory
from alerts.core.events import DigestDue, EventBus
from alerts.core.scheduler_store import JOB_TABLE, JobStatus, stored_status
from alerts.service import context, jobs
from alerts.service.context import JobTracker, ServiceContext
from alerts.service.plan import reconcile
from alerts.sources.registry import add_source
from alerts.web.app import create_app
from subscriptions.base import utcnow
from tests.factories import make_ward, smtp_config
from tests.processes import free_port, healthz, start_alerts, wait_for
from tests.servers import FeedServer, Resource

TOKEN = "job-runs-metrics-token"
RSS = ('<?xml version="1.0"?><rss version="2.0"><channel><title>Team</title><item>'
       "<title>Shed break-ins</title><guid>sheds</guid><description>Lock sheds.</description>"
       "</item></channel></rss>")
DIGEST = "digest:RIV:weekly"


@pytest.fixture
def scheduled(engine: Engine, factory: sessionmaker[Session],
              settings: Settings) -> Iterator[ServiceContext]:
    """The service's context installed in this process, on a job table `reconcile` planned
    (a paused scheduler: the test runs the jobs itself)."""
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename=JOB_TABLE)},
        timezone=settings.scheduler.timezone)
    scheduler.start(paused=True)
    service = ServiceContext(settings, factory, EventBus(), scheduler, JobTracker())
    context.install(service)
    try:
        yield service
    finally:
        context.clear()
        scheduler.shutdown(wait=False)


def job_status(engine: Engine, settings: Settings, job_id: str) -> JobStatus:
    [job] = [job for job in stored_status(engine, settings.scheduler, utcnow())["jobs"]
             if job["id"] == job_id]
    return job


def scrape(client: TestClient) -> dict[str, dict[str, float]]:
    """Each sample's name → its job label → value, as prometheus-client parses them."""
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    samples: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[sample.labels.get("job", "")] = sample.value
    return samples


def test_a_collect_job_that_succeeds_then_fails_moves_its_metrics_and_status(
        scheduled: ServiceContext, engine: Engine, factory: sessionmaker[Session],
        settings: Settings, feeds: FeedServer, tmp_path: Path) -> None:
    with factory() as session, session.begin():
        ward = make_ward(session, "RIV")
        source = add_source(session, ward.code, "rss", feeds.put("/team.xml", RSS)).id
    reconcile(scheduled.scheduler, factory, settings)
    collect = f"collect:{source}"
    app = create_app(factory, scheduler=lambda: stored_status(engine, settings.scheduler,
                                                              utcnow()),
                     settings=dataclasses.replace(settings, metrics=dataclasses.replace(
                         settings.metrics, token=TOKEN)))
    client = TestClient(app)
    never = scrape(client)
    success = "alerts_scheduler_job_last_success_timestamp_seconds"
    failure = "alerts_scheduler_job_last_failure_timestamp_seconds"
    in_a_row = "alerts_scheduler_job_consecutive_failures"
    assert collect in never["alerts_scheduler_job_lag_seconds"]
    for name in (success, failure, in_a_row):  # a job that never ran has no sample
        assert collect not in never.get(name, {})

    before = utcnow().timestamp()
    jobs.collect_source(source)  # as the scheduler's worker thread runs it
    ran = scrape(client)
    assert before - 1 <= ran[success][collect] <= utcnow().timestamp() + 1
    assert collect not in ran.get(failure, {})
    assert ran[in_a_row][collect] == 0
    assert DIGEST not in ran.get(success, {})  # never ran

    feeds.resources["/team.xml"] = Resource(b"down for maintenance", status=503)
    jobs.collect_source(source)
    jobs.collect_source(source)
    failing = scrape(client)
    assert failing[success][collect] == ran[success][collect]  # unchanged
    assert failing[failure][collect] >= ran[success][collect]
    assert failing[in_a_row][collect] == 2
    job = job_status(engine, settings, collect)
    assert job["consecutive_failures"] == 2
    assert (job.get("last_failure") or "").startswith("SourceError: ")
    assert "503" in (job.get("last_failure") or "")

    config = smtp_config(tmp_path, settings)
    shown = CliRunner().invoke(cli, ["--config", str(config), "status"])
    assert shown.exit_code == 0, shown.output
    [line] = [line for line in shown.output.splitlines() if line.strip().startswith(collect)]
    assert f"last success {job.get('last_success_at')}" in line
    assert "FAILING, 2 run(s) in a row" in line and "SourceError" in line, line
    assert f"{DIGEST}: not run yet" in shown.output

    feeds.put("/team.xml", RSS)
    jobs.collect_source(source)
    again = scrape(client)
    assert again[success][collect] >= failing[failure][collect]
    assert again[in_a_row][collect] == 0
    assert again[failure][collect] == failing[failure][collect]  # the last failure stays


def test_a_digest_job_whose_handlers_fail_records_why_in_words_that_name_no_one(
        scheduled: ServiceContext, engine: Engine, factory: sessionmaker[Session],
        settings: Settings) -> None:
    with factory() as session, session.begin():
        make_ward(session, "RIV")
    reconcile(scheduled.scheduler, factory, settings)

    def refuses(event: DigestDue) -> None:
        raise ValueError("resident@home.example wrote: my shed was broken into")

    scheduled.bus.subscribe(DigestDue, refuses)
    jobs.digest_due("RIV", "weekly")
    job = job_status(engine, settings, DIGEST)
    assert job["consecutive_failures"] == 1
    assert job.get("last_success_at") is None
    assert job.get("last_started_at") is not None
    assert job.get("last_failure") == "HandlerError: 1 handler(s) failed; the log says why"
    with factory() as session:
        stored = " ".join(str(value) for value in session.execute(
            text("SELECT * FROM job_runs")).one())
    assert "home.example" not in stored and "shed" not in stored


@pytest.mark.stores("sqlite")
def test_a_database_locked_while_a_run_is_recorded_never_stops_the_run(
        scheduled: ServiceContext, engine: Engine, factory: sessionmaker[Session],
        settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    with factory() as session, session.begin():
        make_ward(session, "RIV")
    reconcile(scheduled.scheduler, factory, settings)
    path = Path(engine.url.database or "")
    quick = make_engine(str(engine.url), busy_timeout=0.2)
    context.install(dataclasses.replace(scheduled, factory=session_factory(quick)))
    ran: list[DigestDue] = []
    try:
        with closing(sqlite3.connect(path, isolation_level=None)) as locker:
            locker.execute("BEGIN EXCLUSIVE")

            def announced(event: DigestDue) -> None:
                ran.append(event)
                locker.execute("ROLLBACK")  # free again before the run ends

            scheduled.bus.subscribe(DigestDue, announced)
            with caplog.at_level(logging.WARNING, logger="alerts.service.jobs"):
                jobs.digest_due("RIV", "weekly")
    finally:
        quick.dispose()
    assert [event.ward_code for event in ran] == ["RIV"]  # the job ran
    [said] = [record.getMessage() for record in caplog.records
              if "could not be recorded" in record.getMessage()]
    assert said.startswith(f"job {DIGEST}: its run could not be recorded (")
    assert "locked" in said
    job = job_status(engine, settings, DIGEST)
    assert job.get("last_started_at") is None  # the start met the lock
    assert job.get("last_success_at") is not None  # the end was recorded
    assert job["consecutive_failures"] == 0


def test_alerts_run_records_its_jobs_runs_and_alerts_status_prints_them(
        engine: Engine, settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    config = smtp_config(tmp_path, settings, extra=(
        f'host = "127.0.0.1"\nport = {port}\n'
        '[scheduler]\ntimezone = "Europe/London"\nreconcile_seconds = 0.5\n'))
    process = start_alerts(config, "run", log=tmp_path / "run.log")
    try:
        wait_for(lambda: next((job for job in stored_status(engine, settings.scheduler,
                                                             utcnow())["jobs"]
                               if job["id"] == "reconcile" and job.get("last_success_at")),
                              None),
                 what="a recorded reconcile", timeout=40, process=process)
        health = wait_for(lambda: healthz(f"http://127.0.0.1:{port}"), what="/healthz",
                          timeout=30, process=process)
        [reconciled] = [job for job in health["scheduler"]["jobs"] if job["id"] == "reconcile"]
        assert reconciled["last_success_at"] and reconciled["consecutive_failures"] == 0
    finally:
        assert process.stop() == 0, process.output()
    shown = CliRunner().invoke(cli, ["--config", str(config), "status"])
    assert shown.exit_code == 0, shown.output
    assert "  reconcile: last success 20" in shown.output, shown.output
    report = CliRunner().invoke(cli, ["--config", str(config), "status", "--json"])
    [job] = [job for job in json.loads(report.output)["scheduler"]["jobs"]
             if job["id"] == "reconcile"]
    assert job["consecutive_failures"] == 0 and job["last_success_at"]
