"""Forwarding residents' replies to their ward team's address, with the context an officer
needs: which message it answers, the ward, the resident's name and address, the signals
that made it look like a crime report, the new text first and the original attached.

Intake queues each reply's forward (`queue_forward`) in the same transaction as the reply:
a message of kind "forward" in the outbox, built whole, bound to the reply (erasing the
reply erases it) and sent to the team's address by the one sender, with its leases, retries
and pacing, possible crime reports first. A plain forward (most are) is written as bytes
directly, the same bytes the email package would build (`written_forward`).
`forward_state` reads how a reply's forward fares.
"""

from __future__ import annotations

import random
import re
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from alerts.core.config import Settings
from alerts.delivery.fanout import queue_staff_bytes
from alerts.inbound.answers import ANSWER_PRIORITY, EMERGENCY_PRIORITY
from alerts.inbound.mail import READ_BYTES
from alerts.inbound.replies import (
    ForwardState,
    Reply,
    ReplyThread,
    crime_signals,
    forward_states,
    sender_is_verified,
)
from alerts.mail.messages import Message, MessageKind
from alerts.mail.mime import SMTP, _as_written, attach_message, feedback_id
from alerts.mail.staff import staff_email
from subscriptions.subscribers import Subscriber
from subscriptions.wards import Ward


def forward_subject(reply: Reply, ward: Ward) -> str:
    flag = "POSSIBLE CRIME REPORT: " if reply.flagged else ""
    unverified = "" if sender_is_verified(reply.signals) else "(sender not verified) "
    subject = " ".join((reply.subject or "(no subject)").split())
    return f"[{ward.code} reply] {unverified}{flag}{subject}"[:300]


def _forward_text(reply: Reply, *, ward: Ward, resident: Subscriber, answered: Message | None,
                  settings: Settings) -> str:
    """What the team reads: the context, then what the resident wrote."""
    zone = ZoneInfo(settings.scheduler.timezone)
    received = reply.received_at.astimezone(zone).strftime("%a %d %b %Y %H:%M")
    lines = []
    if not sender_is_verified(reply.signals):
        lines += [
            "SENDER NOT VERIFIED: this email may not come from the resident named below.",
            "Its From address failed the receiving mail server's DMARC check, or is not the",
            "address the resident subscribed with. Answering it reaches the resident's own",
            "address, not the sender's; check before acting on what it says.",
            "",
        ]
    if reply.flagged:
        lines += [
            "THIS REPLY MAY BE A CRIME REPORT OR AN EMERGENCY",
            f"Signals found: {', '.join(crime_signals(reply.signals))}.",
            "The resident was told at once to call 999 in an emergency and 101 otherwise.",
            "",
        ]
    lines += [
        f"Ward:        {ward.name} ({ward.code})",
        f"Resident:    {resident.name or '(no name given)'} <{resident.email}>",
        f"Received:    {received}",
    ]
    if answered is not None:
        sent = answered.created_at.astimezone(zone).strftime("%a %d %b %Y")
        lines.append(f"In reply to: \"{answered.subject}\" ({answered.kind}, {sent})")
    lines += ["", "What they wrote:", "", reply.text.strip() or "(nothing above the quote)", ""]
    if reply.quoted.strip():
        lines += ["", "The quoted part of their email is in the attached original."]
    lines += [
        "",
        "--",
        "Forwarded by neighbourhood alerts. Reply to this email to answer the resident",
        "directly. The original email is attached.",
    ]
    return "\n".join(lines) + "\n"


def build_forward(reply: Reply, *, ward: Ward, resident: Subscriber, answered: Message | None,
                  original: bytes | None, settings: Settings, now: datetime) -> EmailMessage:
    mail = settings.mail
    forward = staff_email(mail, to=ward.team_email, subject=forward_subject(reply, ward), now=now,
                          kind="reply")
    # The team answers the resident directly from their own mailbox.
    forward["Reply-To"] = formataddr((resident.name, resident.email)) if resident.name \
        else resident.email
    forward["X-Alerts-Ward"] = ward.code
    forward["X-Alerts-Reply-Id"] = str(reply.id)
    if reply.flagged:
        forward["Importance"] = "high"
        forward["X-Priority"] = "1"
    forward.set_content(_forward_text(reply, ward=ward, resident=resident, answered=answered,
                                      settings=settings))
    if original:
        attach_message(forward, original, filename="original.eml")
    return forward


# What `written_forward` writes itself: header values the email package would write back as
# they are (ASCII, one line, nothing it would quote, decode or refold), a display name of
# plain words, an address of plain dot-atoms.
_PLAIN_VALUE = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9]+(?:[ '-][A-Za-z0-9]+)*")
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                            r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
_OTHER_LINE_BREAKS = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def _mailbox(name: str | None, address: str) -> str | None:
    """`formataddr((name, address))` as the email package writes it back, when plain."""
    if _PLAIN_ADDRESS.fullmatch(address) is None or (name and _PLAIN_NAME.fullmatch(name) is None):
        return None
    return f"{name} <{address}>" if name else address


def written_forward(reply: Reply, *, ward: Ward, resident: Subscriber,
                    answered: Message | None, original: bytes | None, settings: Settings,
                    now: datetime, boundary: str | None = None) -> tuple[bytes, str]:
    """`build_forward(...).as_bytes()` and its Subject as the email package reads it back:
    the same bytes, written directly when every part of
    it is plain (most replies: an ASCII name and subject, short lines, a plain original)
    instead of built as a tree of parts, header objects and folds, which cost more than the
    rest of taking the reply in. Otherwise, built. `boundary`: the multipart boundary
    (random when not given)."""
    mail = settings.mail
    sender = _mailbox(mail.from_name, mail.from_address)
    reply_to = _mailbox(resident.name, resident.email)
    text = _forward_text(reply, ward=ward, resident=resident, answered=answered,
                         settings=settings)
    body = [line.encode() for line in text[:-1].split("\n")]
    # A big original (a photo) is built as before: next to attaching it, writing the rest
    # directly saves nothing, and trying to would read its bytes once more.
    written = _as_written(original, SMTP) if original and len(original) <= READ_BYTES else None
    subject = forward_subject(reply, ward)
    headers = [
        ("From", sender), ("To", _mailbox(None, ward.team_email)),
        ("Subject", subject), ("Date", format_datetime(now)),
        ("Message-ID", make_msgid("alerts.reply", mail.from_address.rpartition("@")[2])),
        ("Auto-Submitted", "auto-generated"),
        ("Feedback-ID", feedback_id(mail.from_address, "staff", "reply")),
        ("Reply-To", reply_to), ("X-Alerts-Ward", ward.code),
        ("X-Alerts-Reply-Id", str(reply.id)),
        *((("Importance", "high"), ("X-Priority", "1")) if reply.flagged else ()),
    ]
    limit = SMTP.max_line_length or 0
    if written is None or _OTHER_LINE_BREAKS.search(text) or \
            any(len(line) > limit for line in body) or \
            any(value is None or "=?" in value or _PLAIN_VALUE.fullmatch(value) is None
                or len(name) + 2 + len(value) > limit for name, value in headers):
        built = build_forward(reply, ward=ward, resident=resident, answered=answered,
                              original=original, settings=settings, now=now)
        return built.as_bytes(), str(built["Subject"])
    text_part = b"\r\n".join(body) + b"\r\n"
    while boundary is None or f"--{boundary}".encode() in text_part + written:
        boundary = f"{'=' * 15}{random.randrange(10**19):019d}=="
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return b"".join((
        head.encode(), b"MIME-Version: 1.0\r\n",
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'.encode(),
        f"--{boundary}\r\n".encode(),
        b'Content-Type: text/plain; charset="utf-8"\r\n',
        b"Content-Transfer-Encoding: 7bit\r\n" if text.isascii()
        else b"Content-Transfer-Encoding: 8bit\r\n",
        b"\r\n", text_part, f"\r\n--{boundary}\r\n".encode(),
        b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n"
        b'Content-Disposition: attachment; filename="original.eml"\r\n'
        b"MIME-Version: 1.0\r\n\r\n", written, f"\r\n--{boundary}--\r\n".encode())), subject


def queue_forward(session: Session, settings: Settings, reply: Reply, *, now: datetime,
                  ward: Ward | None = None, resident: Subscriber | None = None,
                  answered: Message | None = None) -> int:
    """Queue the forward of `reply` (written, with its id) to its ward team, in the
    session's transaction; the forward's message id. `ward`, `resident` and `answered` (the
    message the thread began with) are read when not given."""
    if ward is None or resident is None:
        thread = session.get_one(ReplyThread, reply.thread_id)
        ward = session.get_one(Ward, reply.ward_id)
        resident = session.get_one(Subscriber, reply.subscriber_id)
        answered = session.get(Message, thread.message_id) \
            if thread.message_id is not None else None
    forward, subject = written_forward(reply, ward=ward, resident=resident,
                                       answered=answered, original=reply.original,
                                       settings=settings, now=now)
    return queue_staff_bytes(session, MessageKind.FORWARD, forward, subject=subject,
                             to=ward.team_email,
                             ward_id=ward.id, reply_id=reply.id, now=now,
                             priority=EMERGENCY_PRIORITY if reply.flagged else ANSWER_PRIORITY)


def forward_state(session: Session, reply_id: int) -> ForwardState | None:
    """The state of the reply's forward; None if it has none (erased, or never queued)."""
    return forward_states(session, [reply_id]).get(reply_id)
