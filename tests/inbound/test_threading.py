"""The acknowledgement of a resident's reply and an officer's answer carry In-Reply-To and
References (RFC 5322 3.6.4) naming the resident's email, so that mail clients show them in
the resident's conversation. Through the real intake and the one sender, on both stores."""

from __future__ import annotations

from datetime import datetime, timedelta
from email.message import EmailMessage

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.delivery.outbox import Delivery
from alerts.delivery.sender import deliver_due
from alerts.inbound.intake import Intake
from alerts.inbound.journal import Via
from alerts.inbound.replies import Reply
from alerts.mail.messages import Message, MessageKind
from alerts.usecases import officers
from subscriptions.base import utcnow
from subscriptions.links import Purpose
from tests.factories import signed
from tests.servers import SinkHandler
from tests.usecases.test_officers import World, build_world

OURS = "<alerts.1.abc@example.org>"  # the digest the resident answered, as their client quotes it


def write_back(factory: sessionmaker[Session], settings: Settings, world: World, *,
               message_id: str | None, references: str | None, now: datetime,
               text: str = "Is the bike marking still on?") -> int:
    """Ann's email to her digest's reply address, taken in; returns the reply's thread."""
    message = EmailMessage()
    message["From"] = "Ann Example <ann@home.example>"
    with factory() as session:
        token = signed(session, settings.web.secret_key, Purpose.REPLY, world.riv_delivery)
    message["To"] = f"reply+{token}@{settings.mail.reply_domain}"
    message["Subject"] = "Re: Riverside: your news"
    if message_id:
        message["Message-ID"] = message_id
    if references:
        message["In-Reply-To"] = references.split()[-1]
        message["References"] = references
    message.set_content(f"{text}\n\nOn Friday the team wrote:\n> Riverside news\n")
    outcome = Intake(factory, settings).process(message.as_bytes(), via=Via.FILE, now=now)
    assert outcome.reply_id is not None, outcome
    with factory() as session:
        return session.get_one(Reply, outcome.reply_id).thread_id


def ids(header: object) -> str:
    """A header's message ids, unfolded (a long References is folded before its first)."""
    return " ".join(str(header).split())


def sent(factory: sessionmaker[Session], settings: Settings, sink: SinkHandler,
         kind: MessageKind, now: datetime) -> EmailMessage:
    before = len(sink.received)
    report = deliver_due(factory, settings, now=lambda: now, kinds=(kind,))
    assert report.sent == 1, report
    (received,) = sink.received[before:]
    return received.message


def test_the_acknowledgement_answers_the_residents_email(
        factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]) -> None:
    sink, settings = smtp
    now = utcnow()
    write_back(factory, settings, build_world(factory), message_id="<ann.1@home.example>",
               references=OURS, now=now)
    ack = sent(factory, settings, sink, MessageKind.REPLY_ACK, now)
    assert ack["In-Reply-To"] == "<ann.1@home.example>"
    assert ids(ack["References"]) == f"{OURS} <ann.1@home.example>"


def test_an_officers_answer_answers_the_residents_newest_email(
        factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]) -> None:
    sink, settings = smtp
    world = build_world(factory)
    first = utcnow() - timedelta(hours=2)
    thread_id = write_back(factory, settings, world, message_id="<ann.1@home.example>",
                           references=OURS, now=first)
    sent(factory, settings, sink, MessageKind.REPLY_ACK, first)
    later = first + timedelta(hours=1)
    write_back(factory, settings, world, message_id="<ann.2@home.example>",
               references=f"{OURS} <ann.1@home.example>", now=later, text="Any news?")
    now = later + timedelta(minutes=30)
    with factory.begin() as session:
        officers.answer_thread(session, settings, world.officer, thread_id,
                               "Yes: Saturday at ten, at the library.", now=now)
    answer = sent(factory, settings, sink, MessageKind.TEAM_ANSWER, now)
    assert answer["In-Reply-To"] == "<ann.2@home.example>"
    assert ids(answer["References"]) == f"{OURS} <ann.1@home.example> <ann.2@home.example>"


def test_an_email_without_a_message_id_is_answered_without_threading_headers(
        factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]) -> None:
    sink, settings = smtp
    now = utcnow()
    write_back(factory, settings, build_world(factory), message_id=None, references=OURS,
               now=now)
    ack = sent(factory, settings, sink, MessageKind.REPLY_ACK, now)
    assert ack["In-Reply-To"] is None and ack["References"] is None


def test_the_references_stay_within_bounds_keeping_the_first_and_the_newest() -> None:
    from alerts.inbound.replies import MAX_REFERENCES, references_of  # new in issue 17

    message = EmailMessage()
    message["Message-ID"] = "<own@home.example>"
    chain = [f"<m{i}@x.example>" for i in range(40)]
    message["References"] = " ".join(chain) + " <bad id> <no-at-sign>"
    found = references_of(message)
    assert found is not None
    ids = found.split()
    assert len(ids) == MAX_REFERENCES
    assert ids[0] == chain[0] and ids[-2] == chain[-1] and ids[-1] == "<own@home.example>"


def test_a_reply_to_the_acknowledgement_joins_the_thread_a_new_one_to_the_digest_does_not(
        factory: sessionmaker[Session], settings: Settings) -> None:
    now = utcnow()
    world = build_world(factory)
    thread = write_back(factory, settings, world, message_id=None, references=None, now=now)
    with factory() as session:
        ack = session.scalars(select(Delivery.id).join(Message).where(
            Message.kind == MessageKind.REPLY_ACK)).one()
        token = signed(session, settings.web.secret_key, Purpose.REPLY, ack)
    answer = EmailMessage()
    answer["From"] = "Ann Example <ann@home.example>"
    answer["To"] = f"reply+{token}@{settings.mail.reply_domain}"
    answer["Subject"] = "Re: We have passed your reply to the Riverside team"
    answer.set_content("One more thing: the shed door is broken too.\n")
    outcome = Intake(factory, settings).process(answer.as_bytes(), via=Via.FILE, now=now)
    assert outcome.reply_id is not None
    with factory() as session:
        assert session.get_one(Reply, outcome.reply_id).thread_id == thread
    # Writing to the digest again is the same conversation too: its thread is the digest's.
    assert write_back(factory, settings, world, message_id=None, references=None, now=now,
                      text="And the fete?") == thread
