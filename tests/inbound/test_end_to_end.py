"""Inbound mail end to end: `alerts run` with its LMTP server, an SMTP relay on loopback.

A digest goes out; the test then plays the MTA, handing mail over by LMTP as Postfix would:
the resident's reply, a second reply in the same thread, a hard bounce for another
resident, and an out-of-office.
"""

from __future__ import annotations

import smtplib
import time
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.cli import cli
from alerts.core.config import Settings
from alerts.delivery.outbox import Delivery
from alerts.inbound.journal import InboundRecord
from alerts.mail.messages import Message, MessageKind
from subscriptions.subscribers import Subscriber
from subscriptions.suppression import is_suppressed
from tests.factories import make_subscriber, make_ward
from tests.processes import free_port, healthz, start_alerts, wait_for
from tests.servers import Received, SinkHandler, smtp_sink
from tests.service.test_service import write_config

ANN = "ann@home.example"
BOB = "bob@home.example"
TEAM = "team-riv@police.example"


def lmtp_send(port: int, sender: str, recipient: str, data: bytes) -> None:
    with smtplib.LMTP("127.0.0.1", port) as lmtp:
        refused = lmtp.sendmail(sender, [recipient], data)
    assert refused == {}


def to(sink: SinkHandler, address: str) -> list[Received]:
    return [r for r in list(sink.received) if address in r.rcpt_tos]


def answers_queued(factory: sessionmaker[Session], email: str) -> int:
    with factory() as session:
        return session.scalar(
            select(func.count()).select_from(Delivery)
            .join(Message, Message.id == Delivery.message_id)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Subscriber.email == email, Message.kind == MessageKind.REPLY_ACK)) or 0


def reply(reply_to: str, text: str, *, headers: dict[str, str] | None = None) -> bytes:
    message = EmailMessage()
    message["From"] = f"Ann Example <{ANN}>"
    message["To"] = reply_to
    message["Subject"] = "Re: Riverside: your neighbourhood news"
    message["Message-ID"] = make_msgid(domain="home.example")
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(
        f"{text}\n\nOn Fri, 20 Nov 2026 at 16:00, Riverside team <alerts@example.org> wrote:\n"
        "> Bike marking at the library on Saturday.\n> A burglary was reported on Mill Lane.\n")
    return message.as_bytes()


def hard_bounce(address: str) -> bytes:
    return (
        "From: MAILER-DAEMON@mx.home.example (Mail Delivery System)\r\n"
        "To: bounces@reply.example.org\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B1"\r\n'
        "\r\n--B1\r\nContent-Type: text/plain\r\n\r\n"
        "This is the mail system at host mx.home.example.\r\n\r\n"
        f"<{address}>: host mx.home.example said: 550 5.1.1 <{address}>: Recipient address "
        "rejected: User unknown in virtual mailbox table\r\n"
        "\r\n--B1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.home.example\r\n\r\n"
        f"Final-Recipient: rfc822; {address}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n"
        "\r\n--B1--\r\n"
    ).encode()


def test_reply_bounce_and_out_of_office_over_lmtp(tmp_path: Path, settings: Settings,
                                                   factory: sessionmaker[Session]) -> None:
    with factory() as session, session.begin():
        ward = make_ward(session, "RIV", "Riverside")
        make_subscriber(session, ward, ANN, name="Ann Example")
        make_subscriber(session, ward, BOB, name="Bob Example")
    with smtp_sink() as (sink, smtp_port):
        lmtp_port, web_port = free_port(), free_port()
        config = write_config(tmp_path / "alerts.toml", settings.database.url, smtp_port,
                              web_port)
        config.write_text(config.read_text() + f'[inbound]\nlmtp = "127.0.0.1:{lmtp_port}"\n'
                          f'held_dir = "{tmp_path / "held"}"\n')
        runner = CliRunner()
        for args in (["post", "--ward", "RIV", "--title", "Bike marking on Saturday",
                      "--body", "Bring your bike to the library between 10 and 12."],
                     ["digest", "send", "--ward", "RIV"]):
            result = runner.invoke(cli, ["--config", str(config), *args])
            assert result.exit_code == 0, result.output

        service = start_alerts(config, "run", log=tmp_path / "run.log")
        try:
            wait_for(lambda: healthz(f"http://127.0.0.1:{web_port}"), what="/healthz", timeout=30,
                     process=service)
            wait_for(lambda: bool(to(sink, ANN) and to(sink, BOB)), what="both digests",
                     process=service)
            ann_digest = to(sink, ANN)[0].message
            reply_to = str(ann_digest["Reply-To"])
            bob_bounce_address = to(sink, BOB)[0].mail_from
            assert reply_to.startswith("reply+") and bob_bounce_address.startswith("bounces+")

            # 1. Ann replies: the team gets it with its context, Ann one acknowledgement.
            lmtp_send(lmtp_port, ANN, reply_to,
                      reply(reply_to, "Thank you. Could the team come to the school fete?"))
            wait_for(lambda: bool(to(sink, TEAM)), what="the reply at the team address",
                     process=service)
            forward = to(sink, TEAM)[0].message
            body = forward.get_body(preferencelist=("plain",))
            assert body is not None
            context = body.get_content()
            assert "Could the team come to the school fete?" in context
            assert "Riverside (RIV)" in context
            assert f"Ann Example <{ANN}>" in context
            assert f'In reply to: "{ann_digest["Subject"]}"' in context
            assert "Bike marking at the library" not in context  # the quote is left out
            assert ANN in str(forward["Reply-To"])
            wait_for(lambda: len(to(sink, ANN)) > 1, what="the acknowledgement",
                     process=service)
            ack = to(sink, ANN)[1].message
            assert ack["Auto-Submitted"] == "auto-replied"
            ack_text = ack.get_body(preferencelist=("plain",))
            assert ack_text is not None
            assert "call 999" in ack_text.get_content() and "101" in ack_text.get_content()

            # 2. A second reply in the same thread reaches the team, and gets no answer.
            lmtp_send(lmtp_port, ANN, reply_to,
                      reply(reply_to, "Also: the fete is on the 5th of December."))
            wait_for(lambda: len(to(sink, TEAM)) == 2, what="the second reply at the team",
                     process=service)

            # 3. A hard bounce for Bob, to the envelope sender his digest used.
            lmtp_send(lmtp_port, "", bob_bounce_address, hard_bounce(BOB))

            def bob_suppressed() -> bool:
                with factory() as session:
                    return is_suppressed(session, BOB)

            wait_for(bob_suppressed, what="Bob on the suppression list", process=service)

            # 4. Ann's out-of-office to the same reply address: recorded, never answered.
            lmtp_send(lmtp_port, ANN, reply_to, reply(
                reply_to, "I am away until Monday.",
                headers={"Auto-Submitted": "auto-replied", "X-Autoreply": "yes"}))

            def auto_replies() -> int:
                with factory() as session:
                    return session.scalar(select(func.count()).select_from(InboundRecord)
                                          .where(InboundRecord.kind == "auto_reply")) or 0

            wait_for(auto_replies, what="the out-of-office in the journal", process=service)
            time.sleep(1.0)  # five delivery polls: time for any wrong answer to go out
            assert len(to(sink, ANN)) == 2  # the digest and the one acknowledgement
            assert answers_queued(factory, ANN) == 1
            assert len(to(sink, TEAM)) == 2  # the out-of-office was not forwarded
            assert service.stop() == 0
        finally:
            if service.process.poll() is None:
                service.stop()
        log = service.output()
        assert ANN not in log and BOB not in log and "school fete" not in log
