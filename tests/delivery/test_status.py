"""`alerts status`: what an operator needs to see a backlog, and no addresses."""

from __future__ import annotations

import json

from click.testing import CliRunner
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from alerts.cli import cli
from alerts.core.config import Settings
from alerts.delivery.fanout import fan_out
from alerts.delivery.outbox import Delivery
from alerts.delivery.sender import deliver_due
from alerts.delivery.status import failure_reason
from alerts.mail.messages import Message
from tests.factories import make_subscriber, make_ward
from tests.servers import SinkHandler


def test_failure_reasons_are_grouped_by_their_smtp_codes() -> None:
    assert failure_reason("550 5.1.1 <x@y>: no such user") == "550 5.1.1"
    assert failure_reason("the server answered 451 4.3.0 busy") == "451 4.3.0"
    assert failure_reason("gave up after 8 attempts: 421 try later") == "421"
    assert failure_reason("the SMTP server at 127.0.0.1:25 went away: reset") == \
        "the SMTP server at 127.0.0.1"
    assert failure_reason(None) == "unknown"


def test_status_reports_depth_rate_failures_and_the_oldest_queued_row(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]
) -> None:
    sink, settings = smtp
    with factory.begin() as session:
        ward = make_ward(session)
        emails = [make_subscriber(session, ward).subscriber.email for _ in range(5)]
        message = Message(ward_id=ward.id, kind="digest", subject="News", html="<p>x</p>",
                          text="x")
        session.add(message)
        session.flush()
        fan_out(session, message)
    sink.reject[emails[0]] = "550 5.1.1 No such mailbox"
    sink.reject[emails[1]] = "550 5.1.1 No such mailbox"
    sink.reject[emails[2]] = "452 4.2.2 Mailbox full"
    deliver_due(factory, settings)
    with factory.begin() as session:  # one more row waiting in the queue
        session.execute(update(Delivery).where(Delivery.id == 5).values(status="queued"))

    runner = CliRunner()
    env = {"ALERTS_DATABASE_URL": settings.database.url}
    result = runner.invoke(cli, ["status", "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["outbox"]["failed"] == 2
    assert report["outbox"]["queued"] == 2  # the 4xx retry and the row put back
    assert report["outbox"]["sent"] == 1
    assert report["sent_last_minute"] == 1
    assert report["failures_by_reason"] == {"550 5.1.1": 2}
    assert report["oldest_queued_seconds"] is not None
    plain = runner.invoke(cli, ["status"], env=env).stdout
    assert "550 5.1.1" in plain and "2 failed" in plain
    assert not any(email in plain or email in result.stdout for email in emails)
