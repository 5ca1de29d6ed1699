"""A reply whose sender cannot be verified reaches the team marked so, in the forward and in
the officers' web inbox, through the real intake, on both stores.

Its sender is not verified when the receiving MTA (the authserv-id in
`inbound.trusted_authserv_id`) says the From failed DMARC, or when the From is not the
subscriber the signed reply token names. An Authentication-Results header under any other
authserv-id is the sender's own word and changes nothing.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.cli import cli
from alerts.core.config import Settings
from alerts.inbound.intake import Intake
from alerts.inbound.journal import Via
from alerts.inbound.replies import Reply
from alerts.mail.messages import Message, MessageKind
from tests.usecases.test_officers import RESIDENT, RESIDENT_WORDS, resident_email
from tests.web.test_officers import client_for, sign_in, with_passwords

MTA = "mx.police.example"
MARK = "Sender not verified"


def trusting(settings: Settings, authserv_id: str = MTA) -> Settings:
    return dataclasses.replace(settings, inbound=dataclasses.replace(
        settings.inbound, trusted_authserv_id=authserv_id))


def results(authserv_id: str, dmarc: str) -> bytes:
    """An Authentication-Results header as an MTA prepends it."""
    return (f"Authentication-Results: {authserv_id};\n"
            f" spf=pass smtp.mailfrom=home.example;\n"
            f" dmarc={dmarc} (p=reject dis=none) header.from=home.example\n").encode()


def take_in(factory: sessionmaker[Session], settings: Settings, *headers: bytes,
            sender: str = RESIDENT) -> tuple[bytes, int]:
    """A reply from `sender` to Ann's digest, with `headers` on top, taken in by the intake;
    returns the forward as it leaves and the reply's thread id."""
    world = with_passwords(factory)
    raw = b"".join(headers) + resident_email(factory, settings, world.riv_delivery,
                                            RESIDENT_WORDS, sender=sender)
    outcome = Intake(factory, settings).process(raw, via=Via.FILE)
    assert outcome.reply_id is not None, outcome
    with factory() as session:
        forward = session.scalars(select(Message).where(
            Message.kind == MessageKind.FORWARD, Message.reply_id == outcome.reply_id)).one()
        assert forward.email is not None
        thread_id = session.get_one(Reply, outcome.reply_id).thread_id
        return forward.email, thread_id


def pages(factory: sessionmaker[Session], settings: Settings, thread_id: int) -> str:
    """The inbox and the thread page, as the ward's officer reads them."""
    client: TestClient = client_for(factory, settings)
    assert sign_in(client).url.path == "/staff/"
    inbox = client.get("/staff/wards/RIV/replies")
    thread = client.get(f"/staff/wards/RIV/replies/{thread_id}")
    assert inbox.status_code == thread.status_code == 200
    return inbox.text + thread.text


def subject_of(forward: bytes) -> str:
    line = next(line for line in forward.split(b"\r\n") if line.startswith(b"Subject:"))
    return line.decode()


def test_a_trusted_dmarc_pass_from_the_subscriber_is_not_marked(
        factory: sessionmaker[Session], settings: Settings) -> None:
    settings = trusting(settings)
    forward, thread_id = take_in(factory, settings, results(MTA, "pass"))
    assert subject_of(forward) == "Subject: [RIV reply] Re: Riverside: your news"
    assert b"SENDER NOT VERIFIED" not in forward
    assert MARK not in pages(factory, settings, thread_id)


def test_a_trusted_dmarc_fail_is_marked_in_the_forward_and_the_web_inbox(
        factory: sessionmaker[Session], settings: Settings) -> None:
    settings = trusting(settings)
    forward, thread_id = take_in(factory, settings, results(MTA, "fail"))
    assert subject_of(forward) == \
        "Subject: [RIV reply] (sender not verified) Re: Riverside: your news"
    body = forward.split(b"\r\n\r\n", 1)[1]
    assert b"SENDER NOT VERIFIED: this email may not come from the resident" in body
    # The line is at the top of the team's text, before the context.
    assert body.index(b"SENDER NOT VERIFIED") < body.index(b"Ward:")
    shown = pages(factory, settings, thread_id)
    assert shown.count(MARK) == 2  # the inbox's thread and the reply in the thread


def test_an_authentication_results_from_another_authserv_id_is_ignored(
        factory: sessionmaker[Session], settings: Settings) -> None:
    """The sender's own "pass" (written above or below the MTA's) does not outweigh the
    trusted "fail"."""
    settings = trusting(settings)
    forward, thread_id = take_in(factory, settings, results("mx.attacker.example", "pass"),
                                 results(MTA, "fail"), results("mx.attacker.example", "pass"))
    assert "(sender not verified)" in subject_of(forward)
    assert MARK in pages(factory, settings, thread_id)


def test_a_fail_from_another_authserv_id_or_with_none_trusted_marks_nothing(
        factory: sessionmaker[Session], settings: Settings) -> None:
    """With no authserv-id configured every header is ignored, even one naming ours."""
    forward, thread_id = take_in(factory, trusting(settings, ""), results(MTA, "fail"),
                                 results("mx.attacker.example", "fail"))
    assert "(sender not verified)" not in subject_of(forward)
    assert MARK not in pages(factory, settings, thread_id)


def test_a_from_that_is_not_the_subscriber_the_token_names_is_marked(
        factory: sessionmaker[Session], settings: Settings) -> None:
    """The token is signed; the From is not: someone who saw Ann's reply address writes
    as someone else (and with a trusted dmarc=pass for their own domain)."""
    settings = trusting(settings)
    forward, thread_id = take_in(factory, settings, results(MTA, "pass"),
                                 sender="Mallory <mallory@elsewhere.example>")
    assert "(sender not verified)" in subject_of(forward)
    assert b"SENDER NOT VERIFIED" in forward
    assert MARK in pages(factory, settings, thread_id)


def test_alerts_replies_says_so_too(factory: sessionmaker[Session], settings: Settings,
                                    tmp_path: Path) -> None:
    take_in(factory, trusting(settings), results(MTA, "fail"))
    config = tmp_path / "alerts.toml"
    config.write_text(f'[database]\nurl = "{settings.database.url}"\n')

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, ["--config", str(config), "replies", *args])
        assert result.exit_code == 0, result.output
        return result.stdout

    (listed,) = json.loads(run("list", "--json"))
    assert listed["sender_verified"] is False and listed["signals"] == []
    assert "SENDER NOT VERIFIED" in run("show", str(listed["id"]))
