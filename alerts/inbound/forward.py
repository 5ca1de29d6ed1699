"""Forwarding residents' replies to their ward team's address, with the context an officer
needs: which message it answers, the ward, the resident's name and address, the signals
that made it look like a crime report, the new text first and the original attached.

The replies table is the queue: a reply not yet forwarded is due at `forward_next_at`.
Each row is claimed by moving that time past a lease before sending, so two processes
never forward the same reply; a failure waits with the outbox's backoff, up to
`mail.max_attempts`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formataddr
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.delivery.outbox import retry_delay
from alerts.delivery.sender import make_transport
from alerts.delivery.transport import DeliveryFailure, PermanentFailure, Transport
from alerts.inbound.replies import Reply, ReplyThread
from alerts.mail.messages import Message
from alerts.mail.staff import staff_email, staff_envelope
from subscriptions.subscribers import Subscriber
from subscriptions.wards import Ward

log = logging.getLogger(__name__)

FORWARD_BATCH = 50


@dataclass
class ForwardReport:
    forwarded: int = 0
    retried: int = 0
    failed: int = 0


def _subject(reply: Reply, ward: Ward) -> str:
    flag = "POSSIBLE CRIME REPORT: " if reply.flagged else ""
    subject = " ".join((reply.subject or "(no subject)").split())
    return f"[{ward.code} reply] {flag}{subject}"[:300]


def build_forward(reply: Reply, *, ward: Ward, resident: Subscriber, answered: Message | None,
                  original: bytes | None, settings: Settings, now: datetime) -> EmailMessage:
    zone = ZoneInfo(settings.scheduler.timezone)
    mail = settings.mail
    forward = staff_email(mail, to=ward.team_email, subject=_subject(reply, ward), now=now,
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
    if reply.flagged:
        lines += [
            "THIS REPLY MAY BE A CRIME REPORT OR AN EMERGENCY",
            f"Signals found: {reply.signals.replace(',', ', ')}.",
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
        forward.add_attachment(BytesParser(policy=policy.default).parsebytes(original),
                               disposition="attachment", filename="original.eml")
    return forward


def _claim(session: Session, reply_id: int, due_at: datetime, lease_until: datetime) -> bool:
    claimed = session.execute(
        update(Reply).where(Reply.id == reply_id, Reply.forward_next_at == due_at,
                            Reply.forwarded_at.is_(None))
        .values(forward_next_at=lease_until)
    )
    return bool(getattr(claimed, "rowcount", 0) == 1)


def _claim_batch(factory: sessionmaker[Session], settings: Settings,
                 now: datetime) -> list[int]:
    lease = timedelta(seconds=settings.mail.lease_seconds)
    with factory() as session:
        due = session.execute(
            select(Reply.id, Reply.forward_next_at)
            .where(Reply.forwarded_at.is_(None), Reply.forward_next_at <= now,
                   Reply.forward_attempts < settings.mail.max_attempts)
            .order_by(Reply.flagged.desc(), Reply.forward_next_at).limit(FORWARD_BATCH)
        ).all()
        claimed = [ident for ident, due_at in due
                   if _claim(session, ident, due_at, now + lease)]
        session.commit()
    return claimed


async def forward_due_async(factory: sessionmaker[Session], settings: Settings, *,
                            now: datetime) -> ForwardReport:
    """Forward every reply due now, flagged ones first, in batches."""
    report = ForwardReport()
    claimed = _claim_batch(factory, settings, now)
    if not claimed:
        return report
    envelope_from = staff_envelope(settings.mail)
    async with make_transport(settings) as transport:
        while claimed:
            for ident in claimed:
                await _forward_one(factory, settings, transport, envelope_from, ident, now,
                                   report)
            claimed = _claim_batch(factory, settings, now)
    return report


async def _forward_one(factory: sessionmaker[Session], settings: Settings,
                       transport: Transport, envelope_from: str, ident: int, now: datetime,
                       report: ForwardReport) -> None:
    with factory() as session:
        reply = session.get_one(Reply, ident)
        thread = session.get_one(ReplyThread, reply.thread_id)
        ward = session.get_one(Ward, reply.ward_id)
        resident = session.get_one(Subscriber, reply.subscriber_id)
        answered = session.get(Message, thread.message_id) \
            if thread.message_id is not None else None
        forward = build_forward(reply, ward=ward, resident=resident, answered=answered,
                                original=reply.original, settings=settings, now=now)
        reply.forward_attempts += 1
        try:
            await transport.send(envelope_from, ward.team_email, forward.as_bytes())
        except DeliveryFailure as failure:
            reply.forward_error = failure.reason
            if isinstance(failure, PermanentFailure) or \
                    reply.forward_attempts >= settings.mail.max_attempts:
                report.failed += 1
                log.warning("reply %d could not be forwarded to the %s team: %s",
                            ident, ward.code, failure.reason)
                reply.forward_next_at = now
                reply.forward_attempts = max(reply.forward_attempts,
                                             settings.mail.max_attempts)
            else:
                report.retried += 1
                reply.forward_next_at = now + timedelta(seconds=retry_delay(
                    reply.forward_attempts, settings.mail.retry_base_seconds))
        else:
            reply.forwarded_at = now
            reply.forward_error = None
            report.forwarded += 1
        session.commit()


def forward_due(factory: sessionmaker[Session], settings: Settings, *,
                now: datetime) -> ForwardReport:
    return asyncio.run(forward_due_async(factory, settings, now=now))
