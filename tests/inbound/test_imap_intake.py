"""`alerts inbound poll`: replies and bounces fetched from a real Dovecot mailbox, handled once."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.cli import cli
from alerts.core.config import Settings
from alerts.inbound.replies import Reply
from subscriptions.links import Purpose
from subscriptions.suppression import is_suppressed
from tests.factories import make_sent_message, make_subscriber, make_ward, signed
from tests.imap import Dovecot
from tests.processes import free_port, healthz, start_alerts, wait_for

SECRET = "imap-tests-secret"


def test_poll_handles_each_message_once_and_moves_it(
        dovecot: Dovecot, tmp_path: Path, settings: Settings,
        factory: sessionmaker[Session]) -> None:
    dovecot.reset()
    with factory() as session, session.begin():
        ward = make_ward(session, "RIV", "Riverside")
        ann = make_subscriber(session, ward, "ann@home.example")
        bob = make_subscriber(session, ward, "bob@home.example")
        deliveries = make_sent_message(session, ward, [ann, bob])
        reply = signed(session, SECRET, Purpose.REPLY, deliveries[ann.subscriber_id])
        bounce = signed(session, SECRET, Purpose.BOUNCE, deliveries[bob.subscriber_id])
    reply_to, bounce_to = f"reply+{reply}@reply.example.org", f"bounces+{bounce}@reply.example.org"
    dovecot.append(
        "INBOX",
        f"From: ann@home.example\r\nTo: {reply_to}\r\nSubject: Re: news\r\n\r\n"
        "Will the team be at the fete?\r\n".encode(),
        f"From: MAILER-DAEMON@mx.home.example\r\nTo: {bounce_to}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nCould not deliver.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        "Final-Recipient: rfc822; bob@home.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "--B--\r\n".encode())
    config = tmp_path / "alerts.toml"
    config.write_text(
        f'[database]\nurl = "{settings.database.url}"\n'
        f'[mail]\nmaildir = "{tmp_path / "outbox"}"\n'
        f'[web]\nsecret_key = "{SECRET}"\n'
        f'[inbound]\nimap_host = "{dovecot.host}"\nimap_port = {dovecot.port}\n'
        f'imap_ssl = false\nimap_username = "{dovecot.username}"\n'
        f'imap_password = "{dovecot.password}"\nheld_dir = "{tmp_path / "held"}"\n')
    runner = CliRunner()
    first = runner.invoke(cli, ["--config", str(config), "inbound", "poll"])
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("2 fetched, 2 handled, 0 left")
    assert "1 reply(ies) forwarded" in first.stdout
    again = runner.invoke(cli, ["--config", str(config), "inbound", "poll"])
    assert again.stdout.startswith("0 fetched")
    assert dovecot.count("INBOX") == 0 and dovecot.count("Processed") == 2
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Reply)) == 1
        assert is_suppressed(session, "bob@home.example")


def test_poll_holds_a_report_that_came_without_a_bounces_token(
        dovecot: Dovecot, tmp_path: Path, settings: Settings,
        factory: sessionmaker[Session]) -> None:
    dovecot.reset()
    with factory() as session, session.begin():
        make_subscriber(session, make_ward(session, "RIV", "Riverside"), "ann@home.example")
    report = (b"Delivered-To: postmaster@reply.example.org\r\n"
              b"From: MAILER-DAEMON@mx.stranger.example\r\nTo: postmaster@reply.example.org\r\n"
              b"Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
              b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
              b"\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\n"
              b"Reporting-MTA: dns; mx\r\n\r\nFinal-Recipient: rfc822; ann@home.example\r\n"
              b"Action: failed\r\nStatus: 5.1.1\r\n--B--\r\n")
    dovecot.append("INBOX", report)
    config = tmp_path / "alerts.toml"
    config.write_text(
        f'[database]\nurl = "{settings.database.url}"\n[web]\nsecret_key = "{SECRET}"\n'
        f'[inbound]\nimap_host = "{dovecot.host}"\nimap_port = {dovecot.port}\n'
        f'imap_ssl = false\nimap_username = "{dovecot.username}"\n'
        f'imap_password = "{dovecot.password}"\nheld_dir = "{tmp_path / "held"}"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "inbound", "poll"])
    assert result.exit_code == 0, result.output
    with factory() as session:
        assert not is_suppressed(session, "ann@home.example")
    held = list((tmp_path / "held" / "review").glob("*.eml"))
    assert [path.read_bytes() for path in held] == [report]


def test_poll_without_a_mailbox_configured_says_which_key_to_set(
        tmp_path: Path, settings: Settings, factory: sessionmaker[Session]) -> None:
    config = tmp_path / "alerts.toml"
    config.write_text(f'[database]\nurl = "{settings.database.url}"\n'
                      f'[web]\nsecret_key = "{SECRET}"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "inbound", "poll"])
    assert result.exit_code == 1
    assert "inbound.imap_host is not set" in result.stderr


def test_alerts_run_polls_the_mailbox_on_its_schedule(
        dovecot: Dovecot, tmp_path: Path, settings: Settings,
        factory: sessionmaker[Session]) -> None:
    dovecot.reset()
    with factory() as session, session.begin():
        ward = make_ward(session, "RIV", "Riverside")
        ann = make_subscriber(session, ward, "ann@home.example")
        delivery = make_sent_message(session, ward, [ann])[ann.subscriber_id]
        reply_to = f"reply+{signed(session, SECRET, Purpose.REPLY, delivery)}@reply.example.org"
    web_port = free_port()
    config = tmp_path / "alerts.toml"
    config.write_text(
        f'[database]\nurl = "{settings.database.url}"\n'
        f'[mail]\nmaildir = "{tmp_path / "outbox"}"\n'
        f'[web]\nsecret_key = "{SECRET}"\nport = {web_port}\n'
        '[scheduler]\noutbox_poll_seconds = 0.2\nreconcile_seconds = 0.5\n'
        f'[inbound]\nimap_host = "{dovecot.host}"\nimap_port = {dovecot.port}\n'
        f'imap_ssl = false\nimap_username = "{dovecot.username}"\n'
        f'imap_password = "{dovecot.password}"\npoll_seconds = 1\n'
        f'held_dir = "{tmp_path / "held"}"\n')
    service = start_alerts(config, "run", log=tmp_path / "run.log")
    try:
        wait_for(lambda: healthz(f"http://127.0.0.1:{web_port}"), what="/healthz", timeout=30,
                 process=service)
        dovecot.append("INBOX", f"From: ann@home.example\r\nTo: {reply_to}\r\n"
                       "Subject: Re: news\r\n\r\nSee you at the surgery on Tuesday.\r\n".encode())

        def replies() -> int:
            with factory() as session:
                return session.scalar(select(func.count()).select_from(Reply)) or 0

        wait_for(replies, what="the reply fetched by the scheduled poll", process=service,
                 timeout=20)
        wait_for(lambda: dovecot.count("Processed") == 1, what="the message moved",
                 process=service)
        assert service.stop() == 0
    finally:
        if service.process.poll() is None:
            service.stop()
    assert "ann@home.example" not in service.output()
