"""The demo's weekly drop-in at the library (one event, RRULE weekly, one week skipped): after
`alerts demo`, Riverside's digest counts it as one contact session and lists its dates, and the
ward's archive page shows it once, not again under "Latest news"."""

from __future__ import annotations

from email import message_from_bytes, policy
from pathlib import Path

from fastapi.testclient import TestClient

from alerts.core.config import load_settings
from alerts.core.db import make_engine, session_factory
from alerts.demo.runner import run_demo
from alerts.web.app import create_app

DROP_IN = "Meet your team at the library"


def test_the_demo_weekly_drop_in_is_one_session_with_its_dates(tmp_path: Path) -> None:
    report = run_demo(tmp_path / "demo", say=lambda _: None)
    digests = [message_from_bytes(path.read_bytes(), policy=policy.default)
               for path in sorted((report.outbox / "new").iterdir())]
    riverside = [m for m in digests
                 if str(m["Subject"]).startswith("Riverside neighbourhood news")]
    assert riverside
    for digest in riverside:
        assert str(digest["Subject"]).endswith("and 1 contact session")
        body = digest.get_body(preferencelist=("plain",))
        assert body is not None
        text = body.get_content()
        assert text.count(f"* {DROP_IN}") == 1
        assert text.count("When: ") >= 2  # every coming date, under the one session

    settings = load_settings(report.config)
    engine = make_engine(settings.database.url)
    try:
        page = TestClient(create_app(session_factory(engine), settings=settings)).get(
            "/wards/RIV/").text
    finally:
        engine.dispose()
    assert page.count(DROP_IN) == 1
    assert DROP_IN not in page[page.index("Latest news"):]
