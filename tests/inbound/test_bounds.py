"""Inbound mail within bounds: LMTP sessions at once, the size of a message, and the work a
huge message costs (read from its start, handled in full, kept whole)."""

from __future__ import annotations

import base64
import dataclasses
import smtplib
import socket
import struct
import time
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from pathlib import Path
from typing import Any

import flufl.bounce
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.delivery.sender import deliver_due
from alerts.inbound import intake
from alerts.inbound.classify import Kind
from alerts.inbound.intake import Intake
from alerts.inbound.journal import Via
from alerts.inbound.mail import InboundMail
from alerts.inbound.replies import Reply
from alerts.mail.messages import MessageKind
from subscriptions.links import Purpose
from subscriptions.suppression import is_suppressed
from tests.factories import make_sent_message, make_subscriber, make_ward
from tests.inbound.test_intake import address, hard_bounce
from tests.inbound.test_lmtp import lines_after_data, with_server

MB = 1024 * 1024
HUGE = 24 * MB
WORDS = "Is the bike marking still on for Saturday? Photos of my bike are attached."


def with_sessions(settings: Settings, limit: int) -> Settings:
    return dataclasses.replace(settings, inbound=dataclasses.replace(
        settings.inbound, lmtp_max_sessions=limit))


def greeted(port: int) -> smtplib.LMTP:
    lmtp = smtplib.LMTP("127.0.0.1", port, timeout=10)
    assert lmtp.ehlo()[0] == 250  # LHLO: the session is up and answering
    return lmtp


def greeted_once_a_slot_frees(port: int) -> smtplib.LMTP:
    """A session ends on the server a moment after the client sees it end."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return greeted(port)
        except smtplib.SMTPConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def refused_code(port: int) -> int:
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        smtplib.LMTP("127.0.0.1", port, timeout=10)
    return refused.value.smtp_code


def test_sessions_beyond_the_limit_are_answered_421_and_a_slot_frees_when_one_ends(
        factory: sessionmaker[Session], settings: Settings) -> None:
    limited = with_sessions(settings, 3)

    def client(port: int) -> list[int]:
        sessions = [greeted(port) for _ in range(3)]
        codes = [refused_code(port)]
        sessions.pop().quit()  # a session that ends properly
        sessions.append(greeted_once_a_slot_frees(port))
        codes.append(refused_code(port))
        dropped = sessions.pop(0)  # one that ends abruptly: the MTA died, a reset
        assert dropped.sock is not None
        dropped.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        dropped.close()  # no QUIT, and a reset rather than a goodbye
        sessions.append(greeted_once_a_slot_frees(port))
        codes.append(refused_code(port))
        for lmtp in sessions:
            lmtp.quit()
        return codes

    assert with_server(Intake(factory, limited), limited, client) == [421, 421, 421]


def test_the_size_limit_is_advertised_and_a_message_over_it_gets_552_for_each_recipient(
        factory: sessionmaker[Session], settings: Settings) -> None:
    with factory() as session, session.begin():
        ward = make_ward(session, "RIV", "Riverside")
        make_sent_message(session, ward, [make_subscriber(session, ward)])
    recipients = ["reply+1-aaaaaaaaaaaaaaaaaaaa@reply.example.org", "alerts@example.org"]
    line = b"x" * 76 + b"\r\n"
    too_big = b"From: ann@home.example\r\nSubject: hi\r\n\r\n" + line * (26 * MB // len(line))

    def client(port: int) -> tuple[str, int, list[bytes]]:
        with greeted(port) as lmtp:
            advertised = lmtp.esmtp_features["size"]
            declared = lmtp.mail("ann@home.example", [f"SIZE={26 * MB}"])[0]
        return advertised, declared, lines_after_data(port, recipients, too_big)

    advertised, declared, answers = with_server(Intake(factory, settings), settings, client)
    assert int(advertised) == 25 * MB and declared == 552
    # One answer per recipient, as LMTP requires; a single one leaves the MTA waiting.
    assert [a[:9] for a in answers] == [b"552 5.3.4", b"552 5.3.4"]


def signed_address_of(factory: sessionmaker[Session], settings: Settings, resident: str,
                      prefix: str, purpose: Purpose, **details: str) -> str:
    """The `prefix+TOKEN@` address of the one delivery of a message sent to `resident` of
    Riverside."""
    with factory() as session, session.begin():
        ward = make_ward(session, "RIV", "Riverside")
        subscriber = make_subscriber(session, ward, resident, **details)
        delivery = make_sent_message(session, ward, [subscriber])[subscriber.subscriber_id]
    return address(factory, settings, prefix, purpose, delivery)


def huge_reply(to: str) -> bytes:
    """A reply of some 24 MB: the resident's words, the quote, then photos."""
    message = EmailMessage()
    message["From"] = "Ann Example <ann@home.example>"
    message["To"] = to
    message["Subject"] = "Re: Riverside news"
    message.set_content(f"{WORDS}\n\nOn Fri, 20 Nov 2026 at 16:00, Riverside team wrote:\n"
                        "> Bike marking at the library on Saturday.\n")
    photo = bytes(range(256)) * (HUGE * 3 // 4 // 256)
    message.add_attachment(photo, maintype="image", subtype="jpeg", filename="bike.jpg")
    return message.as_bytes(policy=policy.SMTP)


class Spy:
    """How much of a message each step was given."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.classified: list[int] = []
        self.scanned: list[int] = []  # by flufl.bounce's detectors
        # classify imports flufl's all_failures where it uses it (a2a86e4): patched at the source.
        real_classify, real_failures = intake.classify, flufl.bounce.all_failures

        def classifying(mail: InboundMail, **options: Any) -> Any:
            self.classified.append(len(mail.message.as_bytes()))
            return real_classify(mail, **options)

        def scanning(message: Message) -> Any:
            self.scanned.append(len(message.as_bytes()))
            return real_failures(message)

        monkeypatch.setattr(intake, "classify", classifying)
        monkeypatch.setattr(flufl.bounce, "all_failures", scanning)


def test_a_24_mb_reply_is_read_from_its_start_and_reaches_the_ward_team_whole(
        factory: sessionmaker[Session], settings: Settings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    to = signed_address_of(factory, settings, "ann@home.example", "reply", Purpose.REPLY,
                           name="Ann Example")
    raw = huge_reply(to)
    assert HUGE - MB < len(raw) < HUGE + MB
    spy = Spy(monkeypatch)

    def client(port: int) -> dict[str, tuple[int, bytes]]:
        with smtplib.LMTP("127.0.0.1", port, timeout=60) as lmtp:
            return lmtp.sendmail("ann@home.example", [to], raw)

    assert with_server(Intake(factory, settings), settings, client) == {}
    assert spy.classified and max(spy.classified) < MB  # not the 24 MB
    assert spy.scanned and max(spy.scanned) < MB
    with factory() as session:
        reply = session.scalars(select(Reply)).one()
        assert reply.text.startswith(WORDS) and "too long to read in full" in reply.text
        assert "Bike marking at the library" in reply.quoted
        assert reply.original == raw  # kept whole

    assert deliver_due(factory, settings, kinds=(MessageKind.FORWARD,)).sent == 1
    (sent,) = (Path(settings.mail.maildir) / "new").iterdir()
    forward = message_from_bytes(sent.read_bytes(), policy=policy.default)
    assert isinstance(forward, EmailMessage)
    assert forward["To"] == "team-riv@police.example"
    body = forward.get_body(("plain",))
    assert body is not None and WORDS in body.get_content()
    (attached,) = forward.iter_attachments()
    assert attached.get_content().as_bytes(policy=policy.SMTP) == raw


def test_a_24_mb_text_reply_is_stored_cut_with_a_note(
        factory: sessionmaker[Session], settings: Settings) -> None:
    to = signed_address_of(factory, settings, "ann@home.example", "reply", Purpose.REPLY)
    line = "Words and more words about parking on the pavement outside the school.\r\n"
    raw = (f"From: ann@home.example\r\nTo: {to}\r\nSubject: Re: news\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n\r\n"
           f"{WORDS}\r\n{line * (HUGE // len(line))}").encode()

    outcome = Intake(factory, settings).process(raw, via=Via.FILE)

    assert outcome.kind == Kind.REPLY
    with factory() as session:
        reply = session.get_one(Reply, outcome.reply_id)
        assert reply.text.startswith(WORDS) and len(reply.text) < MB
        assert reply.text.endswith("attached when it is forwarded.]")
        assert reply.original == raw


def test_a_24_mb_bounce_still_suppresses_and_a_24_mb_forgery_is_held_whole(
        factory: sessionmaker[Session], settings: Settings, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    to = signed_address_of(factory, settings, "bob@home.example", "bounces", Purpose.BOUNCE)
    line = b"Bike marking at the library on Saturday, and more news from the team.\r\n"
    returned = b"Subject: Riverside news\r\n\r\n" + line * (HUGE // len(line))
    big_part = b"--X\r\nContent-Type: message/rfc822\r\n\r\n" + returned + b"\r\n--X--"

    def huge(report: bytes) -> bytes:
        return report.replace(b"\r\n--X--", b"\r\n" + big_part)

    spy = Spy(monkeypatch)
    bounce = Intake(factory, settings).process(
        huge(hard_bounce(["bob@home.example"], to)), via=Via.FILE)

    assert (bounce.kind, bounce.severity) == (Kind.BOUNCE, "hard")
    assert max(spy.scanned) < MB
    with factory() as session:
        assert is_suppressed(session, "bob@home.example")

    token, _, domain = to.partition("@")
    altered = f"{token[:-1]}{'b' if token.endswith('a') else 'a'}@{domain}"
    forged = huge(hard_bounce(["bob@home.example"], altered))
    held = Intake(factory, settings).process(forged, via=Via.FILE)
    assert held.kind == Kind.UNTRUSTED_BOUNCE
    (copy,) = (tmp_path / "held" / "review").glob("*.eml")
    assert copy.read_bytes() == forged


def test_a_welsh_reply_read_only_in_part_keeps_its_letters_where_the_cut_splits_one(
        factory: sessionmaker[Session], settings: Settings) -> None:
    to = signed_address_of(factory, settings, "ann@home.example", "reply", Purpose.REPLY)
    words = "Diolch yn fawr, mae\u2019r t\u0177 yn ddiogel.\n".encode()
    words += b" " * ((1 - len(words)) % 3)  # each dash below starts 1 byte past a 3-byte mark
    text = words + "\u2014".encode() * (12 * MB // 3)
    # Base64 of 3 bytes a line: whichever line the read stops at, it stops inside a dash.
    encoded = b"\r\n".join(base64.b64encode(text[n:n + 3]) for n in range(0, len(text), 3))
    raw = (f"From: ann@home.example\r\nTo: {to}\r\nSubject: Re: news\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n"
           "\r\n").encode() + encoded + b"\r\n"

    outcome = Intake(factory, settings).process(raw, via=Via.FILE)

    with factory() as session:
        reply = session.get_one(Reply, outcome.reply_id)
        assert reply.text.startswith("Diolch yn fawr, mae\u2019r t\u0177 yn ddiogel.\n\u2014")
        assert "\u00e2\u20ac" not in reply.text  # not read as Windows-1252 ("â€”")
