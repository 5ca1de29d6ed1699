"""The original attached to a forward: the same bytes whether or not it is parsed to be
attached (that a plain reply is not parsed again for its forward: test_intake_cost.py)."""

from __future__ import annotations

from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from alerts.mail.mime import READING, SMTP, attach_message

HERE = Path(__file__).parent
# Every real-world message the inbound tests keep (bounces, auto-replies, residents'
# replies), and some made to sit at the edges of what is written from its own bytes.
KEPT = sorted(p for p in [*(HERE / "samples").iterdir(), *(HERE / "corpus").rglob("*")]
              if p.is_file() and p.suffix in (".eml", ".txt"))
PLAIN = (b"From: Ann Example <ann@home.example>\r\nTo: reply+1-abc@reply.example.org\r\n"
         b"Subject: Re: news\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
         b"Will the team be at the fete?\r\n\r\n> Bike marking on Saturday.\r\n")
EDGES = [
    PLAIN,
    PLAIN.replace(b"\r\n", b"\n"),  # line ends of a Unix mailbox
    PLAIN.replace(b"\r\n", b"\r"),
    PLAIN.replace(b"Subject: Re: news", b"Subject:    Re: news\r\n\tcontinued"),
    PLAIN.replace(b"Subject: Re: news", b"Subject:"),
    PLAIN.replace(b"Subject: Re: news", b"Subject: " + b"x" * 69),  # 78 characters
    PLAIN.replace(b"Subject: Re: news", b"Subject: " + b"x" * 70),  # 79: refolded
    PLAIN.replace(b"Subject: Re: news", b"Subject: caf\xc3\xa9 \xe2\x80\x94 8-bit"),
    PLAIN.replace(b"Subject: Re: news", b"Subject: a\x0cb"),
    PLAIN.replace(b"Subject: Re: news", b"Subject : spaced name"),
    PLAIN.replace(b"text/plain; charset=utf-8", b"text/html"),
    PLAIN.replace(b"text/plain; charset=utf-8", b"multipart/mixed; boundary=X"),
    PLAIN.replace(b"text/plain; charset=utf-8", b"message/rfc822"),
    PLAIN.replace(b"Content-Type: text/plain; charset=utf-8\r\n", b""),
    PLAIN.replace(b"Content-Type: text/plain; charset=utf-8\r\n",
                  b"Content-Type: text/plain\r\nContent-Type: multipart/mixed\r\n"),
    PLAIN.rstrip(b"\r\n"),  # no line end at the end
    PLAIN.split(b"\r\n\r\n")[0],  # a head and no body
    b"\r\n" + PLAIN,  # no head
    b"From ann@home.example Fri Nov 20 16:00:00 2026\r\n" + PLAIN,  # a mailbox's From line
    b"not a header\r\n" + PLAIN,
    PLAIN.replace(b"\xe2", b"") + b"\xff\xfe bytes that are not UTF-8\r\n",
]


def forward_with(raw: bytes, attach: Any) -> bytes:
    email = EmailMessage(policy=SMTP)
    email["Subject"] = "[RIV reply] Re: news"
    email.set_content("What they wrote\n")
    attach(email, raw)
    email.set_boundary("BOUNDARY")
    return email.as_bytes()


def parsed_and_attached(email: EmailMessage, raw: bytes) -> None:
    """How the forward attached its original before: parsed, then written back."""
    email.add_attachment(BytesParser(policy=READING).parsebytes(raw),
                         disposition="attachment", filename="original.eml")


@pytest.mark.parametrize("raw", [p.read_bytes() for p in KEPT] + EDGES,
                         ids=[p.name for p in KEPT] + [f"edge{n}" for n in range(len(EDGES))])
def test_the_attached_original_is_the_bytes_parsing_and_writing_it_gives(raw: bytes) -> None:
    try:
        expected = forward_with(raw, parsed_and_attached)
    except UnicodeEncodeError:  # the email package cannot write some long 8-bit headers
        pytest.skip("the email package cannot write this message back")
    assert forward_with(raw, lambda email, raw: attach_message(
        email, raw, filename="original.eml")) == expected
