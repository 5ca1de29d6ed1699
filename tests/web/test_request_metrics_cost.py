"""The request metrics look up each label set's counters once, not through `labels()` (and its
lock) at every request (issue 19): counted, never timed; what /metrics reports stays as it was
(test_metrics)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import Counter, Histogram
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.web.app import create_app


def test_request_metrics_look_up_a_routes_counters_once(
    factory: sessionmaker[Session], settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = "s3cret-metrics-token"
    client = TestClient(create_app(factory, settings=dataclasses.replace(
        settings, metrics=dataclasses.replace(settings.metrics, token=token))))
    looked_up: list[tuple[str, ...]] = []
    for kind in (Counter, Histogram):
        original = kind.labels

        def labels(self: Any, *values: str, original: Any = original) -> Any:
            looked_up.append(values)
            return original(self, *values)

        monkeypatch.setattr(kind, "labels", labels)

    for _ in range(5):
        client.get("/privacy")
    client.get("/no-such-page")
    before_the_scrape = list(looked_up)
    body = client.get("/metrics", headers={"Authorization": f"Bearer {token}"}).text

    assert sorted(before_the_scrape) == sorted([("/privacy", "GET", "200"), ("/privacy",),
                                        ("unmatched", "GET", "404"), ("unmatched",)])
    assert 'alerts_http_requests_total{method="GET",route="/privacy",status="200"} 5.0' in body
    assert 'alerts_http_request_duration_seconds_count{route="/privacy"} 5.0' in body
