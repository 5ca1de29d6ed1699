"""`GET /metrics`: the service in the Prometheus text format, for an operator's monitoring.

Off unless `metrics.token` is set; then the address answers only `Authorization: Bearer
<token>` (compared in constant time) and is a 404 to anyone else, as it is while off.

What it serves is read from the database at scrape time (`StoreCollector`), through the same
reports `alerts status` and `/healthz` print: the outbox by kind and state, failures by SMTP
code, the send rate, the oldest queued row, today's sends, hard bounces and complaints,
inbound mail by kind, open reply threads and the oldest one's age, and each scheduled job's
lag, last success and last failure (Unix time) and failures in a row (`job_runs`, read with
the job table in one query). A job that has never succeeded (or never failed) has no
last-success (or last-failure) sample at all, not a NaN or a 0: an absent series is
Prometheus's way of saying "never" (an alert can use `absent()`, and the lag still shows a
job that never ran on time), where a 0 would read as 1970 and a NaN compares false in every
rule. The web's own requests are counted by `RequestMetrics` under the route's template
(`/unsubscribe/{token}`), never the path a client asked for, which may hold a token.
Counts only: no address, subject or reply text is ever a label.

Each app has its own `CollectorRegistry`, so two apps in one process never share counts.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterator
from datetime import datetime

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alerts.core.config import Settings
from alerts.core.scheduler_store import JobStatus, SchedulerStatus
from alerts.delivery.status import outbox_by_kind, outbox_report, smtp_class
from alerts.inbound.status import daily_rates, inbound_report, oldest_open_thread_seconds
from subscriptions.base import utcnow

UNMATCHED = "unmatched"  # a request no route answered: its path is never a label


def install_metrics(app: FastAPI, factory: sessionmaker[Session], settings: Settings,
                    scheduler: Callable[[], SchedulerStatus] | None) -> None:
    """`/metrics` and the request counting, when `metrics.token` is set; nothing otherwise."""
    token = settings.metrics.token
    if not token:
        return
    registry = CollectorRegistry()
    registry.register(StoreCollector(factory, scheduler))
    app.add_middleware(RequestMetrics, registry=registry)
    expected = f"Bearer {token}".encode()

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise HTTPException(status_code=404)  # as any address that does not exist
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class RequestMetrics:
    """ASGI middleware: each HTTP request counted by route template, method and status, and
    timed in a histogram by route template."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter("alerts_http_requests", "Web requests answered",
                                ["route", "method", "status"], registry=registry)
        self.latency = Histogram("alerts_http_request_duration_seconds",
                                 "Time to answer a web request", ["route"], registry=registry)
        # Each label set's children, looked up once (a route template, a method, a status:
        # a few dozen at most), not through `labels()` and its lock at every request.
        self.counted: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            key = (route_template(scope), scope.get("method", ""), status)
            children = self.counted.get(key)
            if children is None:
                children = self.counted[key] = (
                    self.requests.labels(key[0], key[1], str(status)),
                    self.latency.labels(key[0]))
            children[0].inc()
            children[1].observe(time.perf_counter() - started)


def route_template(scope: Scope) -> str:
    """The matched route's template, as the router left it in the scope."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class StoreCollector(Collector):
    """The database's counts, read afresh at each scrape."""

    def __init__(self, factory: sessionmaker[Session],
                 scheduler: Callable[[], SchedulerStatus] | None) -> None:
        self.factory = factory
        self.scheduler = scheduler

    def collect(self) -> Iterator[Metric]:
        now = utcnow()
        up = GaugeMetricFamily("alerts_database_up", "1 when the database answered this scrape")
        try:
            families = list(self.store_families(now))
        except Exception:
            families = []
        up.add_metric([], 1.0 if families else 0.0)
        yield up
        yield from families
        yield from self.scheduler_families(now)

    def store_families(self, now: datetime) -> Iterator[Metric]:
        with self.factory() as session:
            report = outbox_report(session, now)
            by_kind = outbox_by_kind(session)
            inbound = inbound_report(session, now)
            oldest_reply = oldest_open_thread_seconds(session, now)
            today = daily_rates(session, now, days=1)[0]

        rows = GaugeMetricFamily("alerts_outbox_deliveries", "Outbox rows by kind and state",
                                 labels=["kind", "state"])
        for kind, states in by_kind.items():
            for state, count in states.items():
                rows.add_metric([kind, state], count)
        yield rows
        yield _gauge("alerts_outbox_due", "Outbox rows due to be sent now", report.due)
        yield _gauge("alerts_outbox_oldest_queued_age_seconds",
                     "Age of the oldest queued outbox row (0 when none is queued)",
                     report.oldest_queued_seconds or 0.0)
        rate = GaugeMetricFamily("alerts_outbox_sent_recently", "Rows sent in the last window",
                                 labels=["window"])
        rate.add_metric(["minute"], report.sent_last_minute)
        rate.add_metric(["hour"], report.sent_last_hour)
        yield rate
        failed = GaugeMetricFamily("alerts_outbox_failed", "Failed outbox rows by SMTP code",
                                   labels=["smtp_class"])
        classes: dict[str, int] = {}
        for label, count in report.failures_by_reason.items():
            key = smtp_class(label)
            classes[key] = classes.get(key, 0) + count
        for key, count in sorted(classes.items()):
            failed.add_metric([key], count)
        yield failed

        day = GaugeMetricFamily("alerts_residents_mail_today",
                                "Today (UTC): residents' emails sent, hard bounces, complaints",
                                labels=["event"])
        day.add_metric(["sent"], today.sent)
        day.add_metric(["hard_bounce"], today.hard_bounces)
        day.add_metric(["complaint"], today.complaints)
        yield day
        kinds = GaugeMetricFamily("alerts_inbound_last_day", "Inbound mail of the last day",
                                  labels=["kind"])
        for kind, count in inbound.last_day_by_kind.items():
            kinds.add_metric([kind], count)
        yield kinds
        yield _gauge("alerts_inbound_held_last_week", "Inbound mail held for a person",
                     inbound.held_last_week)
        yield _gauge("alerts_replies_open", "Reply threads not yet handled",
                     inbound.open_threads)
        yield _gauge("alerts_replies_oldest_open_age_seconds",
                     "Age of the oldest unhandled reply thread (0 when none)",
                     oldest_reply or 0.0)
        yield _gauge("alerts_replies_to_forward", "Replies waiting to reach their ward team",
                     inbound.replies_to_forward)
        yield _gauge("alerts_replies_not_forwarded", "Replies the ward team never got",
                     inbound.replies_not_forwarded)

    def scheduler_families(self, now: datetime) -> Iterator[Metric]:
        try:
            status = self.scheduler() if self.scheduler is not None else None
        except Exception:
            status = None
        alive = status is not None and (status["running"] or status.get("role") == "follower")
        yield _gauge("alerts_scheduler_alive",
                     "1 when this process's scheduler runs (or follows a leader)",
                     1.0 if alive else 0.0)
        lag = GaugeMetricFamily("alerts_scheduler_job_lag_seconds",
                                "How far past its planned time each job is (0 when not due)",
                                labels=["job"])
        for job in status["jobs"] if status is not None else []:
            planned = job["next_run_time"]
            late = 0.0 if planned is None else \
                (now - datetime.fromisoformat(planned)).total_seconds()
            lag.add_metric([job["id"]], max(late, 0.0))
        yield lag
        yield from _job_run_families(status["jobs"] if status is not None else [])
        yield _gauge("alerts_scheduler_jobs_stalled",
                     "Jobs overdue by more than scheduler.stall_grace_seconds",
                     len(status.get("stalled", [])) if status is not None else 0)


def _job_run_families(jobs: list[JobStatus]) -> Iterator[Metric]:
    success = GaugeMetricFamily("alerts_scheduler_job_last_success_timestamp_seconds",
                                "When each job last succeeded (Unix time; absent if never)",
                                labels=["job"])
    failure = GaugeMetricFamily("alerts_scheduler_job_last_failure_timestamp_seconds",
                                "When each job last failed (Unix time; absent if never)",
                                labels=["job"])
    in_a_row = GaugeMetricFamily("alerts_scheduler_job_consecutive_failures",
                                 "How many of each job's last runs failed in a row (absent "
                                 "if it never ran)", labels=["job"])
    for job in jobs:
        if succeeded := job.get("last_success_at"):
            success.add_metric([job["id"]], datetime.fromisoformat(succeeded).timestamp())
        if failed := job.get("last_failure_at"):
            failure.add_metric([job["id"]], datetime.fromisoformat(failed).timestamp())
        if "consecutive_failures" in job:
            in_a_row.add_metric([job["id"]], job["consecutive_failures"])
    yield success
    yield failure
    yield in_a_row


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
