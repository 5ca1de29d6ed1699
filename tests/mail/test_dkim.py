"""DKIM: with `[dkim]` set, every message leaves signed (RSA-SHA256, relaxed/relaxed, and a
second Ed25519 signature when configured), after its copy's own links are filled in, and it
verifies against the TXT record `alerts dkim keygen` printed; a byte changed after signing
breaks it. Without a key nothing is signed."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import random
import subprocess
import sys
from collections.abc import Callable
from email.parser import BytesHeaderParser
from pathlib import Path

import dkim
import pytest
from dkim.canonicalization import CanonicalizationPolicy
from dkim.util import parse_tag_value
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import ConfigError, DkimSettings, Settings
from alerts.delivery.fanout import queue_staff_mail
from alerts.delivery.outbox import Delivery
from alerts.delivery.sender import deliver_due
from alerts.mail.dkim import Signer, dns_record, load_signer, new_key, write_key
from alerts.mail.messages import MessageKind
from alerts.mail.staff import staff_email
from subscriptions.base import utcnow
from tests.servers import SinkHandler

DOMAIN = "alerts.example.org"  # the demo's From domain
TEAM = "team-riv@police.example"

DnsFunc = Callable[..., bytes | None]


def alerts(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "alerts.cli", *args], capture_output=True,
                          text=True)


def keygen(key: Path, selector: str, *extra: str) -> DnsFunc:
    """Run `alerts dkim keygen`; a DNS lookup that answers with the records it printed."""
    done = alerts("dkim", "keygen", "--domain", DOMAIN, "--selector", selector,
                  "--out", str(key), *extra)
    assert done.returncode == 0, done.stderr
    lines = [line.strip() for line in done.stdout.splitlines()]
    names = [line.removeprefix("name:").strip() for line in lines if line.startswith("name:")]
    values = [line.removeprefix("value:").strip() for line in lines
              if line.startswith("value:")]
    records = dict(zip(names, values, strict=True))
    assert f"{selector}._domainkey.{DOMAIN}" in records

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        value = records.get(name.decode().rstrip("."))
        return None if value is None else value.encode()

    return lookup


def signatures(data: bytes) -> list[dict[bytes, bytes]]:
    headers = BytesHeaderParser().parsebytes(data)
    return [parse_tag_value(str(value).encode())
            for value in headers.get_all("DKIM-Signature") or []]


def signed_headers(signature: dict[bytes, bytes]) -> list[str]:
    return [name.strip().decode() for name in signature[b"h"].split(b":")]


def test_every_message_of_the_demo_verifies_against_the_record_keygen_printed(
        tmp_path: Path) -> None:
    key = tmp_path / "dkim.pem"
    dns = keygen(key, "demo2026")
    done = alerts("demo", "--dir", str(tmp_path / "demo"), "--dkim-key", str(key),
                  "--dkim-selector", "demo2026")
    assert done.returncode == 0, done.stderr
    assert f"each DKIM-signed for {DOMAIN} (s=demo2026)" in done.stdout
    files = sorted((tmp_path / "demo" / "outbox" / "new").iterdir())
    assert len(files) >= 10
    kinds = set()
    for file in files:
        data = file.read_bytes()
        [signature] = signatures(data)
        assert (signature[b"a"], signature[b"c"], signature[b"d"], signature[b"s"]) == \
            (b"rsa-sha256", b"relaxed/relaxed", DOMAIN.encode(), b"demo2026")
        assert dkim.verify(data, dnsfunc=dns), file.name
        names = signed_headers(signature)
        assert names.count("from") == 2  # From once more than the message has: over-signed
        headers = BytesHeaderParser().parsebytes(data)
        for name in ("to", "subject", "date", "message-id", "mime-version", "content-type"):
            assert name in names, (file.name, name)
        if headers["List-Unsubscribe"]:
            assert {"list-unsubscribe", "list-unsubscribe-post", "list-id", "reply-to"} <= \
                set(names), file.name
        kinds.add("forward" if headers["X-Alerts-Reply-Id"] else str(headers["Auto-Submitted"]))
    # Digests and alerts, acknowledgements, and the staff mail forwarding residents' replies.
    assert kinds == {"auto-generated", "auto-replied", "forward"}

    digest = next(f.read_bytes() for f in files
                  if b"List-Unsubscribe:" in f.read_bytes()
                  and b"Auto-Submitted: auto-generated" in f.read_bytes())
    head, body = digest.split(b"\r\n\r\n", 1)
    where = body.index(b"Riverside") if b"Riverside" in body else body.index(b"the")
    altered_body = head + b"\r\n\r\n" + body[:where] + b"X" + body[where + 1:]
    assert not dkim.verify(altered_body, dnsfunc=dns)
    subject = head.index(b"\r\nSubject: ") + len(b"\r\nSubject: ")
    altered_subject = head[:subject] + b"Re: " + head[subject:] + b"\r\n\r\n" + body
    assert not dkim.verify(altered_subject, dnsfunc=dns)
    # A From added on the way (above the original one) breaks it too.
    assert not dkim.verify(b"From: someone@else.example\r\n" + digest, dnsfunc=dns)
    assert dkim.verify(digest, dnsfunc=dns)


def a_forward(factory: sessionmaker[Session], settings: Settings) -> int:
    email = staff_email(settings.mail, to=TEAM, subject="Fwd: a reply from Riverside",
                        now=utcnow(), kind="forward")
    email.set_content("A resident wrote back.\n")
    with factory.begin() as session:
        return queue_staff_mail(session, MessageKind.FORWARD, email, to=TEAM)


def with_dkim(settings: Settings, **keys: str) -> Settings:
    return dataclasses.replace(settings, dkim=DkimSettings(domain=DOMAIN, **keys))


def test_staff_mail_is_signed_with_rsa_and_ed25519_as_it_leaves(
        factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings],
        tmp_path: Path) -> None:
    sink, settings = smtp
    key = tmp_path / "dkim.pem"
    dns = keygen(key, "rsa2026", "--ed25519", "ed2026")
    signing = with_dkim(settings, selector="rsa2026", private_key_file=str(key),
                        ed25519_selector="ed2026", ed25519_private_key_file=f"{key}.ed25519")
    a_forward(factory, signing)
    assert deliver_due(factory, signing).sent == 1
    [received] = sink.received
    rsa, ed = signatures(received.data)
    assert (rsa[b"a"], rsa[b"s"], ed[b"a"], ed[b"s"]) == \
        (b"rsa-sha256", b"rsa2026", b"ed25519-sha256", b"ed2026")
    checker = dkim.DKIM(received.data)
    assert checker.verify(0, dnsfunc=dns) and checker.verify(1, dnsfunc=dns)
    assert signed_headers(rsa) == signed_headers(ed)
    assert signed_headers(rsa).count("from") == 2


def test_a_key_replaced_in_place_signs_from_the_next_pass(
        factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings],
        tmp_path: Path) -> None:
    sink, settings = smtp
    key = tmp_path / "dkim.pem"
    old = keygen(key, "s2026")
    signing = with_dkim(settings, selector="s2026", private_key_file=str(key))
    a_forward(factory, signing)
    assert deliver_due(factory, signing).sent == 1
    key.unlink()  # the operator rotates the key under the same name and selector
    new = keygen(key, "s2026")
    a_forward(factory, signing)
    assert deliver_due(factory, signing).sent == 1
    first, second = (received.data for received in sink.received)
    assert dkim.verify(first, dnsfunc=old) and not dkim.verify(first, dnsfunc=new)
    assert dkim.verify(second, dnsfunc=new) and not dkim.verify(second, dnsfunc=old)


def test_nothing_is_signed_while_a_dkim_key_is_unset(
        factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]) -> None:
    sink, settings = smtp
    a_forward(factory, with_dkim(settings, selector="rsa2026"))  # no private_key_file
    assert deliver_due(factory, with_dkim(settings, selector="rsa2026")).sent == 1
    [received] = sink.received
    assert b"DKIM-Signature" not in received.data


@pytest.mark.parametrize("content", [None, b"not a key\n", b"-----BEGIN PRIVATE KEY-----\n"])
def test_an_unusable_key_stops_the_pass_before_anything_is_sent(
        factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings], tmp_path: Path,
        content: bytes | None) -> None:
    sink, settings = smtp
    key = tmp_path / "dkim.pem"
    if content is not None:
        key.write_bytes(content)
    signing = with_dkim(settings, selector="rsa2026", private_key_file=str(key))
    a_forward(factory, signing)
    with pytest.raises(ConfigError, match=r"dkim\.private_key_file"):
        deliver_due(factory, signing)
    assert sink.received == []
    with factory() as session:
        assert session.scalars(select(Delivery.status)).all() == ["queued"]


def test_copies_that_differ_in_a_few_lines_each_carry_dkimpys_own_body_hash(
        tmp_path: Path) -> None:
    # Signing remembers canonical body lines across copies (alerts.mail.dkim): every copy,
    # with whatever whitespace, line ends or trailing empty lines, must still get the body
    # hash dkimpy computes itself, and verify.
    key = new_key()
    write_key(key, tmp_path / "dkim.pem")
    record = dns_record(key).encode()

    def dns(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name.decode().rstrip(".") == f"s1._domainkey.{DOMAIN}" else None

    signer = load_signer(DkimSettings(domain=DOMAIN, selector="s1",
                                      private_key_file=str(tmp_path / "dkim.pem")))
    assert signer is not None
    shared = b"<p>Dear  resident,\t the\t\tteam </p> \r\n=\r\n  indented line\r\n"
    bodies = [shared + f"https://alerts.example.org/unsubscribe/{n}  \r\n".encode() + shared
              for n in range(3)]
    bodies += [b"", b"\r\n", b"\r\n\r\n", b"one line, no end  ", b"end \t\r\n\r\n \r\n",
               b"bare\nline ends\n\nhere \n", b" \t\r\n\tlead", shared * 3 + b"\r\n\r\n"]
    pieces = [b"a", b"=", b" ", b"  ", b"\t", b"\r\n", b"\r\n", b"\r", b"\n"]
    chance = random.Random(19)
    bodies += [b"".join(chance.choices(pieces, k=chance.randint(1, 40))) for _ in range(200)]
    for body in bodies:
        message = (b"From: Team <team@alerts.example.org>\r\nTo: someone@home.example\r\n"
                   b"Subject: a  digest\r\n\r\n" + body)
        signed = signer.sign(message)
        [signature] = signatures(signed)
        _, parsed = dkim.rfc822_parse(message)
        relaxed = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
        expected = base64.b64encode(hashlib.sha256(relaxed.canonicalize_body(parsed)).digest())
        assert signature[b"bh"] == expected, body
        assert dkim.verify(signed, dnsfunc=dns), body


def test_signing_happens_in_a_process_of_its_own_so_sending_goes_on_meanwhile(
        factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sink, settings = smtp
    key = tmp_path / "dkim.pem"
    dns = keygen(key, "s2026")
    signing = with_dkim(settings, selector="s2026", private_key_file=str(key))

    def not_here(self: Signer, data: bytes) -> bytes:
        raise AssertionError("signed in the sender's own process")

    # Neither the loop's thread nor any other of this process signs (its GIL stays free
    # for building copies and talking SMTP): the signing process has its own Signer.
    monkeypatch.setattr(Signer, "sign", not_here)
    monkeypatch.setattr(Signer, "signatures", not_here, raising=False)
    a_forward(factory, signing)
    a_forward(factory, signing)
    assert deliver_due(factory, signing).sent == 2
    assert len(sink.received) == 2
    assert all(dkim.verify(received.data, dnsfunc=dns) for received in sink.received)


def test_the_copy_process_signs_many_at_once_and_is_started_again_when_it_dies(
        tmp_path: Path) -> None:
    import asyncio
    import os
    import signal

    from alerts.mail.copy_process import copy_process

    key = tmp_path / "dkim.pem"
    dns = keygen(key, "s1")
    dkim_settings = DkimSettings(domain=DOMAIN, selector="s1", private_key_file=str(key))
    settings = Settings(dkim=dkim_settings)
    signer = load_signer(dkim_settings)
    assert signer is not None
    process = copy_process(settings, signer)
    assert copy_process(settings, signer) is process  # kept for the next pass
    messages = [(f"From: Team <team@{DOMAIN}>\r\nTo: r{n}@home.example\r\nSubject: news\r\n"
                 f"\r\nHello {n}\r\n").encode() for n in range(30)]

    async def sign_all() -> list[bytes]:
        return list(await asyncio.gather(*(process.sign(data) for data in messages)))

    signed = asyncio.run(sign_all())
    assert all(data.endswith(message) for data, message in zip(signed, messages, strict=True))
    assert all(dkim.verify(data, dnsfunc=dns) for data in signed)
    dead = process.pid
    assert dead is not None
    os.kill(dead, signal.SIGKILL)  # the copy process dies
    again = asyncio.run(sign_all())  # another pass, another loop
    assert all(dkim.verify(data, dnsfunc=dns) for data in again)
    assert process.pid not in (None, dead)  # a new one signed them


SENDER_THAT_SIGNS = """
import asyncio, sys, time
from alerts.core.config import DkimSettings, Settings
from alerts.mail.copy_process import copy_process
from alerts.mail.dkim import load_signer

if __name__ == "__main__":
    dkim = DkimSettings(domain=sys.argv[1], selector="s1", private_key_file=sys.argv[2])
    process = copy_process(Settings(dkim=dkim), load_signer(dkim))
    asyncio.run(process.sign(b"From: a@" + sys.argv[1].encode() + b"\\r\\n\\r\\nHi\\r\\n"))
    print(process.pid, flush=True)
    time.sleep(600)
"""


def test_a_sender_killed_leaves_no_copy_process_behind(tmp_path: Path) -> None:
    import os
    import signal
    import time

    key = tmp_path / "dkim.pem"
    keygen(key, "s1")
    script = tmp_path / "sender.py"
    script.write_text(SENDER_THAT_SIGNS)
    sender = subprocess.Popen([sys.executable, str(script), DOMAIN, str(key)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert sender.stdout is not None
        (child,) = map(int, sender.stdout.readline().split())
        os.kill(sender.pid, signal.SIGKILL)  # kill -9: nothing of it runs to tell the child
        sender.wait()

        def running() -> bool:  # a zombie has ended: only its parent has not read its status
            with contextlib.suppress(FileNotFoundError):
                return Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0] \
                    != "Z"
            return False

        deadline = time.monotonic() + 30
        while running() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not running(), "the copy process outlived its sender"
    finally:
        sender.kill()
        sender.wait()
