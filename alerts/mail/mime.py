"""Building one outgoing email: a rendered message plus one recipient, as bytes for SMTP.

Pure (no I/O). Owns the headers a mailbox provider expects (List-Id, List-Unsubscribe with
one-click, Auto-Submitted, a per-delivery Reply-To and envelope sender carrying signed
tokens, and the delivery's reference for the provider webhooks: `reference_headers`) and
the swap of each recipient's own signed links into the rendered bodies.
Nothing is added to the bodies: no tracking pixels, no rewritten links.
"""

from __future__ import annotations

import binascii
import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.generator import BytesGenerator
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import EmailPolicy, Policy
from email.utils import format_datetime, formataddr
from io import BytesIO
from typing import Any

from alerts.core.config import Settings, WebhooksSettings
from alerts.mail.addresses import (
    bounce_address,
    copy_message_id,
    reply_address,
    unsubscribe_address,
    ward_list_id,
)
from alerts.mail.marks import (
    PREFERENCES_MARK,
    UNSUBSCRIBE_MARK,
    USEFUL_MARK,
    fill_links,
    link_for_mark,
)
from alerts.mail.messages import ANSWER_KINDS, WRITTEN_KINDS, MessageKind
from alerts.mail.vote_links import VoteLinks
from subscriptions.links import Purpose, sign_reference

CALENDAR_FILENAME = "contact-sessions.ics"


class OnceHeaderRegistry(HeaderRegistry):
    """The email package's header registry, making each header name's class once: the
    standard one makes a new class for every header parsed or set (`type(...)` each time),
    a good part of what reading and writing a message costs."""

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}

    def map_to_type(self, name: str, cls: type[BaseHeader]) -> None:
        super().map_to_type(name, cls)
        self._classes.clear()

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._classes.get(key)
        if made is None:
            made = self._classes[key] = super().__getitem__(name)
        return made


class OncePolicy(EmailPolicy):
    """`email.policy.default`, parsing each header text once.

    With the default policy every `message.get(name)` parses the header's text again
    (classifying an inbound message asks for its Content-Type dozens of times), and so does
    every header set on a message being built: most of what reading and writing mail costs.
    A parsed header is a pure function of its name and text and is never changed in place,
    so one parse serves every ask, in this message and the next. Texts longer than
    `_ONCE_CHARS` are parsed each time, and at most `_ONCE_HEADERS` are kept.

    Writing a parsed header (folding it to the line length) is a function of the header and
    of the policy's line length, line end and utf8 alone, so a header written again (the
    same From, To, Subject, Content-Type... in one message after another) is folded once
    too (`fold_binary`, what BytesGenerator asks)."""

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if hasattr(value, "name"):
            return value
        return self._once(name, value, super().header_fetch_parse)

    def header_store_parse(self, name: str, value: Any) -> tuple[str, Any]:
        if type(value) is not str or len(value.splitlines()) > 1:
            return super().header_store_parse(name, value)
        return self._once(name, value, super().header_store_parse)  # type: ignore[no-any-return]

    def fold_binary(self, name: str, value: Any) -> bytes:
        if not hasattr(value, "name") or len(value) > _ONCE_CHARS:
            return super().fold_binary(name, value)  # a source text, or a long one
        key = (id(value), self.max_line_length, self.linesep, self.utf8)
        kept = _FOLDED.get(key)
        if kept is not None and kept[0] is value:  # held in the entry: its id is its own
            return kept[1]
        folded = super().fold_binary(name, value)
        if len(_FOLDED) >= _ONCE_HEADERS:
            _FOLDED.clear()
        _FOLDED[key] = (value, folded)
        return folded

    def _once(self, name: str, value: str, parse: Callable[[str, str], Any]) -> Any:
        """`parse(name, value)`, remembered."""
        if len(value) > _ONCE_CHARS:
            return parse(name, value)
        key = (parse.__name__, id(self.header_factory), name, value)
        parsed = _ONCE.get(key)
        if parsed is None:
            if len(_ONCE) >= _ONCE_HEADERS:
                _ONCE.clear()
            parsed = _ONCE[key] = parse(name, value)
        return parsed


_ONCE_CHARS = 2000
_ONCE_HEADERS = 4096
_ONCE: dict[tuple[str, int, str, str], Any] = {}
_FOLDED: dict[tuple[int, int | None, str, bool], tuple[Any, bytes]] = {}

# `policy.default` and `policy.SMTP`, each header parsed once: what intake reads mail with
# and what staff mail is written with.
READING = OncePolicy(header_factory=OnceHeaderRegistry())
SMTP = READING.clone(linesep="\r\n")


def attach_message(email: EmailMessage, raw: bytes, *, filename: str) -> None:
    """Attach the email `raw` to `email` as a message/rfc822 attachment, its bytes exactly
    as parsing it with `READING` and writing it with `email`'s policy gives.

    A plain single-part message (most of what residents write) is written from its own
    bytes, without parsing it into a tree and writing the tree back: `_as_written`. Any
    other is parsed, and written once here to be sure the email package can: it cannot
    refold some long headers (an encoded word cut inside a character next to other 8-bit
    text raises UnicodeEncodeError, as Mail.Ru's bounces have). Such a message is attached
    with its headers as they came, not refolded (`_as_they_came`); one that still cannot
    be written, as its bytes (application/octet-stream). The forward is always built."""
    written = _as_written(raw, SMTP) if email.policy == SMTP else None
    if written is None:
        parsed = BytesParser(policy=READING).parsebytes(raw)
        assert isinstance(parsed, EmailMessage)  # what READING's message factory makes
        written = _write(parsed, email.policy)
        if written is None:
            parsed = _as_they_came(parsed)
            if _write(parsed, email.policy) is None:
                email.add_attachment(raw, maintype="application", subtype="octet-stream",
                                     disposition="attachment", filename=filename)
                return
        if written is None or not written.isascii():
            email.add_attachment(parsed, disposition="attachment", filename=filename)
            return
    # The email package's own way of holding an attached message it has not parsed
    # (HeaderParser does the same): its generator writes such a payload as it is.
    email.add_attachment(EmailMessage(policy=READING), disposition="attachment",
                         filename=filename)
    *_, part = email.iter_attachments()
    part.set_payload(written.decode("ascii"))


def _write(message: EmailMessage, policy_: Policy) -> bytes | None:
    """`message` as the generator writes an attached message with `policy_`; None if the
    email package fails to."""
    out = BytesIO()
    try:
        BytesGenerator(out, mangle_from_=False, policy=policy_).flatten(
            message, linesep=policy_.linesep)
    except Exception:  # whatever the email package fails on, the caller keeps the bytes
        return None
    return out.getvalue()


class _AsItCame(str):
    """A header's text as it came, written as it is: the generator folds a value that has
    a `name` by asking it to (`fold`), and never refolds it."""

    name: str

    def fold(self, *, policy: Policy) -> str:
        return f"{self.name}: {policy.linesep.join(self.splitlines())}{policy.linesep}"


def _as_they_came(message: EmailMessage) -> EmailMessage:
    """`message` (parsed), each header of each of its parts to be written as it came."""
    for part in message.walk():
        headers = list(part.raw_items())
        for name in {name for name, _ in headers}:
            del part[name]
        for name, value in headers:
            kept = _AsItCame(value)
            kept.name = name
            part.set_raw(name, kept)
    return message


_LINE_END = re.compile(rb"\r\n|\r|\n")  # as the email package's parser splits lines
_HEADER_LINE = re.compile(rb"[\x21-\x39\x3b-\x7e]+:|[ \t]")
# What str.splitlines() also splits on, which the generator's header folding uses.
_OTHER_LINE_BREAKS = re.compile(rb"[\x0b\x0c\x1c\x1d\x1e]")


def _as_written(raw: bytes, policy_: EmailPolicy) -> bytes | None:
    """What parsing `raw` with READING and writing it with `policy_` (linesep CRLF) gives,
    worked out from the bytes, or None unless `raw` is simple enough for that to be sure:
    ASCII (the generator writes an unparsed attached message as ASCII only), a head of
    well-formed header lines none of which the generator would refold, and one text part
    (no Content-Type, or one text/*). The generator writes each header as
    'Name: value' (the blanks after the colon dropped), lines end CRLF, the body as it is."""
    if policy_.linesep != "\r\n" or policy_.refold_source != "long" \
            or policy_.cte_type != "8bit" or raw.startswith(b"From ") or not raw.isascii():
        return None
    text = _LINE_END.sub(b"\r\n", raw)
    head, separator, body = text.partition(b"\r\n\r\n")
    if not separator or not head or _OTHER_LINE_BREAKS.search(head):
        return None
    limit = policy_.max_line_length or 0
    headers: list[list[bytes]] = []
    for line in head.split(b"\r\n"):
        if _HEADER_LINE.match(line) is None:
            return None
        if line[:1] in (b" ", b"\t"):
            if not headers or len(line) > limit:
                return None
            headers[-1].append(line)
            continue
        name, _, value = line.partition(b":")
        first = name + b": " + value.lstrip(b" \t")
        if len(first) > limit:
            return None
        headers.append([first])
    types = [lines for lines in headers if lines[0][:14].lower() == b"content-type: "]
    if len(types) > 1 or (types and not b"".join(types[0])[14:].strip().lower()
                          .startswith(b"text/")):
        return None
    return b"\r\n".join(b"\r\n".join(lines) for lines in headers) + b"\r\n\r\n" + body


@dataclass(frozen=True)
class Outgoing:
    """Everything one email needs, read from the outbox row and what it points to."""

    delivery_id: int
    message_id: int
    kind: str
    subject: str
    html: str
    text: str
    calendar: bytes | None
    ward_code: str
    ward_name: str
    recipient_email: str
    recipient_name: str
    subscription_id: int
    created_at: datetime
    # The rows' nonces, which every signed link and address of the email is bound to.
    delivery_nonce: str
    subscription_nonce: str
    message_nonce: str
    # An answer to a resident's email: the Message-IDs it replies to, theirs last (the
    # message's `thread_references`), for In-Reply-To and References.
    references: str | None = None


@dataclass(frozen=True)
class Links:
    """One recipient's signed links and addresses."""

    unsubscribe_token: str
    reply_token: str
    # The bounces+ token, also the reference provider webhooks echo back (X-Alerts-Ref).
    bounce_token: str
    unsubscribe_url: str
    preferences_url: str
    reply_to: str
    envelope_from: str
    # "Was this useful?" links: signed per item, carrying no trace of the recipient.
    votes: VoteLinks


def links_for(outgoing: Outgoing, settings: Settings) -> Links:
    secret = settings.web.secret_key
    base = settings.web.base_url.rstrip("/")
    subscription, subscription_nonce = outgoing.subscription_id, outgoing.subscription_nonce
    delivery, delivery_nonce = outgoing.delivery_id, outgoing.delivery_nonce
    unsubscribe = sign_reference(secret, Purpose.UNSUBSCRIBE, subscription, subscription_nonce)
    preferences = sign_reference(secret, Purpose.PREFERENCES, subscription, subscription_nonce)
    reply = sign_reference(secret, Purpose.REPLY, delivery, delivery_nonce)
    bounce = sign_reference(secret, Purpose.BOUNCE, delivery, delivery_nonce)
    return Links(
        unsubscribe_token=unsubscribe,
        reply_token=reply,
        bounce_token=bounce,
        unsubscribe_url=f"{base}/unsubscribe/{unsubscribe}",
        preferences_url=f"{base}/preferences/{preferences}",
        reply_to=reply_address(settings.mail, reply),
        envelope_from=bounce_address(settings.mail, bounce),
        votes=VoteLinks(secret, base, outgoing.message_id, outgoing.message_nonce),
    )


def personalise(body: str, links: Links, *, as_html: bool) -> str:
    """Put the recipient's own links where the renderer left the marks."""
    unsubscribe, preferences = links.unsubscribe_url, links.preferences_url
    if as_html:
        unsubscribe = html.escape(unsubscribe, quote=True)
        preferences = html.escape(preferences, quote=True)

    def vote(item_ref: int, useful: bool) -> str:
        url = links.votes.url(item_ref, useful)
        return html.escape(url, quote=True) if as_html else url

    return fill_links(body, unsubscribe, preferences, vote)


def _check_header(name: str, value: str) -> str:
    # A line break in a header value would let text from a feed or a form add headers.
    if "\r" in value or "\n" in value:
        raise ValueError(f"the {name} header would contain a line break")
    return value


def _to(name: str, address: str) -> str | Address:
    if address.isascii():
        return formataddr((name, address), charset="utf-8")
    # Address(addr_spec=...) rejects a non-ASCII local part; given in pieces it is kept.
    username, _, domain = address.rpartition("@")
    return Address(display_name=name, username=username, domain=domain)


@dataclass(frozen=True)
class PreparedMessage:
    """A message encoded once for all its recipients.

    `skeleton` is the whole MIME message (the headers every copy shares, the structure,
    the calendar part) with a placeholder where each text part's encoded body goes.
    `text` and `html` are those bodies already quoted-printable encoded, cut at the link
    marks (kept as str pieces), so that a copy only joins bytes and its own links.
    """

    message_id: int
    skeleton: bytes
    text: tuple[bytes | str, ...]
    html: tuple[bytes | str, ...]


_TEXT_SLOT = b"ALERTSxTEXTxBODYxSLOT"
_HTML_SLOT = b"ALERTSxHTMLxBODYxSLOT"
_FEEDBACK_UNSAFE = re.compile(r"[^a-z0-9._-]+")


def feedback_id(from_address: str, *identifiers: str) -> str:
    """Gmail's feedback-loop header (`Feedback-ID: a:b:c:SenderId`): up to three identifiers
    of a mail stream (a ward, a kind of email, a message: never a person), then the sender's
    own 5 to 15 characters, made from the From address's domain. Complaint rates come back
    per identifier in Postmaster Tools."""
    domain = _FEEDBACK_UNSAFE.sub("", from_address.rpartition("@")[2].lower())
    sender = (domain if len(domain) >= 5 else f"{domain}alerts")[:15]
    fields = [_FEEDBACK_UNSAFE.sub("-", field.lower()).strip("-") for field in identifiers[:3]]
    return ":".join([*fields, sender])


def _shared_headers(outgoing: Outgoing, settings: Settings) -> dict[str, str | Address]:
    mail = settings.mail
    list_id = _check_header("List-Id",
                            f"{outgoing.ward_name} <{ward_list_id(mail, outgoing.ward_code)}>")
    headers: dict[str, str | Address] = {
        # Named for the ward's team and the force; the email package quotes the comma and
        # encodes a name outside ASCII (RFC 2047, or UTF-8 under SMTPUTF8). The address,
        # which DMARC aligns, stays the same.
        "From": Address(display_name=_check_header("From", settings.force.sender(
                            outgoing.ward_name)),
                        addr_spec=_check_header("From", mail.from_address)),
        "Subject": _check_header("Subject", outgoing.subject),
        "List-Id": list_id,
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "Auto-Submitted": "auto-replied" if outgoing.kind in ANSWER_KINDS
        else "no" if outgoing.kind in WRITTEN_KINDS else "auto-generated",
        "X-Alerts-Ward": _check_header("X-Alerts-Ward", outgoing.ward_code),
        "Feedback-ID": feedback_id(mail.from_address, outgoing.ward_code, outgoing.kind,
                                   str(outgoing.message_id)),
    }
    if outgoing.kind == MessageKind.DIGEST:
        headers["Precedence"] = "bulk"
    if outgoing.references:
        references = _check_header("References", outgoing.references)
        headers["In-Reply-To"] = references.split()[-1]
        headers["References"] = references
    return headers


def _own_headers(outgoing: Outgoing, links: Links, settings: Settings,
                 now: datetime) -> dict[str, str | Address]:
    mail = settings.mail
    return {
        "To": _to(_check_header("To", outgoing.recipient_name),
                  _check_header("To", outgoing.recipient_email)),
        "Date": format_datetime(now),
        "Message-ID": copy_message_id(mail, outgoing.message_id, links.reply_token),
        "List-Unsubscribe": _check_header(
            "List-Unsubscribe",
            f"<{links.unsubscribe_url}>, "
            f"<mailto:{unsubscribe_address(mail, links.unsubscribe_token)}>",
        ),
        "Reply-To": _check_header("Reply-To", links.reply_to),
        **reference_headers(links.bounce_token, settings.webhooks),
    }


# The delivery's reference as the provider webhooks read it back (alerts.inbound.providers).
REF_HEADER = "X-Alerts-Ref"
REF_NAME = "alerts_ref"  # the SES tag, SendGrid unique arg and Mailgun variable
REF_METADATA = "alerts-ref"  # Postmark's metadata key (X-PM-Metadata-alerts-ref)


def reference_headers(token: str, webhooks: WebhooksSettings) -> dict[str, str]:
    """The delivery's signed reference (its bounces+ token), for the provider webhooks: in
    `X-Alerts-Ref`, and in the header each configured provider echoes back in its events
    (SES message tags, SendGrid unique args, Postmark metadata, Mailgun variables)."""
    headers = {REF_HEADER: token}
    if webhooks.ses_topic_arns:
        headers["X-SES-MESSAGE-TAGS"] = f"{REF_NAME}={token}"
    if webhooks.sendgrid_public_key:
        headers["X-SMTPAPI"] = json.dumps({"unique_args": {REF_NAME: token}})
    if webhooks.postmark_username:
        headers[f"X-PM-Metadata-{REF_METADATA}"] = token
    if webhooks.mailgun_signing_key:
        headers["X-Mailgun-Variables"] = json.dumps({REF_NAME: token})
    return headers


def _assemble(message: EmailMessage, text: str, html: str, calendar: bytes | None) -> None:
    # Quoted-printable keeps the body 7-bit, so no relay has to support 8BITMIME.
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    if calendar:
        message.add_alternative(
            calendar,
            maintype="text",
            subtype="calendar",
            params={"method": "PUBLISH", "charset": "utf-8"},
            disposition="attachment",
            filename=CALENDAR_FILENAME,
        )
    for part in message.iter_parts():
        # add_alternative repeats MIME-Version on each part; it belongs at the top only.
        del part["MIME-Version"]


def prepare_message(outgoing: Outgoing, settings: Settings) -> PreparedMessage:
    """Encode the parts of `outgoing` that every recipient of its message shares."""
    message = EmailMessage(policy=policy.SMTP)
    for name, value in _shared_headers(outgoing, settings).items():
        message[name] = value
    _assemble(message, _TEXT_SLOT.decode(), _HTML_SLOT.decode(), outgoing.calendar)
    return PreparedMessage(outgoing.message_id, message.as_bytes(),
                           _encode_around_marks(outgoing.text),
                           _encode_around_marks(outgoing.html))


_MARKS = re.compile(
    f"({re.escape(UNSUBSCRIBE_MARK)}|{re.escape(PREFERENCES_MARK)}|{USEFUL_MARK})")
_SOFT_BREAK = b"=\r\n"
_MAX_LINE = 76  # RFC 2045: encoded lines, the soft-break "=" included


def _quoted_printable(text: str) -> bytes:
    encoded = binascii.b2a_qp(text.replace("\r\n", "\n").encode("utf-8"), istext=True)
    return encoded.replace(b"\n", b"\r\n")


def _end_softly(encoded: bytes) -> bytes:
    """End an encoded piece with a soft line break, so that what follows starts a line of
    its own without a line break in the decoded text; the last line stays within 76."""
    if encoded.endswith(b"\r\n"):
        return encoded
    head, _, last = encoded.rpartition(b"\r\n")
    if len(last) + 1 > _MAX_LINE:
        cut = _MAX_LINE - 1
        # Never split an "=XX" escape.
        if last[cut - 1 : cut] == b"=":
            cut -= 1
        elif last[cut - 2 : cut - 1] == b"=":
            cut -= 2
        last = last[:cut] + _SOFT_BREAK + last[cut:]
    return (head + b"\r\n" if head or encoded.startswith(b"\r\n") else b"") + last + \
        _SOFT_BREAK


def _encode_around_marks(body: str) -> tuple[bytes | str, ...]:
    """The body quoted-printable encoded once, with each link mark left as a str piece at
    the start of a line of its own (soft breaks around it decode to nothing)."""
    pieces: list[bytes | str] = []
    for part in _MARKS.split(body.replace("\r\n", "\n")):
        if not part:
            continue
        if _MARKS.fullmatch(part):
            if pieces and isinstance(pieces[-1], bytes):
                pieces[-1] = _end_softly(pieces[-1])
            pieces.append(part)
        else:
            pieces.append(_quoted_printable(part))
    return tuple(pieces)


def _fill(pieces: tuple[bytes | str, ...], links: Links, encoded: dict[tuple[str, bool], bytes],
          *, as_html: bool) -> bytes:
    """`pieces` with each mark's link, quoted-printable encoded. `encoded` keeps a copy's
    links as encoded once: the text and HTML parts carry the same links (a digest's 26 vote
    links and the resident's two), and escaped for HTML a URL is almost always the same."""
    out = bytearray()
    last = len(pieces) - 1
    for at, piece in enumerate(pieces):
        if isinstance(piece, bytes):
            out += piece
            continue
        link = link_for_mark(piece, links.unsubscribe_url, links.preferences_url,
                             links.votes.url)
        if as_html:
            link = html.escape(link, quote=True)
        key = link, at < last
        done = encoded.get(key)
        if done is None:
            done = _quoted_printable(link)
            done = encoded[key] = _end_softly(done) if at < last else done
        out += done
    # The skeleton already ends the slot's line, as the email package ends every part.
    return bytes(out).removesuffix(b"\r\n")


def _header_lines(headers: dict[str, str | Address]) -> bytes:
    """The recipient's own header lines, written directly: these values are ASCII (a name
    outside ASCII is RFC 2047-encoded by formataddr), so the email package's general
    header parser, the slow part of building a copy, is not needed for them."""
    lines = []
    for name, value in headers.items():
        text = str(value)
        if name == "List-Unsubscribe":
            text = text.replace(">, <", ">,\r\n <")  # fold between its two addresses
        lines.append(f"{name}: {text}\r\n")
    return "".join(lines).encode("ascii")


def personalise_email(
    prepared: PreparedMessage, outgoing: Outgoing, settings: Settings, *, now: datetime
) -> tuple[str, bytes]:
    """One recipient's copy of a prepared message: (envelope sender, bytes)."""
    if now.tzinfo is None:
        raise ValueError("the Date header needs an aware datetime")
    if not outgoing.recipient_email.isascii():
        return build_email_slowly(outgoing, settings, now=now)
    links = links_for(outgoing, settings)
    own = _header_lines(_own_headers(outgoing, links, settings, now))
    encoded: dict[tuple[str, bool], bytes] = {}
    text = _fill(prepared.text, links, encoded, as_html=False)
    body = _fill(prepared.html, links, encoded, as_html=True)
    data = own + prepared.skeleton.replace(_TEXT_SLOT, text, 1).replace(_HTML_SLOT, body, 1)
    return links.envelope_from, data


def build_email(outgoing: Outgoing, settings: Settings, *, now: datetime) -> tuple[str, bytes]:
    """Return (envelope sender, message bytes with CRLF line ends) for one delivery.

    Raises ValueError when a header value holds CR or LF; the message names the header
    but not the value, which may be an address.
    """
    return personalise_email(prepare_message(outgoing, settings), outgoing, settings, now=now)


def build_email_slowly(outgoing: Outgoing, settings: Settings, *,
                       now: datetime) -> tuple[str, bytes]:
    """The whole email through the email package, for what the fast path cannot carry: an
    address outside ASCII travels only as SMTPUTF8, with UTF-8 headers."""
    if now.tzinfo is None:
        raise ValueError("the Date header needs an aware datetime")
    links = links_for(outgoing, settings)
    international = not outgoing.recipient_email.isascii()
    message = EmailMessage(policy=policy.SMTPUTF8 if international else policy.SMTP)
    for name, value in {**_shared_headers(outgoing, settings),
                        **_own_headers(outgoing, links, settings, now)}.items():
        message[name] = value
    _assemble(message, personalise(outgoing.text, links, as_html=False),
              personalise(outgoing.html, links, as_html=True), outgoing.calendar)
    return links.envelope_from, message.as_bytes()
