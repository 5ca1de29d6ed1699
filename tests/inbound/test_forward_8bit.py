"""Replies, bounces and out-of-office answers whose headers the email package cannot write
back (a long raw 8-bit header, an encoded word cut inside a character, as Mail.Ru's
`flufl_bounce/simple_39.txt` has): intake handles them as any other, and a reply's forward
still reaches the ward team with the original attached, byte for byte."""

from __future__ import annotations

import dataclasses
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.delivery.sender import deliver_due
from alerts.inbound.classify import Kind
from alerts.inbound.intake import Intake
from alerts.inbound.journal import InboundRecord, Via
from alerts.inbound.replies import Reply, ReplyThread
from alerts.mail import mime
from alerts.mail.messages import Message, MessageKind
from alerts.mail.mime import READING
from subscriptions.base import utcnow
from subscriptions.links import Purpose
from tests.factories import make_sent_message, make_subscriber, make_ward, signed
from tests.servers import SinkHandler

TEAM = "team-riv@police.example"
CORPUS = Path(__file__).parent / "corpus"
# simple_39's Subject: two encoded words, the first cut inside a Cyrillic letter.
CUT_WORD = (b"=?utf-8?b?0JLQsNGI0LUg0YHQvtC+0LHRidC10L3QuNC1INC90LUg0LTQvtGB0YLQsNCy0LvQ?="
            b"\r\n\t=?utf-8?b?tdC90L4uIE1haWwgZmFpbHVyZS4=?=")
RAW_8BIT = ("Re: Riverside: bike marking \u2014 " + "\u0412\u0430\u0448 \u0432\u0435\u043b"
            "\u043e\u0441\u0438\u043f\u0435\u0434 " * 6).encode()  # long, and mixed
SUBJECTS = {"cut encoded word": b"Re: " + CUT_WORD, "long raw 8-bit": RAW_8BIT,
            "raw 8-bit and an encoded word": RAW_8BIT + b" " + CUT_WORD}


@pytest.fixture
def team(smtp: tuple[SinkHandler, Settings], tmp_path: Path) -> tuple[SinkHandler, Settings]:
    sink, settings = smtp
    return sink, dataclasses.replace(settings, inbound=dataclasses.replace(
        settings.inbound, held_dir=str(tmp_path / "held")))


def token_for(factory: sessionmaker[Session], settings: Settings, purpose: Purpose) -> str:
    with factory() as session, session.begin():
        ward = make_ward(session, "RIV", "Riverside")
        ann = make_subscriber(session, ward, "ann@home.example", name="Ann Example")
        delivery = make_sent_message(session, ward, [ann],
                                     subject="Riverside: bike marking")[ann.subscriber_id]
        return signed(session, settings.web.secret_key, purpose, delivery)


def a_reply(to: str, subject: bytes) -> bytes:
    return (b"From: Ann Example <ann@home.example>\r\nTo: " + to.encode() + b"\r\n"
            b"Subject: " + subject + b"\r\nMessage-ID: <r1@home.example>\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
            b"Can I bring two bikes?\r\n\r\nOn Fri, Riverside team wrote:\r\n"
            b"> Bike marking on Saturday.\r\n")


def test_the_email_package_cannot_write_these_headers_back() -> None:
    """What the tests below are about: parsed and written again, these raise (a long raw
    8-bit header alone is written back as unknown-8bit encoded words)."""
    for subject in (SUBJECTS["cut encoded word"], SUBJECTS["raw 8-bit and an encoded word"]):
        parsed = BytesParser(policy=READING).parsebytes(a_reply("x@example.org", subject))
        with pytest.raises(UnicodeEncodeError):
            parsed.as_bytes()


@pytest.mark.parametrize("subject", list(SUBJECTS.values()), ids=list(SUBJECTS))
def test_a_reply_with_such_a_header_is_forwarded_with_its_original(
        factory: sessionmaker[Session], team: tuple[SinkHandler, Settings],
        subject: bytes) -> None:
    sink, settings = team
    token = token_for(factory, settings, Purpose.REPLY)
    raw = a_reply(f"reply+{token}@{settings.mail.reply_domain}", subject)
    outcome = Intake(factory, settings).process(raw, via=Via.FILE)
    assert outcome.kind == Kind.REPLY and outcome.reply_id is not None
    assert "acknowledged" in outcome.action
    with factory() as session:
        reply = session.get_one(Reply, outcome.reply_id)
        assert reply.original == raw and reply.text.startswith("Can I bring two bikes?")
        thread = session.get_one(ReplyThread, reply.thread_id)
        assert thread.acknowledged_at is not None
        record = session.scalars(select(InboundRecord)).one()
        assert record.kind == Kind.REPLY and record.held_as is None
        kinds = session.scalars(select(Message.kind)).all()
        assert MessageKind.FORWARD in kinds
    assert deliver_due(factory, settings, now=utcnow, kinds=(MessageKind.FORWARD,)).sent == 1
    [received] = [r for r in sink.received if TEAM in r.rcpt_tos]
    forward = received.message
    assert str(forward["Subject"]).startswith("[RIV reply] Re: ")
    body = forward.get_body(preferencelist=("plain",))
    assert body is not None and "Can I bring two bikes?" in body.get_content()
    [attached] = list(forward.iter_attachments())
    assert attached.get_content_type() == "message/rfc822"
    assert attached.get_filename() == "original.eml"
    assert attached["Content-Transfer-Encoding"] == "8bit"
    original = attached.get_payload(0)
    assert original["Message-ID"] == "<r1@home.example>"
    assert "Can I bring two bikes?" in original.get_content()
    if subject != RAW_8BIT:  # the headers the email package cannot refold came as they were
        assert raw in received.data


def test_a_bounce_with_such_a_header_suppresses_as_any_other(
        factory: sessionmaker[Session], team: tuple[SinkHandler, Settings]) -> None:
    _, settings = team
    token = token_for(factory, settings, Purpose.BOUNCE)
    raw = (CORPUS / "flufl_bounce" / "simple_39.txt").read_bytes().replace(
        b"To: noreply@example.com", f"To: bounces+{token}@{settings.mail.reply_domain}".encode())
    outcome = Intake(factory, settings).process(raw, via=Via.FILE)
    assert outcome.kind == Kind.BOUNCE and "suppressed" in outcome.action
    with factory() as session:
        record = session.scalars(select(InboundRecord)).one()
        assert record.kind == Kind.BOUNCE and record.held_as is None


@pytest.mark.parametrize("subject", list(SUBJECTS.values()), ids=list(SUBJECTS))
def test_an_out_of_office_with_such_a_header_is_recorded_and_never_answered(
        factory: sessionmaker[Session], team: tuple[SinkHandler, Settings],
        subject: bytes) -> None:
    _, settings = team
    token = token_for(factory, settings, Purpose.REPLY)
    raw = a_reply(f"reply+{token}@{settings.mail.reply_domain}", subject).replace(
        b"Message-ID:", b"Auto-Submitted: auto-replied\r\nMessage-ID:")
    outcome = Intake(factory, settings).process(raw, via=Via.FILE)
    assert outcome.kind == Kind.AUTO_REPLY
    with factory() as session:
        assert session.scalars(select(Reply)).all() == []
        assert session.scalars(select(Message.kind)).all() == [MessageKind.DIGEST]


def test_an_original_that_cannot_be_written_even_as_it_came_is_attached_as_its_bytes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def cannot(self: str, *, policy: object) -> str:
        raise UnicodeEncodeError("ascii", self, 0, 1, "as the email package fails")

    monkeypatch.setattr(mime._AsItCame, "fold", cannot)
    forward = EmailMessage(policy=mime.SMTP)
    forward["Subject"] = "[RIV reply] Re: news"
    forward.set_content("What they wrote\n")
    raw = a_reply("reply+1-abc@reply.example.org", SUBJECTS["cut encoded word"])
    mime.attach_message(forward, raw, filename="original.eml")
    written = BytesParser(policy=READING).parsebytes(forward.as_bytes())
    [attached] = list(written.iter_attachments())
    assert attached.get_content_type() == "application/octet-stream"
    assert attached.get_filename() == "original.eml" and attached.get_content() == raw
