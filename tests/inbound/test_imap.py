"""Polling an IMAP mailbox (alerts/inbound/imap.py), against a real Dovecot on loopback."""

from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

import pytest
from imapclient import IMAPClient

from alerts.core.config import InboundSettings
from alerts.inbound.imap import ImapError, PollReport, RetryLater, poll_mailbox
from tests.imap import Dovecot, free_port


def reply(number: int, *, words: str = "Thanks for the session at the library.") -> bytes:
    """A resident's reply to a team update, numbered in its subject."""
    message = EmailMessage()
    message["From"] = f"Resident {number} <resident{number}@example.net>"
    message["To"] = f"reply+token{number}@reply.example.org"
    message["Subject"] = f"Re: Contact session no. {number} at the Elm Road library"
    message["Message-ID"] = f"<reply-{number}@example.net>"
    message.set_content(f"{words}\nCould the next one be on a Saturday? ({number})\n")
    return message.as_bytes(policy=SMTP)


def elsewhere(host: str, port: int, **overrides: Any) -> InboundSettings:
    """Settings for a server that is not our Dovecot."""
    values: dict[str, Any] = {"imap_ssl": False, "imap_username": "team",
                              "imap_password": "secret-word-99", **overrides}
    return InboundSettings(imap_host=host, imap_port=port, **values)


def number_of(raw: bytes) -> int:
    found = re.search(rb"Contact session no\. (\d+)", raw)
    assert found is not None
    return int(found.group(1))


class Recorder:
    """A handler that records what it was given; `retry` and `fail` choose messages it
    cannot finish."""

    def __init__(self, *, retry: set[int] | None = None, fail: set[int] | None = None) -> None:
        self.seen: list[bytes] = []
        self.retry = retry or set()
        self.fail = fail or set()

    def __call__(self, raw: bytes) -> None:
        number = number_of(raw)
        if number in self.fail:
            raise RuntimeError("the handler broke")
        if number in self.retry:
            raise RetryLater("the database is down")
        self.seen.append(raw)

    @property
    def numbers(self) -> list[int]:
        return [number_of(raw) for raw in self.seen]


@pytest.fixture
def server(dovecot: Dovecot) -> Dovecot:
    """The shared Dovecot, its account emptied for this test."""
    dovecot.reset()
    return dovecot


def test_each_message_is_handled_once_and_moved_to_the_done_folder(server: Dovecot) -> None:
    messages = [reply(1), reply(2), reply(3)]
    server.append("INBOX", *messages)
    handler = Recorder()

    report = poll_mailbox(server.settings(), handler)

    assert report == PollReport(fetched=3, handled=3, left=0)
    assert handler.seen == messages  # the bytes exactly as they arrived
    assert server.count("INBOX") == 0
    assert [raw for raw, _flags in server.messages("Processed")] == messages

    again = poll_mailbox(server.settings(), handler)
    assert again == PollReport(fetched=0, handled=0, left=0)
    assert handler.numbers == [1, 2, 3]


def test_a_message_the_handler_cannot_finish_stays_for_the_next_poll(server: Dovecot) -> None:
    server.append("INBOX", reply(1), reply(2), reply(3))

    report = poll_mailbox(server.settings(), Recorder(retry={2}))

    assert report == PollReport(fetched=3, handled=2, left=1)
    [(raw, flags)] = server.messages("INBOX")
    assert number_of(raw) == 2
    assert b"\\Seen" not in flags
    assert server.count("Processed") == 2

    later = Recorder()
    assert poll_mailbox(server.settings(), later) == PollReport(fetched=1, handled=1, left=0)
    assert later.numbers == [2]
    assert server.count("INBOX") == 0
    assert server.count("Processed") == 3


def test_missing_done_folder_is_created(server: Dovecot) -> None:
    server.append("INBOX", reply(1))
    assert not server.exists("Handled/Replies")

    poll_mailbox(server.settings(imap_done_mailbox="Handled/Replies"), Recorder())

    assert server.count("Handled/Replies") == 1
    assert server.count("INBOX") == 0


def test_an_existing_done_folder_is_used_as_it_is(server: Dovecot) -> None:
    server.append("Processed", reply(1))
    server.append("INBOX", reply(2))

    poll_mailbox(server.settings(), Recorder())

    assert [number_of(raw) for raw, _ in server.messages("Processed")] == [1, 2]


def test_limit_takes_the_oldest_first(server: Dovecot) -> None:
    server.append("INBOX", *(reply(number) for number in range(1, 6)))
    handler = Recorder()

    first = poll_mailbox(server.settings(), handler, limit=2)

    assert first == PollReport(fetched=2, handled=2, left=0)
    assert handler.numbers == [1, 2]
    assert server.count("INBOX") == 3

    poll_mailbox(server.settings(), handler, limit=2)
    poll_mailbox(server.settings(), handler, limit=2)
    assert handler.numbers == [1, 2, 3, 4, 5]


def test_a_message_in_another_mailbox_is_polled_from_there(server: Dovecot) -> None:
    server.append("INBOX", reply(1))
    server.append("Team", reply(2))
    handler = Recorder()

    poll_mailbox(server.settings(imap_mailbox="Team"), handler)

    assert handler.numbers == [2]
    assert server.count("INBOX") == 1


def test_a_handler_error_propagates_and_leaves_the_message_unseen(server: Dovecot) -> None:
    server.append("INBOX", reply(1), reply(2), reply(3))
    handler = Recorder(fail={2})

    with pytest.raises(RuntimeError, match="the handler broke"):
        poll_mailbox(server.settings(), handler)

    assert handler.numbers == [1]
    assert server.count("Processed") == 1
    left = server.messages("INBOX")
    assert [number_of(raw) for raw, _ in left] == [2, 3]
    assert all(b"\\Seen" not in flags for _, flags in left)


def test_the_connection_is_logged_out_even_when_the_handler_fails(server: Dovecot) -> None:
    server.append("INBOX", reply(1))
    before = server.sessions()

    with pytest.raises(RuntimeError):
        poll_mailbox(server.settings(), Recorder(fail={1}))

    after = server.sessions()
    assert len(after) == len(before) + 1
    assert after[-1].startswith("Logged out")


def test_without_move_the_message_is_copied_then_expunged(
    server: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = IMAPClient.has_capability

    def without_move(self: IMAPClient, capability: str) -> Any:
        return False if capability.upper() == "MOVE" else original(self, capability)

    monkeypatch.setattr(IMAPClient, "has_capability", without_move)
    server.append("INBOX", reply(1), reply(2))

    report = poll_mailbox(server.settings(), Recorder())

    assert report == PollReport(fetched=2, handled=2, left=0)
    assert server.count("INBOX") == 0  # expunged, not merely flagged \Deleted
    assert server.count("Processed") == 2


def test_nothing_about_a_message_is_logged(
    server: Dovecot, caplog: pytest.LogCaptureFixture
) -> None:
    server.append("INBOX", reply(7, words="Our shed on Quince Lane was opened overnight."))
    caplog.set_level(logging.DEBUG)

    poll_mailbox(server.settings(), Recorder(retry={7}))
    poll_mailbox(server.settings(), Recorder())

    assert "UID" in caplog.text  # it does say what it did
    for secret in ("resident7", "Quince Lane", "Elm Road", "reply+token", server.password):
        assert secret not in caplog.text


def test_wrong_password_is_a_clear_error_without_the_password(server: Dovecot) -> None:
    wrong = "not-the-team-password-4411"

    with pytest.raises(ImapError) as caught:
        poll_mailbox(server.settings(imap_password=wrong), Recorder())

    message = str(caught.value)
    assert f"{server.host}:{server.port}" in message
    assert "'INBOX'" in message
    assert "imap_password" in message
    assert wrong not in message
    assert "\n" not in message


def test_missing_mailbox_is_a_clear_error(server: Dovecot) -> None:
    with pytest.raises(ImapError) as caught:
        poll_mailbox(server.settings(imap_mailbox="Nowhere"), Recorder())

    message = str(caught.value)
    assert "'Nowhere'" in message
    assert f"{server.host}:{server.port}" in message
    assert "imap_mailbox" in message
    assert not server.exists("Processed")


def test_tls_to_a_plain_port_is_a_clear_error(server: Dovecot) -> None:
    with pytest.raises(ImapError) as caught:
        poll_mailbox(server.settings(imap_ssl=True), Recorder(), timeout=5)

    message = str(caught.value)
    assert message.startswith(f"TLS with {server.host}:{server.port}")
    assert "imap_ssl" in message


def test_nothing_listening_is_a_clear_error() -> None:
    port = free_port()  # bound and released: nothing listens there now
    settings = elsewhere("127.0.0.1", port)

    with pytest.raises(ImapError) as caught:
        poll_mailbox(settings, Recorder(), timeout=5)

    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "'INBOX'" in message
    assert "imap_port" in message
    assert "secret-word-99" not in message


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never says a word (as a TLS port does to a
    client that waits for a plain greeting)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        yield listener.getsockname()[1]


def test_a_server_that_never_greets_is_a_clear_timeout(silent_port: int) -> None:
    settings = elsewhere("127.0.0.1", silent_port)
    started = time.monotonic()

    with pytest.raises(ImapError) as caught:
        poll_mailbox(settings, Recorder(), timeout=0.5)

    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert f"127.0.0.1:{silent_port}" in message
    assert "within 0.5s" in message
    assert "imap_ssl = false" in message


def test_an_unknown_host_is_a_clear_error() -> None:
    settings = elsewhere("imap.invalid", 993, imap_ssl=True)

    with pytest.raises(ImapError, match=r"cannot find the IMAP host 'imap\.invalid'.*DNS"):
        poll_mailbox(settings, Recorder(), timeout=5)


def test_settings_that_cannot_work_are_refused_before_connecting() -> None:
    settings = elsewhere("127.0.0.1", free_port(), imap_done_mailbox="INBOX")

    with pytest.raises(ImapError, match="imap_done_mailbox must name another folder"):
        poll_mailbox(settings, Recorder())
    with pytest.raises(ImapError, match=r"not configured: set inbound\.imap_host"):
        poll_mailbox(InboundSettings(), Recorder())
