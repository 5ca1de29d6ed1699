"""flufl.bounce's detectors run only where one of them could find a failure
(`classify._detectors_can_fire`): a person's plain reply skips them, and no message that
any detector reads as a bounce, nor any classification of the corpus, changes."""

from __future__ import annotations

import email
from pathlib import Path
from typing import Any

import flufl.bounce
import pytest

from alerts.core.config import MailSettings
from alerts.inbound import classify as classify_module
from alerts.inbound.classify import Kind, classify
from alerts.inbound.mail import parse_mail
from alerts.inbound.text import body_text, split_reply

HERE = Path(__file__).parent
MESSAGES = sorted(p for folder in ("corpus", "samples") for p in (HERE / folder).rglob("*")
                  if p.suffix in (".eml", ".txt") and p.name != "README.txt")
OURS = MailSettings(reply_domain="reply.example.org")


def reply(body: str, *, headers: str = "") -> bytes:
    return (f"From: Ann Example <ann@home.example>\r\nTo: reply+1-abc@reply.example.org\r\n"
            f"Subject: Re: news\r\nMessage-ID: <r1@home.example>\r\n{headers}"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}").encode()


def detectors_find(raw: bytes) -> bool:
    try:
        temporary, permanent = flufl.bounce.all_failures(email.message_from_bytes(raw))
    except Exception:  # as intake treats a detector's fault: nothing found
        return False
    return bool(temporary or permanent)


def classified(raw: bytes) -> Any:
    mail = parse_mail(raw)
    return classify(mail, new_text=split_reply(body_text(mail.message)).new, ours=OURS)


@pytest.fixture
def detector_runs(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    runs: list[object] = []
    real = flufl.bounce.all_failures

    def counted(message: Any) -> Any:
        runs.append(message)
        return real(message)

    monkeypatch.setattr(flufl.bounce, "all_failures", counted)
    return runs


def test_the_corpus_is_read() -> None:
    assert len(MESSAGES) > 300


def test_no_message_a_detector_reads_as_a_bounce_skips_them() -> None:
    missed = [path.name for path in MESSAGES
              if detectors_find(parse_mail(path.read_bytes()).head)
              and not classify_module._detectors_can_fire(parse_mail(path.read_bytes()).head)]
    assert missed == []


def test_every_message_of_the_corpus_is_classified_as_with_the_detectors_always_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    gated = {path.name: classified(path.read_bytes()) for path in MESSAGES}
    monkeypatch.setattr(classify_module, "_detectors_can_fire", lambda raw: True)
    always = {path.name: classified(path.read_bytes()) for path in MESSAGES}
    assert gated == always


def test_a_persons_plain_reply_is_not_given_to_the_detectors(
        detector_runs: list[object]) -> None:
    raw = reply("Will the team be at the fete?\r\n\r\nOn Fri, Riverside team wrote:\r\n"
                "> Bike marking at the library on Saturday.\r\n")
    assert classified(raw).kind == Kind.REPLY
    assert detector_runs == []


@pytest.mark.parametrize(("why", "raw"), [
    # LLNL's detector: an address between commas on any line of the body.
    ("an address between commas", reply("Please write to me, ann@work.example, not here.\r\n")),
    # qmail's intro line, anywhere, whoever sent it.
    ("qmail's intro", reply("Hi. This is the qmail-send program at mx.example.\r\n\r\n"
                            "<ann@home.example>:\r\nSorry, no mailbox here by that name.\r\n")),
    # SimpleMatch's start lines, in whatever case.
    ("a simple match", reply("THE FOLLOWING ADDRESSES HAD PERMANENT FATAL ERRORS\r\n"
                             "<ann@home.example>\r\n")),
    ("a header a detector reads", reply("Sorry.\r\n", headers="X-Failed-Recipients: a@b.c\r\n")),
    ("a mailer-daemon", reply("Sorry.\r\n").replace(b"ann@home.example>",
                                                    b"MAILER-DAEMON@yahoo.example>", 1)),
    ("an encoded body", reply("Sorry.\r\n", headers="Content-Transfer-Encoding: base64\r\n")),
    ("several parts", reply("Sorry.\r\n").replace(
        b"text/plain; charset=utf-8", b'multipart/mixed; boundary="x"')),
    ("a head the parser ends early", reply("Sorry.\r\n").replace(
        b"Subject: Re: news\r\n", b"Subject: Re: news\r\nnot a header\r\n")),
])
def test_a_message_a_detector_could_read_is_given_to_them_and_classified_as_before(
        why: str, raw: bytes, detector_runs: list[object],
        monkeypatch: pytest.MonkeyPatch) -> None:
    gated = classified(raw)
    assert len(detector_runs) == 1, why
    monkeypatch.setattr(classify_module, "_detectors_can_fire", lambda raw: True)
    assert classified(raw) == gated
