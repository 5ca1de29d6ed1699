"""A message whose bytes are not 7-bit asks the relay for BODY=8BITMIME (RFC 6152): the
forward of a resident's 8-bit reply carries that email as it came. Residents' own mail is
quoted-printable, 7-bit, and asks for nothing."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.delivery.sender import deliver_due
from alerts.inbound.intake import Intake
from alerts.inbound.journal import Via
from alerts.mail.messages import MessageKind
from subscriptions.base import utcnow
from subscriptions.links import Purpose
from tests.factories import make_sent_message, make_subscriber, make_ward, signed
from tests.servers import SinkHandler


def reply_to_ann(factory: sessionmaker[Session], settings: Settings, body: bytes,
                 cte: bytes) -> None:
    with factory() as session, session.begin():
        ward = make_ward(session, "RIV", "Riverside")
        ann = make_subscriber(session, ward, "ann@home.example", name="Ann Example")
        delivery = make_sent_message(session, ward, [ann],
                                     subject="Riverside: bike marking")[ann.subscriber_id]
        token = signed(session, settings.web.secret_key, Purpose.REPLY, delivery)
    raw = (b"From: Ann Example <ann@home.example>\r\n"
           b"To: reply+" + token.encode() + b"@" + settings.mail.reply_domain.encode() + b"\r\n"
           b"Subject: Re: Riverside: bike marking\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: " + cte + b"\r\n\r\n" + body + b"\r\n")
    outcome = Intake(factory, settings).process(raw, via=Via.FILE)
    assert outcome.reply_id is not None, outcome


def forward_now(factory: sessionmaker[Session], settings: Settings, now: datetime) -> None:
    report = deliver_due(factory, settings, now=lambda: now, kinds=(MessageKind.FORWARD,))
    assert report.sent == 1, report


def test_the_forward_of_an_8bit_reply_asks_for_body_8bitmime(
        factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]) -> None:
    sink, settings = smtp
    reply_to_ann(factory, settings, "Merci ! Le café à 19 h, c'est bien ça ?".encode(),
                 b"8bit")
    forward_now(factory, settings, utcnow())
    (forward,) = sink.received
    assert not forward.data.isascii()  # the original travels as it came
    assert "BODY=8BITMIME" in forward.mail_options


def test_a_7bit_message_asks_for_nothing(
        factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]) -> None:
    sink, settings = smtp
    reply_to_ann(factory, settings, b"Thanks, see you on Saturday.", b"7bit")
    forward_now(factory, settings, utcnow())
    (forward,) = sink.received
    assert forward.data.isascii()
    assert not [option for option in forward.mail_options if option.startswith("BODY=")]
