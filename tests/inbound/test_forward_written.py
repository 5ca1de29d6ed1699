"""The forward written directly (`forward.written_forward`) is, byte for byte, the one the
email package builds (`build_forward(...).as_bytes()`): when every part of it is plain it
is written without the package, and otherwise built by it."""

from __future__ import annotations

import dataclasses
import email.generator
from datetime import UTC, datetime
from typing import Any

import pytest

from alerts.core.config import Settings, load_settings
from alerts.inbound import forward as forward_module
from alerts.inbound.forward import build_forward, written_forward
from alerts.inbound.replies import Reply
from alerts.mail import staff
from alerts.mail.messages import Message, MessageKind
from subscriptions.subscribers import Subscriber
from subscriptions.wards import Ward

BOUNDARY = "===============1234567890123456789=="
NOW = datetime(2026, 12, 8, 0, 54, 26, tzinfo=UTC)
PLAIN = (b"From: Ann Example <ann@home.example>\r\nTo: reply+1-abc@reply.example.org\r\n"
         b"Subject: Re: Riverside news\r\nMessage-ID: <r1@home.example>\r\n"
         b"Content-Type: text/plain; charset=utf-8\r\n\r\nWill the team be at the fete?\r\n"
         b"\r\n> Bike marking on Saturday.\r\n")
MULTIPART = (b"From: Ann Example <ann@home.example>\r\nTo: reply+1-abc@reply.example.org\r\n"
             b"Subject: Re: news\r\nMIME-Version: 1.0\r\n"
             b'Content-Type: multipart/mixed; boundary="P"\r\n\r\n--P\r\n'
             b"Content-Type: text/plain\r\n\r\nA photo.\r\n--P\r\nContent-Type: image/jpeg\r\n"
             b"Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--P--\r\n")


@pytest.fixture
def fixed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The random parts made fixed (Message-ID, boundary); counts the forwards built."""
    built: list[str] = []
    monkeypatch.setattr(staff, "make_msgid", lambda *a, **k: "<1.alerts.reply@example.org>")
    monkeypatch.setattr(forward_module, "make_msgid",
                        lambda *a, **k: "<1.alerts.reply@example.org>")
    monkeypatch.setattr(email.generator.Generator, "_make_boundary",
                        classmethod(lambda cls, text=None: BOUNDARY))
    real = forward_module.build_forward

    def counted(*args: Any, **kwargs: Any) -> Any:
        built.append("built")
        return real(*args, **kwargs)

    monkeypatch.setattr(forward_module, "build_forward", counted)
    return built


def settings(**mail: Any) -> Settings:
    base = load_settings(environ={})
    return dataclasses.replace(base, mail=dataclasses.replace(base.mail, **mail))


def case(*, name: str | None = "Ann Example", subject: str = "Re: Riverside news",
         text: str = "Will the team be at the fete?", quoted: str = "> Bike marking",
         signals: str = "", flagged: bool = False, answered: bool = True,
         original: bytes = PLAIN, team: str = "team-riv@police.example") -> dict[str, Any]:
    reply = Reply(id=7, thread_id=1, ward_id=1, subscriber_id=1, message_id=1,
                  received_at=NOW, subject=subject, text=text, quoted=quoted,
                  signals=signals, flagged=flagged)
    return dict(
        reply=reply, ward=Ward(id=1, code="RIV", name="Riverside", team_email=team),
        resident=Subscriber(id=1, email="ann@home.example", name=name),
        answered=Message(id=1, kind=MessageKind.DIGEST, subject="Riverside news",
                         created_at=NOW) if answered else None,
        original=original, now=NOW)


PLAIN_CASES = {
    "a plain reply": case(),
    "no name": case(name=None),
    "a name with an apostrophe and a hyphen": case(name="Siân O'Brien-Jones".replace("â", "a")),
    "flagged": case(signals="burglary", flagged=True),
    "not verified": case(signals="sender not verified"),
    "nothing above the quote, nothing quoted": case(text="", quoted=""),
    "no message it answers": case(answered=False),
    "a subject with quotes and brackets": case(subject='Re: "fete" (Saturday) [RIV]'),
    "words outside ASCII in the text": case(text="Diolch yn fawr — gwych! Café."),
}
BUILT_CASES = {
    "a name outside ASCII": case(name="Siân Jones"),
    "a subject outside ASCII": case(subject="Re: café news"),
    "a long subject": case(subject="Re: " + "news " * 20),
    "a long line": case(text="word " * 30),
    "a carriage return in the text": case(text="one\rtwo"),
    "a subject with an encoded word": case(subject="Re: =?utf-8?q?caf=C3=A9?="),
    "an original with parts": case(original=MULTIPART),
    "an original past what intake reads": case(original=PLAIN + b"More news.\r\n" * 30000),
    "a name with a dot": case(name="A. Example"),
    # A subject longer than a line: the email package folds it.
    "flagged, not verified": case(signals="burglary,sender not verified", flagged=True),
}


@pytest.mark.parametrize("name", list(PLAIN_CASES))
def test_a_plain_forward_is_written_as_the_email_package_builds_it(
        name: str, fixed: list[str]) -> None:
    given = PLAIN_CASES[name]
    written, subject = written_forward(**given, settings=settings(), boundary=BOUNDARY)
    assert fixed == []  # written directly
    built = build_forward(**given, settings=settings())
    assert written == built.as_bytes()
    assert subject == str(built["Subject"])


@pytest.mark.parametrize("name", list(BUILT_CASES))
def test_any_other_forward_is_built_by_the_email_package(name: str, fixed: list[str]) -> None:
    given = BUILT_CASES[name]
    written, subject = written_forward(**given, settings=settings(), boundary=BOUNDARY)
    assert fixed == ["built"]
    built = build_forward(**given, settings=settings())
    assert written == built.as_bytes()
    assert subject == str(built["Subject"])


def test_a_sender_name_that_is_not_plain_has_the_forward_built(fixed: list[str]) -> None:
    odd = settings(from_name="Neighbourhood Alerts, Riverside")
    written, _ = written_forward(**case(), settings=odd, boundary=BOUNDARY)
    assert fixed == ["built"]
    assert written == build_forward(**case(), settings=odd).as_bytes()


def test_a_boundary_is_never_a_line_of_what_it_separates() -> None:
    line = f"--{BOUNDARY}"
    given = case(text=f"Look:\n{line}")
    written, _ = written_forward(**given, settings=settings(), boundary=BOUNDARY)
    assert f'boundary="{BOUNDARY}"'.encode() not in written
