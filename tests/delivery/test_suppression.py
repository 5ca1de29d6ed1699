"""Hard bounces suppress the address; a suppressed address is never sent to again."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.cli import cli
from alerts.core.config import Settings
from alerts.delivery.fanout import fan_out
from alerts.delivery.outbox import Delivery
from alerts.delivery.rejections import is_hard_bounce
from alerts.delivery.sender import deliver_due
from alerts.mail.messages import Message
from subscriptions.suppression import SuppressionReason, is_suppressed, suppress
from subscriptions.wards import Ward
from tests.factories import make_subscriber, make_ward
from tests.servers import SinkHandler


@pytest.mark.parametrize(("code", "text", "hard"), [
    (550, "550 5.1.1 <x>: Recipient address rejected: User unknown", True),
    (550, "550 5.1.10 Null MX", True),
    (554, "554 5.2.1 Mailbox disabled", True),
    (550, "550 5.7.1 Message rejected as spam", False),
    (552, "552 5.3.4 Message too big", False),
    (550, "550 No such user here", True),
    (550, "550 Blocked by policy", False),
    (554, "554 Transaction failed", False),
    # Servers that answer a missing mailbox with a policy-looking code.
    (554, "554 5.7.1 <x>: Nonexistent user", True),
    (554, "554 delivery error: This user doesn't have a yahoo.com account", True),
    (550, "550 5.4.4 Unable to route: no mail hosts for domain", True),
    (550, "550 5.7.1 <x>: Recipient address rejected: Access denied", False),
])
def test_only_a_rejection_of_the_address_itself_is_a_hard_bounce(code: int, text: str,
                                                                   hard: bool) -> None:
    assert is_hard_bounce(code, text) is hard


def digest_for(session: Session, ward: Ward) -> Message:
    message = Message(ward_id=ward.id, kind="digest", subject="News", html="<p>x</p>", text="x")
    session.add(message)
    session.flush()
    fan_out(session, message)
    return message


def test_a_hard_bounce_suppresses_the_address_and_the_next_digest_skips_it(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]
) -> None:
    sink, settings = smtp
    with factory.begin() as session:
        ward = make_ward(session)
        gone, spam, fine = (make_subscriber(session, ward, f"{n}@home.example").subscriber.email
                            for n in ("gone", "spam", "fine"))
        digest_for(session, ward)
    sink.reject[gone] = "550 5.1.1 No such mailbox"
    sink.reject[spam] = "550 5.7.1 Rejected as spam"
    report = deliver_due(factory, settings)
    assert (report.sent, report.failed, report.suppressed) == (1, 2, 1)
    with factory.begin() as session:
        assert is_suppressed(session, gone) and not is_suppressed(session, spam)
        ward = session.scalars(select(Ward)).one()
        second = digest_for(session, ward)
        queued = session.scalars(select(Delivery).where(Delivery.message_id == second.id)).all()
    assert len(queued) == 2, "the suppressed address gets no row"
    assert fine in [r.rcpt_tos[0] for r in sink.received]


def test_an_address_suppressed_after_fan_out_is_cancelled_at_send_time(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]
) -> None:
    sink, settings = smtp
    with factory.begin() as session:
        ward = make_ward(session)
        email = make_subscriber(session, ward).subscriber.email
        digest_for(session, ward)
        suppress(session, email, SuppressionReason.COMPLAINT, "marked as spam")
    report = deliver_due(factory, settings)
    assert (report.sent, report.cancelled) == (0, 1)
    assert sink.received == []


def test_the_suppression_list_can_be_read_and_changed_from_the_cli(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    runner = CliRunner()
    env = {"ALERTS_DATABASE_URL": settings.database.url}
    assert runner.invoke(cli, ["suppression", "add", "Ann@Home.example", "--detail", "asked"],
                         env=env).exit_code == 0
    [entry] = json.loads(runner.invoke(cli, ["suppression", "list", "--json"], env=env).stdout)
    assert (entry["email"], entry["reason"], entry["detail"]) == ("ann@home.example", "manual",
                                                                "asked")
    assert runner.invoke(cli, ["suppression", "remove", "ann@home.example"],
                         env=env).exit_code == 0
    again = runner.invoke(cli, ["suppression", "remove", "ann@home.example"], env=env)
    assert again.exit_code == 1 and "not on the suppression list" in again.stderr
