"""Forwarding residents' replies to their ward team's address, with the context an officer
needs: which message it answers, the ward, the resident's name and address, the signals
that made it look like a crime report, the new text first and the original attached.

Intake queues each reply's forward (`queue_forward`) in the same transaction as the reply:
a message of kind "forward" in the outbox, built whole, bound to the reply (erasing the
reply erases it) and sent to the team's address by the one sender, with its leases, retries
and pacing, possible crime reports first. `forward_state` reads how a reply's forward fares.
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.utils import formataddr
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from alerts.core.config import Settings
from alerts.delivery.fanout import queue_staff_mail
from alerts.inbound.answers import ANSWER_PRIORITY, EMERGENCY_PRIORITY
from alerts.inbound.replies import (
    ForwardState,
    Reply,
    ReplyThread,
    crime_signals,
    forward_states,
    sender_is_verified,
)
from alerts.mail.messages import Message, MessageKind
from alerts.mail.mime import attach_message
from alerts.mail.staff import staff_email
from subscriptions.subscribers import Subscriber
from subscriptions.wards import Ward


def forward_subject(reply: Reply, ward: Ward) -> str:
    flag = "POSSIBLE CRIME REPORT: " if reply.flagged else ""
    unverified = "" if sender_is_verified(reply.signals) else "(sender not verified) "
    subject = " ".join((reply.subject or "(no subject)").split())
    return f"[{ward.code} reply] {unverified}{flag}{subject}"[:300]


def build_forward(reply: Reply, *, ward: Ward, resident: Subscriber, answered: Message | None,
                  original: bytes | None, settings: Settings, now: datetime) -> EmailMessage:
    zone = ZoneInfo(settings.scheduler.timezone)
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
    forward.set_content("\n".join(lines) + "\n")
    if original:
        attach_message(forward, original, filename="original.eml")
    return forward


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
    forward = build_forward(reply, ward=ward, resident=resident, answered=answered,
                            original=reply.original, settings=settings, now=now)
    return queue_staff_mail(session, MessageKind.FORWARD, forward, to=ward.team_email,
                            ward_id=ward.id, reply_id=reply.id, now=now,
                            priority=EMERGENCY_PRIORITY if reply.flagged else ANSWER_PRIORITY)


def forward_state(session: Session, reply_id: int) -> ForwardState | None:
    """The state of the reply's forward; None if it has none (erased, or never queued)."""
    return forward_states(session, [reply_id]).get(reply_id)
