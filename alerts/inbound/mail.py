"""One inbound email as the classifier sees it: the parsed message and its envelope.

Parsing never raises for odd but readable mail (the email package repairs what it can and
records defects); it raises `MalformedMail` only when there is nothing to work with, so the
caller can keep the bytes in the dead-letter folder with the reason.

A message is read (parsed, classified, its text taken) from at most its first `READ_BYTES`,
cut at a line end: what a person writes and what a bounce reports come first, and a 24 MB
photo after them would otherwise cost seconds of CPU in every step. The whole bytes are kept
(`raw`: stored with a reply, written to a held copy); `truncated` says when some went unread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses

from alerts.core.errors import AlertsError
from alerts.mail.mime import READING

MAX_MESSAGE_BYTES = 25 * 1024 * 1024
# 256 KB: some 40,000 words of text even base64-encoded, and a hundred times any bounce
# report; reading it costs a fraction of a second (bench/inbound_process.py --huge).
READ_BYTES = 256 * 1024


class MalformedMail(AlertsError, ValueError):
    """The bytes are not an email that can be classified; `reason` says why (no addresses)."""

    http_status = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class InboundMail:
    raw: bytes  # the whole message
    message: EmailMessage  # parsed from `head`
    # MAIL FROM as the MTA saw it ("" is the null sender bounces use; None = not known).
    envelope_sender: str | None
    # RCPT TO addresses, lower-cased; from the headers when mail came without an envelope.
    recipients: tuple[str, ...]
    # What was read: all of `raw`, or its first `READ_BYTES` up to the last line end in them.
    head: bytes

    @property
    def truncated(self) -> bool:
        return len(self.head) < len(self.raw)

    @property
    def sender(self) -> str:
        """The author's address (From, else the envelope sender), lower-cased, or ""."""
        found = addresses(self.message, "From")
        if found:
            return found[0]
        return (self.envelope_sender or "").lower()

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", "") or "")


# A header that is one address and nothing else (a machine's To, a signed reply+ address):
# getaddresses would give it back as it is, so it is not parsed again.
_BARE = re.compile(r"[\w!#$%&'*+/=?^`{|}~-]+(?:\.[\w!#$%&'*+/=?^`{|}~-]+)*"
                   r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*", re.ASCII)


def addresses(message: EmailMessage, *names: str) -> list[str]:
    """The addresses in the named headers, lower-cased, in order, without duplicates."""
    values: list[str] = []
    for name in names:
        for value in message.get_all(name, []) or []:
            values.append(str(value))
    found: list[str] = []
    bare = all(_BARE.fullmatch(value) for value in values)
    for _display, address in ([("", v) for v in values] if bare else getaddresses(values)):
        address = address.strip().lower()
        if "@" in address and address not in found:
            found.append(address)
    return found


# Headers an MTA or mailbox adds naming the envelope recipient, most specific first.
_RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "To", "Cc")


def parse_mail(raw: bytes, *, envelope_sender: str | None = None,
               envelope_recipients: tuple[str, ...] = ()) -> InboundMail:
    """Read raw bytes into an `InboundMail`, or raise `MalformedMail` saying why."""
    if not raw.strip():
        raise MalformedMail("the message is empty")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MalformedMail(f"the message is larger than {MAX_MESSAGE_BYTES // 1024 // 1024} MB")
    # An mbox "From " line (as some tools save mail) is not a header.
    if raw.startswith(b"From ") and b"\n" in raw:
        first, _, rest = raw.partition(b"\n")
        if b":" not in first.split(b" ", 2)[1]:
            raw = rest
    head = read_prefix(raw)
    try:
        message = BytesParser(policy=READING).parsebytes(head)
    except Exception as error:  # the parser is lenient; anything it raises is fatal
        raise MalformedMail(f"the message cannot be parsed ({type(error).__name__})") from None
    assert isinstance(message, EmailMessage)
    if not message.keys():
        raise MalformedMail("the message has no headers")
    if message.get("From") is None and envelope_sender is None and \
            message.get("Return-Path") is None:
        raise MalformedMail("the message has no From header and no envelope sender")
    if envelope_sender is None and message.get("Return-Path") is not None:
        path = str(message["Return-Path"]).strip().strip("<>").strip()
        envelope_sender = path.lower()
    recipients = tuple(r.strip().lower() for r in envelope_recipients if r.strip())
    if not recipients:
        for name in _RECIPIENT_HEADERS:
            found = addresses(message, name)
            if found:
                recipients = tuple(found)
                break
    return InboundMail(raw=raw, message=message, envelope_sender=envelope_sender,
                       recipients=recipients, head=head)


def read_prefix(raw: bytes) -> bytes:
    """The part of `raw` intake reads: all of it, or its first `READ_BYTES` to a line end."""
    if len(raw) <= READ_BYTES:
        return raw
    end = raw.rfind(b"\n", 0, READ_BYTES)
    return raw[:end + 1] if end > 0 else raw[:READ_BYTES]
