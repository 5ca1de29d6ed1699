"""Forwarding replies to the ward team: the context an officer needs, retries, no repeats.

A forward is staff mail in the outbox: `forward_now` runs the one sender over forwards, as
`alerts inbound process` does."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from email.message import EmailMessage

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.delivery.sender import DeliveryReport, deliver_due
from alerts.inbound.forward import ForwardState, forward_state
from alerts.inbound.intake import Intake
from alerts.inbound.journal import Via
from alerts.mail.messages import Message, MessageKind
from alerts.usecases.my_data import erase_data
from subscriptions.base import utcnow
from subscriptions.links import Purpose
from subscriptions.subscribers import Subscriber
from tests.factories import make_sent_message, make_subscriber, make_ward, signed
from tests.servers import SinkHandler

TEAM = "team-riv@police.example"


def forward_now(factory: sessionmaker[Session], settings: Settings, *,
            now: datetime) -> DeliveryReport:
    """One pass of the sender over forwards, at `now`."""
    return deliver_due(factory, settings, now=lambda: now, kinds=(MessageKind.FORWARD,))


def state(factory: sessionmaker[Session], reply_id: int) -> ForwardState:
    with factory() as session:
        found = forward_state(session, reply_id)
    assert found is not None
    return found


def a_reply(factory: sessionmaker[Session], settings: Settings, text: str) -> int:
    with factory() as session, session.begin():
        ward = make_ward(session, "RIV", "Riverside")
        ann = make_subscriber(session, ward, "ann@home.example", name="Ann Example")
        delivery = make_sent_message(session, ward, [ann],
                                     subject="Riverside: bike marking")[ann.subscriber_id]
        token = signed(session, settings.web.secret_key, Purpose.REPLY, delivery)
    message = EmailMessage()
    message["From"] = "Ann Example <ann@home.example>"
    message["To"] = f"reply+{token}@{settings.mail.reply_domain}"
    message["Subject"] = "Re: Riverside: bike marking"
    message.set_content(f"{text}\n\nOn Fri, Riverside team wrote:\n> Bike marking on Saturday.\n")
    outcome = Intake(factory, settings).process(message.as_bytes(), via=Via.FILE)
    assert outcome.reply_id is not None
    return outcome.reply_id


def test_forward_carries_the_context_and_the_original(
        factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]) -> None:
    sink, settings = smtp
    reply_id = a_reply(factory, settings, "Can I bring two bikes?")
    report = forward_now(factory, settings, now=utcnow())
    assert report.sent == 1
    [received] = [r for r in sink.received if TEAM in r.rcpt_tos]
    forward = received.message
    assert forward["Reply-To"] == "Ann Example <ann@home.example>"
    assert forward["Subject"] == "[RIV reply] Re: Riverside: bike marking"
    assert forward["Auto-Submitted"] == "auto-generated"
    text = forward.get_body(preferencelist=("plain",))
    assert text is not None
    body = text.get_content()
    assert "Can I bring two bikes?" in body and "Riverside (RIV)" in body
    assert '"Riverside: bike marking"' in body
    attachments = list(forward.iter_attachments())
    assert [a.get_content_type() for a in attachments] == ["message/rfc822"]
    assert received.mail_from == f"bounces@{settings.mail.reply_domain}"
    # Forwarded once: the next pass finds nothing to do.
    assert forward_now(factory, settings, now=utcnow()).sent == 0
    assert state(factory, reply_id).forwarded_at is not None


def test_a_possible_crime_report_is_marked_in_the_forward(
        factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]) -> None:
    sink, settings = smtp
    a_reply(factory, settings, "A man threatened me with a knife outside the shop just now.")
    forward_now(factory, settings, now=utcnow())
    [received] = [r for r in sink.received if TEAM in r.rcpt_tos]
    assert "POSSIBLE CRIME REPORT" in str(received.message["Subject"])
    assert received.message["Importance"] == "high"


def test_a_team_server_answering_4xx_gets_the_forward_later(
        factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]) -> None:
    sink, settings = smtp
    settings = dataclasses.replace(settings, mail=dataclasses.replace(
        settings.mail, retry_base_seconds=60))
    reply_id = a_reply(factory, settings, "Thanks!")
    sink.reject[TEAM] = "451 4.3.0 Try again later"
    now = utcnow()
    first = forward_now(factory, settings, now=now)
    assert first.retried == 1 and first.sent == 0
    assert forward_now(factory, settings, now=now + timedelta(seconds=1)).sent == 0
    del sink.reject[TEAM]
    later = forward_now(factory, settings, now=now + timedelta(hours=1))
    assert later.sent == 1
    sent = state(factory, reply_id)
    assert sent.attempts == 2 and sent.error is None


def test_a_team_address_refused_for_good_is_not_tried_again(
        factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]) -> None:
    sink, settings = smtp
    reply_id = a_reply(factory, settings, "Thanks!")
    sink.reject[TEAM] = "550 5.1.1 No such user"
    assert forward_now(factory, settings, now=utcnow()).failed == 1
    del sink.reject[TEAM]
    assert forward_now(factory, settings, now=utcnow() + timedelta(days=2)).sent == 0
    error = state(factory, reply_id).error
    assert error is not None and "550" in error


def test_erasing_the_resident_erases_the_forward_of_their_words(
        factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]) -> None:
    sink, settings = smtp
    reply_id = a_reply(factory, settings, "My neighbour at 4 Mill Lane is away.")
    with factory.begin() as session:
        ann = session.scalars(select(Subscriber).where(
            Subscriber.email == "ann@home.example")).one()
        assert forward_state(session, reply_id) is not None  # queued for the team
        assert erase_data(session, ann.id, now=utcnow())
    with factory() as session:
        assert forward_state(session, reply_id) is None
        assert not session.scalars(select(Message.email).where(
            Message.kind == MessageKind.FORWARD)).all()
    assert forward_now(factory, settings, now=utcnow()).sent == 0
    assert not [r for r in sink.received if TEAM in r.rcpt_tos]
