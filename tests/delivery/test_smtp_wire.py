"""A message whose lines all end in CRLF (every message the product builds) goes out as
DATA puts it on the wire without aiosmtplib's passes over it: its two regular expressions
(three when the relay offers SIZE) cost the sender's loop more than the rest of its work for
a 50 KB digest. The relay gets the same bytes either way."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable

import aiosmtplib.protocol
import aiosmtplib.smtp
import pytest

from alerts.core.config import Settings
from alerts.delivery.smtp import SmtpTransport, on_the_wire
from alerts.delivery.transport import PermanentFailure
from tests.servers import SinkHandler


def aiosmtplibs(data: bytes) -> bytes:
    """What aiosmtplib's DATA writes for `data`."""
    normal = aiosmtplib.protocol.normalize_message_line_endings(data)
    return aiosmtplib.protocol.PERIOD_REGEX.sub(b"..", normal) + b".\r\n"


def test_the_wire_form_is_aiosmtplibs_for_crlf_lines_and_left_to_it_otherwise() -> None:
    lines = [b"a", b".", b"..", b" ", b"\r\n", b"\r\n", b"\r\n.", b"=2E"]
    pieces = [*lines, b"\n", b"\r"]
    chance = random.Random(19)
    found = Counter[str]()
    for n in range(5_000):
        data = b"".join(chance.choices(pieces if n % 2 else lines, k=chance.randint(1, 30)))
        wire = on_the_wire(data)
        crlf_only = data.endswith(b"\r\n") and \
            data.replace(b"\r\n", b"").count(b"\r") + data.replace(b"\r\n", b"").count(b"\n") == 0
        found["crlf" if crlf_only else "other"] += 1
        if crlf_only:
            assert wire == aiosmtplibs(data), data
        else:
            assert wire is None, data
    assert min(found.values()) > 500


@pytest.fixture
def regex_passes(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """aiosmtplib's passes over a message, counted."""
    counted = Counter[str]()
    real: Callable[[bytes], bytes] = aiosmtplib.protocol.normalize_message_line_endings

    def counting(message: bytes) -> bytes:
        counted["line ends"] += 1
        return real(message)

    monkeypatch.setattr(aiosmtplib.protocol, "normalize_message_line_endings", counting)
    monkeypatch.setattr(aiosmtplib.smtp, "normalize_message_line_endings", counting)
    return counted


def test_a_crlf_message_goes_out_without_aiosmtplibs_passes_and_arrives_the_same(
        smtp: tuple[SinkHandler, Settings], regex_passes: Counter[str]) -> None:
    sink, settings = smtp
    ours = [b"From: a@alerts.example.org\r\nSubject: dots\r\n\r\n.starts with a dot\r\n"
            b".\r\n..\r\nend\r\n",
            b"Subject: plain\r\n\r\nHello\r\n"]
    other = b"Subject: bare\n\nA bare LF\n.dot\n"

    async def send_all() -> None:
        async with SmtpTransport(settings.mail) as transport:
            for n, data in enumerate(ours):
                await transport.send("bounces@alerts.example.org", f"r{n}@home.example", data)
            assert not regex_passes, "aiosmtplib went over a message in CRLF lines"
            await transport.send("bounces@alerts.example.org", "r9@home.example", other)
            assert regex_passes  # a message that needs mending still gets it

    asyncio.run(send_all())
    assert [r.data for r in sink.received] == [*ours, other.replace(b"\n", b"\r\n")]
    assert [r.rcpt_tos for r in sink.received] == [["r0@home.example"], ["r1@home.example"],
                                                   ["r9@home.example"]]


def test_a_refused_recipient_is_answered_and_the_connection_carries_the_next_message(
        smtp: tuple[SinkHandler, Settings]) -> None:
    sink, settings = smtp
    sink.reject["gone@home.example"] = "550 5.1.1 User unknown"

    async def send_two() -> None:
        async with SmtpTransport(settings.mail) as transport:
            with pytest.raises(PermanentFailure) as refused:
                await transport.send("b@alerts.example.org", "gone@home.example",
                                     b"Subject: x\r\n\r\nx\r\n")
            assert refused.value.hard_bounce and "gone" not in refused.value.reason
            await transport.send("b@alerts.example.org", "here@home.example",
                                 b"Subject: y\r\n\r\ny\r\n")
            assert transport.opened == 1

    asyncio.run(send_two())
    assert [r.rcpt_tos for r in sink.received] == [["here@home.example"]]
