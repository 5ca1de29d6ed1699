"""The email policies mail is read and written with (alerts.mail.mime.READING and SMTP):
each header text parsed once, and everything else exactly as the email package's own
`policy.default` and `policy.SMTP`."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from alerts.core.config import Settings
from alerts.mail.mime import READING, SMTP
from alerts.mail.staff import staff_email
from subscriptions.base import utcnow

INBOUND = Path(__file__).parent.parent / "inbound"
MAIL = sorted((INBOUND / "samples").glob("*.eml")) + \
    sorted((INBOUND / "corpus").glob("*/*.eml"))[:200]
ORIGINAL = (b"From: Ann Example <ann@home.example>\r\nTo: reply+1-abc@reply.example.org\r\n"
            b"Subject: Re: news\r\nMessage-ID: <r1@home.example>\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n\r\nWill the team be there?\r\n")


def defects(header: Any) -> list[type]:
    return [type(defect) for defect in header.defects]


@pytest.mark.parametrize("path", MAIL, ids=lambda path: path.name)
def test_mail_is_read_as_the_default_policy_reads_it(path: Path) -> None:
    raw = path.read_bytes()
    ours = BytesParser(policy=READING).parsebytes(raw)
    stdlib = BytesParser(policy=policy.default).parsebytes(raw)
    assert ours.as_bytes() == stdlib.as_bytes()
    for mine, theirs in zip(ours.walk(), stdlib.walk(), strict=True):
        assert mine.get_content_type() == theirs.get_content_type()
        for (name, value), (_, expected) in zip(mine.items(), theirs.items(), strict=True):
            assert (str(value), type(value).__mro__[1:]) == \
                (str(expected), type(expected).__mro__[1:]), name
            assert defects(value) == defects(expected), name


def test_staff_mail_is_written_as_the_smtp_policy_writes_it(settings: Settings) -> None:
    message = staff_email(settings.mail, to="team-riv@police.example",
                          subject="[RIV reply] Ré: a long subject " * 4, now=utcnow(), kind="x")

    def build(with_policy: Any) -> bytes:
        copy = EmailMessage(policy=with_policy)
        for name, value in message.items():
            copy[name] = str(value)
        copy["Reply-To"] = "Ann Example <ann@home.example>"
        copy.set_content("What they wrote\n")
        copy.add_attachment(BytesParser(policy=READING).parsebytes(ORIGINAL),
                            disposition="attachment", filename="original.eml")
        return copy.as_bytes().replace(str(copy.get_boundary()).encode(), b"B")

    assert message.policy is SMTP
    assert build(SMTP) == build(policy.SMTP)


HEADERS = [
    ("Subject", "[RIV reply] Re: Riverside news"),
    ("Subject", "[RIV reply] (sender not verified) Ré: a long subject that goes on " * 3),
    ("From", '"Riverside Safer Neighbourhood Team, Vale Police" <alerts@police.example>'),
    ("Reply-To", "Siân Jones <sian@home.example>"),
    ("To", "team-riv@police.example"),
    ("Content-Type", 'multipart/mixed; boundary="===============1234567890=="'),
    ("Content-Disposition", 'attachment; filename="original.eml"'),
    ("X-Alerts-Ward", "RIV"),
]


@pytest.mark.parametrize(("name", "value"), HEADERS)
def test_a_header_written_again_is_folded_once_as_the_smtp_policy_folds_it(
        name: str, value: str) -> None:
    for ours, theirs in ((SMTP, policy.SMTP),
                         (SMTP.clone(max_line_length=40), policy.SMTP.clone(max_line_length=40)),
                         (SMTP.clone(utf8=True), policy.SMTP.clone(utf8=True)),
                         (READING, policy.default)):
        header = ours.header_store_parse(name, value)[1]
        expected = theirs.fold_binary(name, theirs.header_store_parse(name, value)[1])
        first = ours.fold_binary(name, header)
        assert first == expected
        assert ours.fold_binary(name, header) is first  # folded once
