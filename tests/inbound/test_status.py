"""The inbound part of `alerts status`: counts an operator acts on, nothing personal."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy.orm import Session, sessionmaker

from alerts.cli import cli
from alerts.core.config import Settings
from alerts.inbound.intake import Intake
from alerts.inbound.journal import InboundRecord, Via
from alerts.inbound.kinds import Kind, Severity
from alerts.inbound.status import daily_rates, inbound_report
from subscriptions.base import utcnow
from subscriptions.links import Purpose
from subscriptions.suppression import is_suppressed
from tests.factories import make_sent_message, make_subscriber, make_ward, signed
from tests.inbound.test_intake import ann_and_bob_and_an_altered_bounces_address, hard_bounce
from tests.inbound.test_intake_cost import statements  # noqa: F401 (a fixture)


def test_status_counts_what_came_in_what_is_held_and_what_the_team_has_not_had(
        factory: sessionmaker[Session], settings: Settings) -> None:
    with factory() as session, session.begin():
        ward = make_ward(session, "RIV", "Riverside")
        ann = make_subscriber(session, ward, "ann@home.example")
        delivery = make_sent_message(session, ward, [ann])[ann.subscriber_id]
        token = signed(session, settings.web.secret_key, Purpose.REPLY, delivery)
    intake = Intake(factory, settings)
    intake.process(f"From: ann@home.example\r\nTo: reply+{token}@reply.example.org\r\n"
                   "Subject: Re: news\r\n\r\nThanks!\r\n".encode(), via=Via.FILE)
    intake.process(f"From: ann@home.example\r\nTo: reply+{delivery}-{'a' * 20}"
                   "@reply.example.org\r\nSubject: Re: news\r\n\r\nForged\r\n".encode(),
                   via=Via.FILE)
    with factory() as session:
        report = inbound_report(session, utcnow())
    assert report.last_day_by_kind == {"rejected": 1, "reply": 1}
    assert report.held_last_week == 1
    assert report.replies_to_forward == 1 and report.replies_not_forwarded == 0
    assert report.open_threads == 1
    assert "ann@home.example" not in json.dumps(report.__dict__)


def test_the_daily_rates_count_each_utc_day_from_midnight_in_one_case_a_table(
        factory: sessionmaker[Session], statements: list[tuple[str, Any]]) -> None:  # noqa: F811
    """Each row counts on the UTC day it fell on (from midnight, up to the next), hard
    bounces and complaints about residents only; one CASE a table says which day (a sum a
    day made the three statements 25 ms to build)."""
    today = datetime(2026, 12, 7, tzinfo=UTC)
    second = timedelta(seconds=1)
    with factory() as session, session.begin():
        ann = make_subscriber(session, make_ward(session), "ann@home.example")
        for n, (at, kind, severity, who) in enumerate([
            (today, Kind.BOUNCE, Severity.HARD, None),
            (today + timedelta(days=1) - second, Kind.BOUNCE, Severity.HARD, None),
            (today + timedelta(days=1), Kind.BOUNCE, Severity.HARD, None),  # tomorrow
            (today - second, Kind.BOUNCE, Severity.HARD, None),
            (today - second, Kind.BOUNCE, Severity.SOFT, None),
            (today - timedelta(days=6), Kind.BOUNCE, Severity.HARD, None),
            (today - timedelta(days=6) - second, Kind.BOUNCE, Severity.HARD, None),  # too old
            (today, Kind.COMPLAINT, None, ann.subscriber_id),
            (today, Kind.COMPLAINT, None, None),  # about no resident
        ]):
            session.add(InboundRecord(content_hash=f"{n:064}", via=Via.FILE, kind=kind,
                                      severity=severity, subscriber_id=who, received_at=at))
    statements.clear()
    with factory() as session:
        rates = daily_rates(session, today + timedelta(hours=15))
    assert [(day.day, day.sent, day.hard_bounces, day.complaints) for day in rates] == [
        ("2026-12-07", 0, 2, 1), ("2026-12-06", 0, 1, 0), ("2026-12-05", 0, 0, 0),
        ("2026-12-04", 0, 0, 0), ("2026-12-03", 0, 0, 0), ("2026-12-02", 0, 0, 0),
        ("2026-12-01", 0, 1, 0)]
    assert [sql.count("CASE") for sql, _ in statements if sql.startswith("SELECT")] == [1, 1, 1]


def test_alerts_status_json_has_an_inbound_section(settings: Settings,
                                                  factory: sessionmaker[Session],
                                                  tmp_path: Path) -> None:
    config = tmp_path / "alerts.toml"
    config.write_text(f'[database]\nurl = "{settings.database.url}"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "status", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["inbound"]["replies_to_forward"] == 0


def test_an_unsigned_report_to_postmaster_and_an_altered_token_suppress_nobody_and_wait(
        settings: Settings, factory: sessionmaker[Session], tmp_path: Path) -> None:
    altered = ann_and_bob_and_an_altered_bounces_address(factory, settings)
    unsigned = tmp_path / "unsigned.eml"
    unsigned.write_bytes(b"Delivered-To: postmaster@reply.example.org\r\n" + hard_bounce(
        ["ann@home.example", "bob@home.example"], "postmaster@reply.example.org"))
    tampered = tmp_path / "altered.eml"
    tampered.write_bytes(hard_bounce(["bob@home.example"], altered))
    config = tmp_path / "alerts.toml"
    config.write_text(f'[database]\nurl = "{settings.database.url}"\n'
                      f'[web]\nsecret_key = "{settings.web.secret_key}"\n'
                      f'[inbound]\nheld_dir = "{tmp_path / "held"}"\n')
    runner = CliRunner()

    def alerts(*args: str) -> str:
        result = runner.invoke(cli, ["--config", str(config), *args])
        assert result.exit_code == 0, result.output
        return result.stdout

    handled = alerts("inbound", "process", "--json", str(unsigned), str(tampered))
    with factory() as session:
        assert not is_suppressed(session, "ann@home.example")
        assert not is_suppressed(session, "bob@home.example")
    reported = [json.loads(line) for line in handled.splitlines()]
    assert [line["kind"] for line in reported] == ["rejected", "rejected"], \
        "the command's fixed kinds: a bounce that cannot be believed is rejected"
    assert all("nothing was changed" in line["action"] or "nobody was suppressed"
               in line["action"] for line in reported)
    review = sorted(path.read_bytes() for path in (tmp_path / "held" / "review").glob("*.eml"))
    assert review == sorted([unsigned.read_bytes(), tampered.read_bytes()])
    inbound = json.loads(alerts("status", "--json"))["inbound"]
    assert inbound["untrusted_bounces_last_week"] == 2 and inbound["held_last_week"] == 2
    assert "bounces without a genuine bounces+ address (7 days): 2" in alerts("status")
