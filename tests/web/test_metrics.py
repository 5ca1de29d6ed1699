"""`GET /metrics`: off (404) until `metrics.token` is set, then only for `Authorization:
Bearer <token>`; its body is the Prometheus text format (read back with prometheus-client's
own parser) and its counts move as mail is queued and sent. Web requests are counted under
their route's template, never the path asked for (FastAPI's TestClient, both stores)."""

from __future__ import annotations

import dataclasses

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.core.scheduler_store import SchedulerStatus
from alerts.delivery.fanout import fan_out
from alerts.delivery.outbox import Delivery, DeliveryStatus
from alerts.delivery.sender import deliver_due
from alerts.mail.messages import Message
from alerts.web.app import create_app
from tests.factories import make_subscriber, make_ward

TOKEN = "s3cret-metrics-token"


def with_token(settings: Settings, token: str = TOKEN) -> Settings:
    return dataclasses.replace(settings, metrics=dataclasses.replace(settings.metrics,
                                                                     token=token))


def scrape(client: TestClient) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Each sample's name → its (labels, value) pairs, as prometheus-client parses them."""
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def total(samples: dict[str, list[tuple[dict[str, str], float]]], name: str,
          **labels: str) -> float:
    return sum(value for found, value in samples.get(name, [])
               if all(found.get(key) == want for key, want in labels.items()))


def queue_news(factory: sessionmaker[Session], residents: int) -> list[str]:
    """A ward with `residents` confirmed subscribers and one message queued to each; returns
    their addresses."""
    with factory() as session:
        ward = make_ward(session)
        emails = [make_subscriber(session, ward).subscriber.email for _ in range(residents)]
        message = Message(ward_id=ward.id, kind="digest", subject="Your neighbourhood news",
                          html="<p>news</p>", text="news", calendar=None)
        session.add(message)
        session.flush()
        assert fan_out(session, message) == residents
        session.commit()
    return emails


def test_metrics_is_not_found_while_no_token_is_set(
        factory: sessionmaker[Session], settings: Settings) -> None:
    client = TestClient(create_app(factory, settings=settings))
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


def test_metrics_is_not_found_without_the_right_token(
        factory: sessionmaker[Session], settings: Settings) -> None:
    client = TestClient(create_app(factory, settings=with_token(settings)))
    nowhere = client.get("/no-such-address")
    assert client.get("/metrics").status_code == 404
    for wrong in (f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", TOKEN, f"Basic {TOKEN}"):
        response = client.get("/metrics", headers={"Authorization": wrong})
        assert response.status_code == 404
        assert response.text == nowhere.text, "nothing tells it from a missing address"


def test_the_outbox_counts_move_as_mail_is_queued_and_sent(
        factory: sessionmaker[Session], settings: Settings) -> None:
    settings = with_token(settings)
    client = TestClient(create_app(factory, settings=settings))
    before = scrape(client)
    assert total(before, "alerts_database_up") == 1
    assert total(before, "alerts_outbox_deliveries") == 0

    emails = queue_news(factory, 3)
    queued = scrape(client)
    assert total(queued, "alerts_outbox_deliveries", kind="digest", state="queued") == 3
    assert total(queued, "alerts_outbox_deliveries", state="sent") == 0
    assert total(queued, "alerts_outbox_due") == 3
    assert total(queued, "alerts_outbox_oldest_queued_age_seconds") >= 0

    report = deliver_due(factory, settings)
    assert report.sent == 3
    sent = scrape(client)
    assert total(sent, "alerts_outbox_deliveries", kind="digest", state="sent") == 3
    assert total(sent, "alerts_outbox_deliveries", state="queued") == 0
    assert total(sent, "alerts_outbox_due") == 0
    assert total(sent, "alerts_outbox_oldest_queued_age_seconds") == 0
    assert total(sent, "alerts_outbox_sent_recently", window="minute") == 3
    assert total(sent, "alerts_outbox_sent_recently", window="hour") == 3
    assert total(sent, "alerts_residents_mail_today", event="sent") == 3
    assert total(sent, "alerts_residents_mail_today", event="hard_bounce") == 0
    assert total(sent, "alerts_replies_open") == 0

    body = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    for email in emails:
        assert email not in body
        assert email.split("@")[1] not in body


def test_requests_are_counted_under_their_route_template_never_their_path(
        factory: sessionmaker[Session], settings: Settings) -> None:
    client = TestClient(create_app(factory, settings=with_token(settings)))
    secret = "not-a-real-token-but-secret-looking"
    client.get(f"/unsubscribe/{secret}")
    client.get("/healthz")
    client.get("/healthz")
    client.get("/no/such/page/with-a-token-in-it")

    samples = scrape(client)
    assert total(samples, "alerts_http_requests_total", route="/healthz", method="GET",
                 status="200") == 2
    assert total(samples, "alerts_http_requests_total", route="/unsubscribe/{token}") == 1
    assert total(samples, "alerts_http_requests_total", route="unmatched", status="404") == 1
    assert total(samples, "alerts_http_request_duration_seconds_count", route="/healthz") == 2
    body = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    assert secret not in body
    assert "with-a-token-in-it" not in body


def test_the_scheduler_is_alive_and_each_job_s_lag_is_shown(
        factory: sessionmaker[Session], settings: Settings) -> None:
    status: SchedulerStatus = {"running": True, "jobs": [
        {"id": "collect", "next_run_time": "2000-01-01T00:00:00+00:00"},
        {"id": "digest", "next_run_time": "2999-01-01T00:00:00+00:00"},
    ], "stalled": [{"id": "collect", "overdue_seconds": 999}]}
    client = TestClient(create_app(factory, settings=with_token(settings),
                                   scheduler=lambda: status))
    samples = scrape(client)
    assert total(samples, "alerts_scheduler_alive") == 1
    assert total(samples, "alerts_scheduler_job_lag_seconds", job="collect") > 3600
    assert total(samples, "alerts_scheduler_job_lag_seconds", job="digest") == 0
    assert total(samples, "alerts_scheduler_jobs_stalled") == 1

    idle = TestClient(create_app(factory, settings=with_token(settings)))
    assert total(scrape(idle), "alerts_scheduler_alive") == 0


def test_failures_are_counted_by_smtp_code_and_other_error_text_names_nothing(
        factory: sessionmaker[Session], settings: Settings) -> None:
    queue_news(factory, 3)
    errors = ["550 5.1.1 <gone@home.example>: user unknown", "550 5.1.1 mailbox unavailable",
              "gone@home.example refused by the relay"]
    with factory() as session:
        for delivery, error in zip(session.scalars(select(Delivery)).all(), errors, strict=True):
            delivery.status = DeliveryStatus.FAILED
            delivery.last_error = error
        session.commit()
    client = TestClient(create_app(factory, settings=with_token(settings)))
    samples = scrape(client)
    assert total(samples, "alerts_outbox_failed", smtp_class="550 5.1.1") == 2
    assert total(samples, "alerts_outbox_failed", smtp_class="other") == 1
    assert total(samples, "alerts_outbox_deliveries", state="failed") == 3
    assert "gone@" not in client.get("/metrics",
                                     headers={"Authorization": f"Bearer {TOKEN}"}).text
