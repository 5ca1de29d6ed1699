"""The LMTP server: what it accepts, and the answers an MTA acts on."""

from __future__ import annotations

import asyncio
import smtplib
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.inbound.intake import Intake
from alerts.inbound.lmtp import InboundHandler, ListenAddressError, parse_listen, start_lmtp
from alerts.inbound.status import inbound_report
from subscriptions.base import utcnow
from subscriptions.suppression import is_suppressed
from tests.factories import make_sent_message, make_subscriber, make_ward
from tests.inbound.test_intake import ann_and_bob_and_an_altered_bounces_address, hard_bounce

T = TypeVar("T")

MESSAGE = b"From: ann@home.example\r\nTo: x@reply.example.org\r\nSubject: hi\r\n\r\nHello\r\n"


def with_server(intake: Intake, settings: Settings, client: Callable[[int], T]) -> T:
    """Run the LMTP server on a free port while `client(port)` runs in a thread."""

    async def scenario() -> T:
        server = await start_lmtp(InboundHandler(intake, settings), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await asyncio.to_thread(client, port)

    return asyncio.run(scenario())


def lines_after_data(port: int, recipients: list[str], data: bytes) -> list[bytes]:
    """Speak LMTP by hand to read the one reply a recipient that follows DATA."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        stream = sock.makefile("rwb")

        def say(line: bytes) -> bytes:
            stream.write(line + b"\r\n")
            stream.flush()
            while True:
                reply = stream.readline()
                if reply[3:4] != b"-":
                    return reply

        stream.readline()  # greeting
        say(b"LHLO test")
        say(b"MAIL FROM:<ann@home.example>")
        for rcpt in recipients:
            assert say(b"RCPT TO:<" + rcpt.encode() + b">").startswith(b"250")
        assert say(b"DATA").startswith(b"354")
        stream.write(data + b".\r\n")
        stream.flush()
        answers = [stream.readline() for _ in recipients]
        say(b"QUIT")
        return answers


def test_listen_address_is_host_and_port() -> None:
    assert parse_listen("127.0.0.1:8024") == ("127.0.0.1", 8024)
    assert parse_listen("[::1]:24") == ("::1", 24)
    with pytest.raises(ListenAddressError, match="HOST:PORT"):
        parse_listen("8024")


def rcpt_codes(port: int, recipients: list[str]) -> dict[str, int]:
    """The answer to RCPT TO for each address, in one LMTP session."""
    with smtplib.LMTP("127.0.0.1", port) as lmtp:
        lmtp.ehlo_or_helo_if_needed = lambda: None  # type: ignore[method-assign]
        lmtp.docmd("LHLO", "test")
        lmtp.mail("")
        return {rcpt: lmtp.rcpt(rcpt)[0] for rcpt in recipients}


def test_only_the_addresses_the_product_issues_are_accepted_at_rcpt(
        factory: sessionmaker[Session], settings: Settings) -> None:
    issued = ["reply+1-aaaaaaaaaaaaaaaaaaaa@reply.example.org",
              "BOUNCES+1-aaaaaaaaaaaaaaaaaaaa@Reply.Example.Org",
              "unsubscribe+1-aaaaaaaaaaaaaaaaaaaa@reply.example.org", "alerts@example.org"]
    never = ["postmaster@reply.example.org", "bounces@reply.example.org",
             "abuse@reply.example.org", "reply@reply.example.org",
             "bounces+1-aaaaaaaaaaaaaaaaaaaa@elsewhere.example", "someone@elsewhere.example"]
    codes = with_server(Intake(factory, settings), settings,
                        lambda port: rcpt_codes(port, issued + never))
    assert codes == {**dict.fromkeys(issued, 250), **dict.fromkeys(never, 550)}


def test_each_recipient_gets_its_own_answer_after_data(
        factory: sessionmaker[Session], settings: Settings) -> None:
    with factory() as session, session.begin():
        ward = make_ward(session, "RIV", "Riverside")
        make_sent_message(session, ward, [make_subscriber(session, ward)])
    recipients = ["reply+1-aaaaaaaaaaaaaaaaaaaa@reply.example.org",
                  "alerts@example.org"]
    answers = with_server(Intake(factory, settings), settings,
                          lambda port: lines_after_data(port, recipients, MESSAGE))
    assert [a[:3] for a in answers] == [b"250", b"250"]


def test_a_database_that_cannot_be_used_gets_451_so_the_mta_keeps_the_message(
        tmp_path: Path, settings: Settings) -> None:
    broken = create_engine(f"sqlite:///{tmp_path / 'never-migrated.db'}")
    intake = Intake(sessionmaker(broken), settings)
    answers = with_server(intake, settings, lambda port: lines_after_data(
        port, ["reply+1-aaaaaaaaaaaaaaaaaaaa@reply.example.org"], MESSAGE))
    assert answers[0].startswith(b"451 4.3.0")


def test_bounces_a_stranger_sends_over_lmtp_suppress_nobody_and_are_counted(
        factory: sessionmaker[Session], settings: Settings, tmp_path: Path) -> None:
    altered = ann_and_bob_and_an_altered_bounces_address(factory, settings)
    stranger = (b"From: mailer-daemon@mx.stranger.example\r\nTo: alerts@example.org\r\n"
                b"X-Failed-Recipients: ann@home.example\r\nSubject: Mail delivery failed\r\n"
                b"\r\nThis message was created automatically by mail delivery software.\r\n")
    both = ["ann@home.example", "bob@home.example"]

    def client(port: int) -> dict[str, int]:
        with smtplib.LMTP("127.0.0.1", port) as lmtp:
            refused = lmtp.sendmail("", [altered], hard_bounce(["bob@home.example"], altered))
            refused |= lmtp.sendmail("", ["alerts@example.org"], stranger)
            try:
                lmtp.sendmail("", ["postmaster@reply.example.org"],
                              hard_bounce(both, "postmaster@reply.example.org"))
            except smtplib.SMTPRecipientsRefused as error:
                refused |= {rcpt: code for rcpt, (code, _) in error.recipients.items()}
        return refused

    refused = with_server(Intake(factory, settings), settings, client)
    assert refused == {"postmaster@reply.example.org": 550}
    with factory() as session:
        assert not is_suppressed(session, "ann@home.example")
        assert not is_suppressed(session, "bob@home.example")
        report = inbound_report(session, utcnow())
    assert report.untrusted_bounces_last_week == 2 and report.held_last_week == 2
    assert len(list((tmp_path / "held" / "review").glob("*.eml"))) == 2
