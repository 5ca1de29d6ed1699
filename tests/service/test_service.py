"""`alerts run`, `alerts worker` and `alerts web` as real processes, against a real SMTP sink,
a real HTTP feed server and the real database; plus the job plan and /healthz in-process; and
`alerts run` outliving its store (an SQLite database another process keeps locked past the
busy timeout, a PostgreSQL server stopped and started again): the scheduler stays alive,
/healthz and `alerts status` say it has stalled (naming the job) while it cannot work, and
the job that came due meanwhile runs once when the store is back."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import inspect as introspect
import json
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from alembic import command
from alembic.config import Config
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from click.testing import CliRunner
from fastapi import FastAPI
from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.orm import Session, sessionmaker

from alerts.cli import cli
from alerts.core.config import Settings
from alerts.core.db import MIGRATIONS, make_engine, migrate, session_factory
from alerts.core.scheduler_store import JOB_TABLE, SchedulerStatus
from alerts.delivery.outbox import Delivery
from alerts.service.plan import plan_jobs, reconcile
from alerts.sources.items import ItemKind, store_items
from alerts.sources.officer import officer_item
from alerts.sources.registry import officer_source
from alerts.usecases.digest_rounds import queue_digests
from alerts.web.app import create_app
from subscriptions.base import utcnow
from subscriptions.subscribers import Frequency
from subscriptions.wards import get_ward
from tests.factories import make_subscriber, make_ward
from tests.postgres import postgres_cluster
from tests.processes import (
    AlertsProcess,
    free_port,
    healthz,
    run_alerts,
    slow_down,
    start_alerts,
    wait_for,
)
from tests.servers import FeedServer, SinkHandler, smtp_sink

LONDON = ZoneInfo("Europe/London")
EMPTY_FEED = ('<?xml version="1.0"?><rss version="2.0"><channel><title>Team</title>'
              "</channel></rss>")


@dataclass
class Service:
    """A config for `alerts` processes on this test's database, SMTP sink and web port."""

    config: Path
    web_port: int
    smtp_port: int
    sink: SinkHandler
    factory: sessionmaker[Session]
    engine: Engine
    tmp: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def configure(self, *, mail: str) -> None:
        url = self.engine.url.render_as_string(hide_password=False)
        write_config(self.config, url, self.smtp_port, self.web_port, mail=mail)

    def start(self, command: str = "run") -> AlertsProcess:
        starts = len(list(self.tmp.glob(f"{command}-*.log")))
        return start_alerts(self.config, command, log=self.tmp / f"{command}-{starts + 1}.log")

    def start_and_wait(self) -> tuple[AlertsProcess, dict[str, Any]]:
        process = self.start()
        try:
            # Importing takes seconds on a loaded machine.
            report = wait_for(lambda: healthz(self.base_url), what="/healthz", timeout=30,
                              process=process)
        except BaseException:
            process.process.kill()  # not left running to slow down every test after this
            process.process.wait()
            raise
        return process, report

    def cli(self, *args: str) -> str:
        result = CliRunner().invoke(cli, ["--config", str(self.config), *args])
        assert result.exit_code == 0, result.output
        return result.output

    def recipients(self) -> Counter[str]:
        return Counter(rcpt for received in list(self.sink.received) for rcpt in received.rcpt_tos)

    def statuses(self) -> Counter[str]:
        with self.factory() as session:
            rows = session.execute(
                select(Delivery.status, func.count()).group_by(Delivery.status))
            return Counter({status: count for status, count in rows})

    def job_ids(self) -> list[str]:
        with self.engine.connect() as connection:
            return list(connection.scalars(text(f"SELECT id FROM {JOB_TABLE} ORDER BY id")))


def write_config(path: Path, database_url: str, smtp_port: int, web_port: int,
                 *, mail: str = "concurrency = 4") -> Path:
    path.write_text(
        f'[database]\nurl = "{database_url}"\n'
        f'[mail]\ntransport = "smtp"\nsmtp_host = "127.0.0.1"\nsmtp_port = {smtp_port}\n'
        f"{mail}\n"
        f'[web]\nsecret_key = "service-tests-secret"\nhost = "127.0.0.1"\nport = {web_port}\n'
        f'base_url = "https://alerts.example.org"\n'
        f'[scheduler]\ntimezone = "Europe/London"\ndigest_cron = "0 16 * * fri"\n'
        "outbox_poll_seconds = 0.2\nreconcile_seconds = 0.5\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def sink() -> Iterator[tuple[SinkHandler, int]]:
    with smtp_sink() as running:
        yield running


@pytest.fixture
def service(tmp_path: Path, settings: Settings, engine: Engine,
            factory: sessionmaker[Session], sink: tuple[SinkHandler, int]) -> Service:
    handler, smtp_port = sink
    web_port = free_port()
    config = write_config(tmp_path / "alerts.toml", settings.database.url, smtp_port, web_port)
    return Service(config, web_port, smtp_port, handler, factory, engine, tmp_path)


def riverside(factory: sessionmaker[Session], residents: int) -> list[str]:
    """Ward RIV with `residents` confirmed weekly subscribers (and one unconfirmed)."""
    with factory() as session, session.begin():
        ward = make_ward(session, "RIV", "Riverside")
        emails = [make_subscriber(session, ward, f"resident{n:03d}@home.example").subscriber.email
                  for n in range(residents)]
        make_subscriber(session, ward, "pending@home.example", confirmed=False)
    return emails


def job_times(report: dict[str, Any]) -> dict[str, datetime | None]:
    return {
        job["id"]: None if job["next_run_time"] is None
        else datetime.fromisoformat(job["next_run_time"]).astimezone(LONDON)
        for job in report["scheduler"]["jobs"]
    }


def assert_at(moment: datetime | None, *, weekday: int | None, hour: int, minute: int) -> None:
    assert moment is not None
    local = moment.astimezone(LONDON)
    assert (local.hour, local.minute, local.second) == (hour, minute, 0), local
    if weekday is not None:
        assert local.weekday() == weekday, local
    assert utcnow() < moment <= utcnow() + timedelta(days=7 if weekday is not None else 1)


def test_run_schedules_every_job_and_sends_what_is_queued(service: Service,
                                                          feeds: FeedServer) -> None:
    emails = riverside(service.factory, 5)
    with service.factory() as session, session.begin():
        make_subscriber(session, make_ward(session, "HIL", "Hillcrest"), "hill@home.example")
        get_ward(session, "HIL").digest_cron = "30 7 * * mon"
    service.cli("sources", "add", "--ward", "RIV", "--kind", "rss",
                feeds.put("/riv.xml", EMPTY_FEED))

    process, report = service.start_and_wait()
    try:
        assert report["status"] == "ok" and report["database"] == "ok"
        assert report["scheduler"]["running"] is True
        times = job_times(report)
        assert set(times) == {"collect:1", "digest:HIL:daily", "digest:HIL:weekly",
                              "digest:RIV:daily", "digest:RIV:weekly", "replies:reminders",
                              "reconcile"}
        assert_at(times["digest:RIV:weekly"], weekday=4, hour=16, minute=0)  # Friday 16:00
        assert_at(times["digest:RIV:daily"], weekday=None, hour=16, minute=0)
        assert_at(times["digest:HIL:weekly"], weekday=0, hour=7, minute=30)  # Monday 07:30
        assert_at(times["digest:HIL:daily"], weekday=None, hour=7, minute=30)

        service.cli("post", "--ward", "RIV", "--title", "Cuppa with a copper",
                    "--body", "Mill Lane café, Saturday at ten.")
        service.cli("digest", "send", "--ward", "RIV")
        wait_for(lambda: len(service.sink.received) >= 5, what="five digests", process=process)
        wait_for(lambda: (healthz(service.base_url) or {}).get("outbox", {}).get("queued") == 0,
                 what="an empty outbox", process=process)
    finally:
        status = process.stop()
    assert status == 0, process.output()
    assert service.recipients() == Counter(emails)
    log = process.output()
    assert "alerts run: pid" in log and f"web on {service.base_url}" in log
    assert "alerts run: stopped" in log
    assert "@home.example" not in log


def test_sigterm_while_sending_loses_nothing_and_a_restart_duplicates_no_job(
    service: Service,
) -> None:
    service.configure(mail="batch_size = 10\nconcurrency = 2")
    emails = riverside(service.factory, 60)
    slow_down(service.sink, 0.05)
    service.cli("post", "--ward", "RIV", "--title", "Bikes marked", "--body", "Free marking.")

    process, _ = service.start_and_wait()
    jobs_before = service.job_ids()
    service.cli("digest", "send", "--ward", "RIV")
    wait_for(lambda: len(service.sink.received) >= 12, what="the first sends", process=process)
    status = process.stop(timeout=15)  # it finishes the batch in hand first
    assert status == 0, process.output()
    sent_before_restart = len(service.sink.received)
    statuses = service.statuses()
    assert 0 < sent_before_restart < 60, "stopped too late to show anything"
    assert statuses == Counter({"sent": sent_before_restart, "queued": 60 - sent_before_restart})

    again, _ = service.start_and_wait()
    try:
        wait_for(lambda: len(service.sink.received) >= 60, what="the rest", process=again)
        jobs_after = service.job_ids()
    finally:
        status = again.stop()
    assert status == 0, again.output()
    assert service.recipients() == Counter(emails)  # each resident once: none lost, none twice
    assert service.statuses() == Counter({"sent": 60})
    assert jobs_after == jobs_before == sorted(set(jobs_after))
    assert jobs_after == ["digest:RIV:daily", "digest:RIV:weekly", "reconcile",
                          "replies:reminders"]


def test_a_second_signal_stops_at_once_and_leaves_the_batch_to_its_lease(
    service: Service,
) -> None:
    service.configure(mail="batch_size = 10\nconcurrency = 2")
    riverside(service.factory, 20)
    slow_down(service.sink, 1.0)  # a batch of ten takes five seconds
    service.cli("post", "--ward", "RIV", "--title", "Bikes marked", "--body", "Free marking.")
    process, _ = service.start_and_wait()
    service.cli("digest", "send", "--ward", "RIV")
    wait_for(lambda: service.statuses()["sending"] == 10, what="a batch in flight",
             process=process)
    process.send(signal.SIGTERM)
    time.sleep(0.3)
    started = time.monotonic()
    assert process.stop(signal.SIGTERM, timeout=5) == 0, process.output()
    assert time.monotonic() - started < 4
    assert "stopping at once" in process.output()
    # The cancelled batch stays leased (then claimed again), but for any message the relay
    # had already accepted (at most the two connections' worth): it is recorded as sent.
    # The next batch was never claimed.
    statuses = service.statuses()
    assert statuses["queued"] == 10 and statuses["sending"] + statuses["sent"] == 10
    assert statuses["sent"] <= 2, statuses
    with service.factory() as session:
        leases = session.scalars(select(Delivery.lease_until).where(
            Delivery.status == "sending")).all()
    assert all(lease is not None and lease > utcnow() for lease in leases)


def test_a_digest_missed_while_stopped_runs_once_on_restart(service: Service) -> None:
    emails = riverside(service.factory, 3)
    process, _ = service.start_and_wait()
    assert process.stop() == 0
    service.cli("post", "--ward", "RIV", "--title", "Road closed", "--body", "Until Friday.")
    missed = utcnow() - timedelta(minutes=10)
    # Rewind the stored job as if 16:00 had passed while the service was down. (Through the
    # store itself: a scheduler started here would run the job as it shut down.)
    store = SQLAlchemyJobStore(engine=service.engine, tablename=JOB_TABLE)
    store.start(None, "default")
    job = store.lookup_job("digest:RIV:weekly")
    job.next_run_time = missed
    store.update_job(job)

    again, _ = service.start_and_wait()
    try:
        wait_for(lambda: len(service.sink.received) >= 3, what="the missed digest",
                 process=again)
        times = job_times(wait_for(lambda: healthz(service.base_url), what="/healthz"))
    finally:
        assert again.stop() == 0, again.output()
    assert service.recipients() == Counter(emails)
    assert_at(times["digest:RIV:weekly"], weekday=4, hour=16, minute=0)


def test_wards_sources_and_crons_changed_while_running_get_their_jobs(
    service: Service, feeds: FeedServer
) -> None:
    riverside(service.factory, 1)
    service.cli("sources", "add", "--ward", "RIV", "--kind", "rss",
                feeds.put("/riv.xml", EMPTY_FEED))
    process, report = service.start_and_wait()
    try:
        assert "collect:1" in job_times(report)
        service.cli("wards", "add", "NEW", "Newtown", "--team-email", "new@police.example")
        service.cli("sources", "add", "--ward", "NEW", "--kind", "atom",
                    feeds.put("/new.xml", EMPTY_FEED))
        service.cli("sources", "remove", "1")
        service.cli("wards", "set", "RIV", "--digest-cron", "45 8 * * mon")

        def reconciled() -> dict[str, datetime | None] | None:
            times = job_times(healthz(service.base_url) or {"scheduler": {"jobs": []}})
            monday = times.get("digest:RIV:weekly")
            done = ("digest:NEW:weekly" in times and "collect:2" in times
                    and "collect:1" not in times and monday is not None
                    and monday.astimezone(LONDON).weekday() == 0)
            return times if done else None

        times = wait_for(reconciled, what="the jobs to follow the changes", timeout=5,
                         process=process)
    finally:
        assert process.stop() == 0, process.output()
    assert set(times) == {"collect:2", "digest:NEW:daily", "digest:NEW:weekly",
                          "digest:RIV:daily", "digest:RIV:weekly", "replies:reminders",
                          "reconcile"}
    assert_at(times["digest:RIV:weekly"], weekday=0, hour=8, minute=45)
    assert_at(times["digest:RIV:daily"], weekday=None, hour=8, minute=45)
    assert_at(times["digest:NEW:weekly"], weekday=4, hour=16, minute=0)


def test_an_urgent_alert_posted_from_another_shell_reaches_its_ward_within_ten_seconds(
    service: Service,
) -> None:
    emails = riverside(service.factory, 10)
    with service.factory() as session, session.begin():
        hillcrest = make_ward(session, "HIL", "Hillcrest")
        for n in range(3):
            make_subscriber(session, hillcrest, f"hill{n}@home.example",
                            frequency=Frequency.IMMEDIATE)
        make_subscriber(session, get_ward(session, "RIV"), "daily@home.example",
                        frequency=Frequency.DAILY)
    emails.append("daily@home.example")
    process, _ = service.start_and_wait()
    try:
        started = time.monotonic()
        service.cli("post", "--ward", "RIV", "--urgent", "--yes",
                    "--title", "Gas leak on Mill Lane",
                    "--body", "Keep windows closed; the road is shut.")
        wait_for(lambda: len(service.sink.received) >= len(emails), what="the urgent alert",
                 timeout=10, process=process)
        elapsed = time.monotonic() - started
        time.sleep(0.5)  # anything sent to the wrong ward would arrive in this time too
    finally:
        assert process.stop() == 0, process.output()
    assert elapsed < 10
    assert service.recipients() == Counter(emails), "every confirmed RIV resident, once"
    assert all("Gas leak" in r.message["Subject"] for r in service.sink.received)


def test_worker_delivers_queued_and_urgent_mail_and_stops_on_sigterm(service: Service) -> None:
    emails = riverside(service.factory, 3)
    service.cli("post", "--ward", "RIV", "--title", "Coffee morning", "--body", "All welcome.")
    service.cli("digest", "send", "--ward", "RIV")
    worker = service.start("worker")
    try:
        # The worker's start-up is in this wait too.
        wait_for(lambda: len(service.sink.received) >= 3, what="the digests", timeout=30,
                 process=worker)
        service.cli("post", "--ward", "RIV", "--urgent", "--yes",
                    "--title", "Flooding on Mill Lane",
                    "--body", "Avoid the underpass.")
        wait_for(lambda: len(service.sink.received) >= 6, what="the urgent alert",
                 process=worker)
    finally:
        status = worker.stop()
    assert status == 0, worker.output()
    assert service.recipients() == Counter(emails * 2)
    assert "alerts worker: stopped" in worker.output()
    assert not inspect(service.engine).has_table(JOB_TABLE)  # a worker schedules nothing
    assert healthz(service.base_url) is None  # and serves nothing


def test_web_alone_reports_the_jobs_the_scheduler_stored(service: Service) -> None:
    riverside(service.factory, 1)
    process, _ = service.start_and_wait()
    assert process.stop() == 0
    port = free_port()
    web = start_alerts(service.config, "web", "--port", str(port), log=service.tmp / "web.log")
    try:
        report = wait_for(lambda: healthz(f"http://127.0.0.1:{port}"), what="/healthz",
                          timeout=30, process=web)
    finally:
        assert web.stop() == 0, web.output()
    assert report["status"] == "ok" and report["scheduler"]["running"] is False
    assert [job["id"] for job in report["scheduler"]["jobs"]] == [
        "digest:RIV:daily", "digest:RIV:weekly", "reconcile", "replies:reminders"]
    assert_at(job_times(report)["digest:RIV:weekly"], weekday=4, hour=16, minute=0)


def test_web_alone_sends_what_its_pages_say_goes_out_at_once(service: Service) -> None:
    """`alerts web` with no `alerts run` or `alerts worker` beside it still delivers: an
    urgent alert, a confirmation or a my-data link is not left queued."""
    emails = riverside(service.factory, 2)
    web = service.start("web")
    try:
        wait_for(lambda: healthz(service.base_url), what="/healthz", timeout=30, process=web)
        service.cli("post", "--ward", "RIV", "--urgent", "--yes",
                    "--title", "Flooding on Mill Lane", "--body", "Avoid the underpass.")
        wait_for(lambda: len(service.sink.received) >= 2, what="the urgent alert", process=web)
    finally:
        assert web.stop() == 0, web.output()
    assert service.recipients() == Counter(emails)
    assert not inspect(service.engine).has_table(JOB_TABLE)  # and it schedules nothing


@pytest.mark.parametrize("command_name", ["run", "worker", "web"])
def test_the_default_secret_key_is_refused(service: Service, command_name: str) -> None:
    text_ = service.config.read_text().replace('secret_key = "service-tests-secret"\n', "")
    service.config.write_text(text_)
    process = service.start(command_name)
    status = process.process.wait(30)
    lines = process.output().strip().splitlines()
    assert status != 0
    assert len(lines) == 1 and "web.secret_key" in lines[0], lines


def test_run_refuses_a_database_not_initialised(tmp_path: Path,
                                                sink: tuple[SinkHandler, int]) -> None:
    config = write_config(tmp_path / "fresh.toml", f"sqlite:///{tmp_path / 'fresh.db'}",
                          sink[1], free_port())
    process = start_alerts(config, "run", log=tmp_path / "fresh.log")
    assert process.process.wait(30) != 0
    lines = process.output().strip().splitlines()
    assert len(lines) == 1 and "alerts init" in lines[0], lines


# In-process: the plan, reconciling a job store, /healthz, and the migrations.

def test_the_plan_names_one_job_per_source_ward_and_frequency(settings: Settings) -> None:
    plan = plan_jobs([("RIV", None), ("HIL", "30 7 * * mon"), ("BAD", "not a cron")], [3, 1],
                     settings)
    assert [job.id for job in plan.jobs] == [
        "collect:1", "collect:3", "digest:HIL:daily", "digest:HIL:weekly",
        "digest:RIV:daily", "digest:RIV:weekly", "replies:reminders", "reconcile"]
    assert plan.keep == {"digest:BAD:daily", "digest:BAD:weekly"}
    collect = plan.jobs[0]
    assert collect.trigger.interval == timedelta(minutes=15) and collect.trigger.jitter == 60


def test_a_configured_imap_mailbox_is_polled_by_the_scheduler_leader(
        settings: Settings) -> None:
    assert "inbound:poll" not in [job.id for job in plan_jobs([], [], settings).jobs]
    polling = dataclasses.replace(settings, inbound=dataclasses.replace(
        settings.inbound, imap_host="imap.example.org", poll_seconds=90))
    [poll] = [job for job in plan_jobs([], [], polling).jobs if job.id == "inbound:poll"]
    assert poll.trigger.interval == timedelta(seconds=90)


def test_ward_teams_are_reminded_of_open_replies_on_the_configured_cron(
        settings: Settings) -> None:
    [default] = [job for job in plan_jobs([], [], settings).jobs if job.id == "replies:reminders"]
    assert default.func == "alerts.service.jobs:remind_open_replies"
    assert str(default.trigger) == "cron[month='*', day='*', day_of_week='*', hour='8', minute='0']"
    assert str(default.trigger.timezone) == "Europe/London"
    configured = dataclasses.replace(settings, inbound=dataclasses.replace(
        settings.inbound, reminder_cron="30 9 * * mon-fri"))
    [job] = [job for job in plan_jobs([], [], configured).jobs if job.id == "replies:reminders"]
    start = datetime(2025, 6, 7, 12, 0, tzinfo=LONDON)  # a Saturday
    assert job.trigger.get_next_fire_time(None, start) == datetime(2025, 6, 9, 9, 30,
                                                                   tzinfo=LONDON)
    assert job.signature != default.signature  # so reconcile reschedules it
    broken = dataclasses.replace(settings, inbound=dataclasses.replace(
        settings.inbound, reminder_cron="not a cron"))
    plan = plan_jobs([], [], broken)
    assert "replies:reminders" not in [job.id for job in plan.jobs]
    assert "replies:reminders" in plan.keep  # the last good schedule stays


def test_every_job_is_a_plain_function_so_it_runs_in_a_worker_thread(
    settings: Settings,
) -> None:
    settings = dataclasses.replace(settings, inbound=dataclasses.replace(
        settings.inbound, imap_host="imap.example.org"))
    plan = plan_jobs([("RIV", None)], [1], settings)
    for spec in plan.jobs:
        module, name = spec.func.split(":")
        function = getattr(importlib.import_module(module), name)
        assert callable(function) and not introspect.iscoroutinefunction(function), spec.func


def test_reconcile_keeps_unchanged_jobs_and_follows_changes(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    with factory() as session, session.begin():
        make_ward(session, "RIV")
        make_ward(session, "OLD")
    scheduler = BackgroundScheduler(jobstores={"default": MemoryJobStore()},
                                    timezone="Europe/London")
    scheduler.start(paused=True)
    try:
        first = reconcile(scheduler, factory, settings)
        assert sorted(first.added) == ["digest:OLD:daily", "digest:OLD:weekly",
                                       "digest:RIV:daily", "digest:RIV:weekly", "reconcile",
                                       "replies:reminders"]
        rewound = utcnow() - timedelta(minutes=5)
        scheduler.modify_job("digest:RIV:daily", next_run_time=rewound)
        scheduler.add_job(print, "interval", minutes=1, id="someone-elses")
        with factory() as session, session.begin():
            get_ward(session, "RIV").digest_cron = "0 9 * * mon"
            session.delete(get_ward(session, "OLD"))
        second = reconcile(scheduler, factory, settings)
        assert second.added == []
        assert sorted(second.changed) == ["digest:RIV:daily", "digest:RIV:weekly"]
        assert second.removed == ["digest:OLD:daily", "digest:OLD:weekly"]
        assert not reconcile(scheduler, factory, settings)  # nothing left to do
        with factory() as session, session.begin():
            get_ward(session, "RIV").digest_cron = None
        reconcile(scheduler, factory, settings)
        scheduler.modify_job("digest:RIV:daily", next_run_time=rewound)
        assert not reconcile(scheduler, factory, settings)
        assert scheduler.get_job("digest:RIV:daily").next_run_time == rewound  # kept as stored
        assert scheduler.get_job("someone-elses") is not None
    finally:
        scheduler.shutdown(wait=False)


def get_healthz(app: FastAPI) -> httpx.Response:
    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://web") as client:
            return await client.get("/healthz")

    return asyncio.run(get())


def test_healthz_reports_the_outbox_and_fails_without_a_database(
    factory: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    riverside(factory, 2)
    with factory() as session, session.begin():
        ward = get_ward(session, "RIV")
        store_items(session, officer_source(session, ward), [officer_item(
            title="Bikes marked", body="Free marking.", kind=ItemKind.POST, starts=None,
            ends=None, location=None, now=utcnow())])
    queue_digests(factory, settings, ward_code="RIV")
    running: SchedulerStatus = {"running": True,
                                "jobs": [{"id": "reconcile", "next_run_time": None}]}
    body = get_healthz(create_app(factory, scheduler=lambda: running,
                                  scheduler_required=True)).json()
    oldest = body["outbox"].pop("oldest_queued_seconds")
    assert body == {"status": "ok", "database": "ok", "scheduler": running,
                    "outbox": {"queued": 2, "sending": 0, "failed": 0, "due": 2}}
    assert 0 <= oldest < 60
    stopped = get_healthz(create_app(factory, scheduler_required=True))
    assert stopped.status_code == 200 and stopped.json()["status"] == "degraded"

    empty = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        broken = get_healthz(create_app(session_factory(empty)))
    finally:
        empty.dispose()
    assert broken.status_code == 503
    assert broken.json()["status"] == "degraded"
    assert "no such table" in broken.json()["database"]


def test_healthz_answers_503_stalled_when_a_scheduling_process_sees_an_overdue_job(
    factory: sessionmaker[Session],
) -> None:
    stalled: SchedulerStatus = {
        "running": True, "role": "leader",
        "jobs": [{"id": "digest:RIV:weekly", "next_run_time": "2025-06-06T16:00:00+01:00"}],
        "stalled": [{"id": "digest:RIV:weekly", "overdue_seconds": 900}],
    }
    leader = get_healthz(create_app(factory, scheduler=lambda: stalled,
                                    scheduler_required=True))
    assert leader.status_code == 503
    assert leader.json()["status"] == "stalled" and leader.json()["database"] == "ok"
    assert leader.json()["scheduler"]["stalled"] == stalled["stalled"]
    # `alerts web` runs no jobs: it names the stalled ones and goes on serving pages.
    web = get_healthz(create_app(factory, scheduler=lambda: {**stalled, "running": False}))
    assert web.status_code == 200 and web.json()["status"] == "ok"
    assert web.json()["scheduler"]["stalled"] == stalled["stalled"]


def test_the_migrations_leave_the_scheduler_table_alone(engine: Engine) -> None:
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename=JOB_TABLE)})
    scheduler.start(paused=True)  # the job store creates its table
    scheduler.shutdown(wait=False)
    assert inspect(engine).has_table(JOB_TABLE)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    command.check(config)  # autogenerate finds nothing to drop or change


def test_two_services_share_one_database_and_one_scheduler_leader(
    service: Service, tmp_path: Path
) -> None:
    emails = riverside(service.factory, 2)
    first, report = service.start_and_wait()
    second_port = free_port()
    second_config = tmp_path / "second.toml"
    url = service.engine.url.render_as_string(hide_password=False)
    write_config(second_config, url, service.smtp_port, second_port)
    second = start_alerts(second_config, "run", log=tmp_path / "second.log")
    second_url = f"http://127.0.0.1:{second_port}"
    try:
        following = wait_for(lambda: healthz(second_url), what="the second /healthz",
                             timeout=30, process=second)
        assert report["scheduler"]["role"] == "leader"
        assert following["scheduler"]["role"] == "follower"
        assert following["status"] == "ok"
        assert following["scheduler"]["running"] is False

        service.cli("post", "--ward", "RIV", "--urgent", "--yes", "--title", "Power cut",
                    "--body", "Street lights are off on Mill Lane.")
        wait_for(lambda: len(service.sink.received) >= 2, what="the alert", process=second)
        assert first.stop() == 0, first.output()

        def leading() -> dict[str, Any] | None:
            now = healthz(second_url)
            return now if now and now["scheduler"].get("role") == "leader" else None

        took_over = wait_for(leading, what="the follower to take over", timeout=15,
                             process=second)
        assert {job["id"] for job in took_over["scheduler"]["jobs"]} >= {
            "digest:RIV:daily", "digest:RIV:weekly", "replies:reminders", "reconcile"}
    finally:
        assert second.stop() == 0, second.output()
    assert service.recipients() == Counter(emails), "each copy sent once by one of the two"
    assert "took over the scheduler" in second.output()
    assert len(service.job_ids()) == len(set(service.job_ids()))


# Outages of the store under a running `alerts run`.

DIGEST = "digest:RIV:weekly"
GRACE = 2  # scheduler.stall_grace_seconds in these tests


def configure_for_outages(service: Service) -> None:
    """A short busy timeout (a write gives up on a lock after half a second) and a short
    stall grace, on top of the service tests' config."""
    text = service.config.read_text(encoding="utf-8")
    text = text.replace("[mail]\n", "busy_timeout_seconds = 0.5\n[mail]\n", 1)
    service.config.write_text(text + f"stall_grace_seconds = {GRACE}\n", encoding="utf-8")


def due_at(engine: Engine, job_id: str, moment: datetime) -> None:
    """Move a stored job's next run, as if its time had come (through the store itself)."""
    store = SQLAlchemyJobStore(engine=engine, tablename=JOB_TABLE)
    store.start(None, "default")
    job = store.lookup_job(job_id)
    job.next_run_time = moment
    store.update_job(job)


def answer(base_url: str) -> tuple[int, dict[str, Any]] | None:
    """/healthz's status code and report, or None while nothing answers."""
    try:
        response = httpx.get(f"{base_url}/healthz", timeout=3.0)
    except httpx.TransportError:
        return None
    report: dict[str, Any] = response.json()
    return response.status_code, report


def ran_since(service: Service, job_id: str, moment: datetime) -> bool:
    """Whether the job's stored next run shows it ran after `moment`."""
    got = answer(service.base_url)
    if got is None:
        return False
    [job] = [job for job in got[1]["scheduler"]["jobs"] if job["id"] == job_id]
    return datetime.fromisoformat(job["next_run_time"]) > moment + timedelta(seconds=1)


def stalled_ids(report: dict[str, Any]) -> list[str]:
    return [job["id"] for job in report["scheduler"].get("stalled", [])]


def wait_until_stalled(service: Service, process: AlertsProcess) -> dict[str, Any]:
    def stalled() -> dict[str, Any] | None:
        got = answer(service.base_url)
        if got is None or DIGEST not in stalled_ids(got[1]):
            return None
        code, report = got
        assert code == 503 and report["status"] == "stalled", got
        return report

    report: dict[str, Any] = wait_for(stalled, what="/healthz to say the digest stalled",
                                      timeout=30, process=process, interval=0.2)
    return report


def wait_until_healthy(service: Service, process: AlertsProcess) -> None:
    def healthy() -> bool:
        got = answer(service.base_url)
        return got is not None and got[0] == 200 and got[1]["status"] == "ok"

    wait_for(healthy, what="/healthz to be 200 ok again", timeout=30, process=process,
             interval=0.2)


def assert_said_once(log: str) -> None:
    """The store's failure and its return are one line each, not one per retry."""
    assert log.count("cannot use its job store") <= 1, log
    assert log.count("job store answers again") <= 1, log
    assert log.count("cannot check the scheduler lock") <= 1, log
    assert log.count("delivery pass failed") <= 1, log
    assert log.count("delivery works again") <= 1, log
    assert "@home.example" not in log


@contextmanager
def exclusive_lock(database: Path) -> Iterator[None]:
    """Another connection holding SQLite's write lock (BEGIN EXCLUSIVE) until the block ends."""
    with closing(sqlite3.connect(database, isolation_level=None, timeout=30)) as holder:
        holder.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")


@pytest.mark.stores("sqlite")
def test_a_database_locked_past_the_busy_timeout_stalls_the_scheduler_until_it_is_free(
    service: Service,
) -> None:
    configure_for_outages(service)
    emails = riverside(service.factory, 3)
    service.cli("post", "--ward", "RIV", "--title", "Road closed", "--body", "Until Friday.")
    process, _ = service.start_and_wait()
    try:
        # The weekly digest comes due three seconds from now, while the lock is held.
        due_at(service.engine, DIGEST, utcnow() + timedelta(seconds=3))
        with exclusive_lock(Path(service.engine.url.database or "")):
            report = wait_until_stalled(service, process)
            assert report["database"] == "ok"  # reading still works; writing does not
            status = run_alerts(service.config, "status", "--json")
            text = run_alerts(service.config, "status")
            assert not service.sink.received  # nothing ran while the store was locked
        assert status.returncode == 0, status.stderr
        assert DIGEST in [job["id"] for job in json.loads(status.stdout)["scheduler"]["stalled"]]
        assert "scheduler: STALLED" in text.stdout and DIGEST in text.stdout, text.stdout

        wait_for(lambda: len(service.sink.received) >= 3, what="the digest that was due",
                 timeout=30, process=process)
        wait_until_healthy(service, process)
        time.sleep(1.0)  # a second run of the digest would queue and send in this time
    finally:
        assert process.stop() == 0, process.output()
    assert service.recipients() == Counter(emails)  # each resident once
    log = process.output()
    assert "cannot use its job store" in log and "job store answers again" in log
    assert_said_once(log)


@pytest.mark.stores("postgresql")
def test_a_postgresql_restart_under_alerts_run_stalls_the_scheduler_until_it_is_back(
    store: str, tmp_path: Path, sink: tuple[SinkHandler, int],
) -> None:
    handler, smtp_port = sink
    # A cluster of its own: stopping the run's shared cluster would break other tests.
    with postgres_cluster() as cluster:
        engine = make_engine(cluster.url(cluster.create_database()))
        migrate(engine)
        web_port = free_port()
        url = engine.url.render_as_string(hide_password=False)
        config = write_config(tmp_path / "alerts.toml", url, smtp_port, web_port)
        service = Service(config, web_port, smtp_port, handler, session_factory(engine),
                          engine, tmp_path)
        configure_for_outages(service)
        emails = riverside(service.factory, 3)
        service.cli("post", "--ward", "RIV", "--title", "Road closed", "--body", "Until Friday.")
        process, _ = service.start_and_wait()
        try:
            rewound = utcnow()
            due_at(service.engine, DIGEST, rewound + timedelta(seconds=6))
            # Once the scheduler has run a job after that, it has read the new time: what it
            # remembers names the overdue digest while the database is away.
            wait_for(lambda: ran_since(service, "reconcile", rewound), what="a reconcile",
                     process=process)
            cluster.stop()
            try:
                report = wait_until_stalled(service, process)
                assert report["database"] != "ok"
                assert not service.sink.received
            finally:
                cluster.start()
            wait_for(lambda: len(service.sink.received) >= 3, what="the digest that was due",
                     timeout=40, process=process)
            wait_until_healthy(service, process)
            time.sleep(1.0)
        finally:
            assert process.stop() == 0, process.output()
            engine.dispose()
    assert service.recipients() == Counter(emails)
    assert_said_once(process.output())


def test_alerts_status_names_a_job_the_scheduler_left_overdue(service: Service) -> None:
    riverside(service.factory, 1)
    process, _ = service.start_and_wait()
    assert process.stop() == 0, process.output()
    assert "scheduler: STALLED" not in service.cli("status")
    # As if the leader had died ten minutes ago, with the digest due then: nothing ran it.
    due_at(service.engine, DIGEST, utcnow() - timedelta(minutes=10))

    text = service.cli("status")
    report = json.loads(service.cli("status", "--json"))["scheduler"]
    assert "scheduler: STALLED" in text and DIGEST in text, text
    [stalled] = [job for job in report["stalled"] if job["id"] == DIGEST]
    assert 600 <= stalled["overdue_seconds"] < 700


# A job the store can refer to by name: what ran, in order.
RUNS: list[str] = []


def record_run(name: str) -> None:
    RUNS.append(name)


@pytest.mark.empty_database
def test_a_job_started_as_its_next_run_could_not_be_stored_runs_once_when_the_store_is_back(
    tmp_path: Path,
) -> None:
    """The failing pass had already started the job; its next run is stored first when the
    store answers, so the job does not come due again at once."""
    from alerts.service.scheduler import make_scheduler

    path = tmp_path / "jobs.db"
    engine = make_engine(f"sqlite:///{path}", busy_timeout=0.2)
    RUNS.clear()

    async def scenario() -> None:
        scheduler = make_scheduler(engine, Settings())
        scheduler.start(paused=True)
        scheduler.add_job("tests.service.test_service:record_run", "interval", hours=1,
                          args=["hourly"],
                          id="hourly", next_run_time=datetime.now(ZoneInfo("UTC"))
                          + timedelta(seconds=1))
        with closing(sqlite3.connect(path, isolation_level=None)) as locker:
            locker.execute("BEGIN EXCLUSIVE")
            scheduler.resume()
            deadline = time.monotonic() + 20
            while scheduler.store_failure is None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert scheduler.store_failure is not None, "the job's next run was stored"
            await asyncio.sleep(0.5)
            assert RUNS == ["hourly"]
            locker.execute("ROLLBACK")
        deadline = time.monotonic() + 30
        while scheduler.store_failure is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert scheduler.store_failure is None, "the scheduler never found its store again"
        await asyncio.sleep(1.0)
        scheduler.shutdown(wait=False)
        assert RUNS == ["hourly"]
        next_run = scheduler.store.lookup_job("hourly").next_run_time
        assert next_run > datetime.now(ZoneInfo("UTC")) + timedelta(minutes=50)

    try:
        asyncio.run(scenario())
    finally:
        engine.dispose()
