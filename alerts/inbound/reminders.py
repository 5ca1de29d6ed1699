"""Reminding each ward team, by email on a schedule, of residents' replies still open.

A conversation (a thread) is open until an officer marks it handled, and opens again when
the resident writes after that; it has been open since the first reply it is still waiting
on. Those open for longer than `inbound.reminder_days` are listed in one email per ward,
sent to the team's address: how many days each has waited, the resident's name (never their
address: the reminder only points to the staff page, where the rest is), the subject,
whether it may be a crime report, and the link to answer or mark it handled. Nothing is
stored but the reminders themselves: a conversation keeps appearing in each reminder until it
is marked handled.

Each reminder is staff mail in the outbox (kind "reminder", `queue_reminders`), sent by the
one sender with its retries; `send_reminders` queues them and sends them at once, for
`alerts replies remind`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.delivery.fanout import queue_staff_mail
from alerts.delivery.outbox import Delivery, DeliveryStatus
from alerts.delivery.sender import deliver_due
from alerts.inbound.answers import ANSWER_PRIORITY
from alerts.inbound.replies import Reply, ReplyThread
from alerts.mail.messages import MessageKind
from alerts.mail.staff import staff_email
from alerts.sources.sanitise import shorten
from subscriptions.subscribers import Subscriber
from subscriptions.wards import Ward, get_ward

MAX_LISTED_SUBJECT = 120


@dataclass(frozen=True)
class OpenConversation:
    """One thread waiting for the team."""

    thread_id: int
    resident: str  # the name they gave, "" when none: never their address
    subject: str  # of their latest reply
    flagged: bool  # any reply still waiting reads like a crime report
    open_since: datetime  # the first reply still waiting
    age_days: int  # whole days since then


@dataclass(frozen=True)
class WardReminder:
    code: str
    name: str
    team_email: str
    conversations: tuple[OpenConversation, ...]  # possible crime reports first, then oldest


@dataclass
class ReminderReport:
    sent: dict[str, int] = field(default_factory=dict)  # ward code → conversations listed
    failed: dict[str, str] = field(default_factory=dict)  # ward code → why it was not sent


@dataclass
class _Thread:
    code: str
    resident: str
    open_since: datetime
    subject: str = ""
    flagged: bool = False


def overdue_conversations(session: Session, *, days: int, now: datetime) -> list[WardReminder]:
    """Per ward (by code), the threads open for longer than `days` days at `now`; wards with
    none are left out."""
    cutoff = now - timedelta(days=days)
    rows = session.execute(
        select(Reply.thread_id, Reply.received_at, Reply.id, Reply.subject, Reply.flagged,
               Subscriber.name, Ward.code, Ward.name, Ward.team_email)
        .join(ReplyThread, ReplyThread.id == Reply.thread_id)
        .join(Subscriber, Subscriber.id == ReplyThread.subscriber_id)
        .join(Ward, Ward.id == ReplyThread.ward_id)
        # The same rule as the staff pages: open until handled, open again after.
        .where(or_(ReplyThread.handled_at.is_(None),
                   Reply.received_at > ReplyThread.handled_at))
        .order_by(Reply.thread_id, Reply.received_at, Reply.id)
    ).all()
    wards: dict[str, tuple[str, str]] = {}
    threads: dict[int, _Thread] = {}
    for thread_id, received, _, subject, flagged, resident, code, ward_name, team in rows:
        wards[code] = (ward_name, team)
        seen = threads.setdefault(thread_id, _Thread(code, resident or "", received))
        seen.subject = subject  # rows come oldest first: the latest reply's subject wins
        seen.flagged = seen.flagged or flagged
    by_ward: dict[str, list[OpenConversation]] = {}
    for thread_id, seen in threads.items():
        if seen.open_since > cutoff:
            continue
        by_ward.setdefault(seen.code, []).append(OpenConversation(
            thread_id=thread_id, resident=seen.resident, subject=seen.subject,
            flagged=seen.flagged, open_since=seen.open_since,
            age_days=(now - seen.open_since).days))
    return [
        WardReminder(code=code, name=wards[code][0], team_email=wards[code][1],
                     conversations=tuple(sorted(
                         found, key=lambda c: (not c.flagged, c.open_since, c.thread_id))))
        for code, found in sorted(by_ward.items())
    ]


def thread_link(settings: Settings, ward_code: str, thread_id: int) -> str:
    return f"{settings.web.base_url.rstrip('/')}/staff/wards/{ward_code}/replies/{thread_id}"


def _days(n: int) -> str:
    return "1 day" if n == 1 else f"{n} days"


def build_reminder(reminder: WardReminder, *, settings: Settings, now: datetime) -> EmailMessage:
    """The reminder to one ward team, as plain text."""
    mail = settings.mail
    days = settings.inbound.reminder_days
    count = len(reminder.conversations)
    waiting = "1 resident's reply" if count == 1 else f"{count} residents' replies"
    message = staff_email(mail, to=reminder.team_email, now=now, kind="reminder",
                          subject=f"[{reminder.code}] {waiting} open for more than "
                                  f"{_days(days)}")
    message["X-Alerts-Ward"] = reminder.code
    flagged = sum(1 for c in reminder.conversations if c.flagged)
    lines = [
        f"Ward: {reminder.name} ({reminder.code})",
        "",
        f"These conversations with residents have been open for more than {_days(days)}.",
        "Each one stays in this reminder until it is marked handled on its page.",
    ]
    if flagged:
        lines += ["", f"{flagged} of them may be a crime report: they are listed first."]
    for conversation in reminder.conversations:
        subject = shorten(" ".join((conversation.subject or "(no subject)").split()),
                          MAX_LISTED_SUBJECT)
        lines += [
            "",
            f"* Open {_days(conversation.age_days)}: "
            f"{conversation.resident or '(no name given)'}",
            f"  Subject: {subject}",
        ]
        if conversation.flagged:
            lines.append("  POSSIBLE CRIME REPORT")
        lines.append(f"  {thread_link(settings, reminder.code, conversation.thread_id)}")
    lines += [
        "",
        "--",
        "Sent by neighbourhood alerts. Answer the resident or mark the conversation",
        "handled from the staff pages; replying to this email does nothing.",
    ]
    message.set_content("\n".join(lines) + "\n")
    return message


def queue_reminders(session: Session, settings: Settings, *,
                    now: datetime) -> dict[str, tuple[int, int]]:
    """Queue each ward with conversations open too long its reminder (flushed; the caller
    commits); return ward code → (its message's id, conversations listed)."""
    queued: dict[str, tuple[int, int]] = {}
    for reminder in overdue_conversations(session, days=settings.inbound.reminder_days,
                                          now=now):
        message_id = queue_staff_mail(
            session, MessageKind.REMINDER, build_reminder(reminder, settings=settings, now=now),
            to=reminder.team_email, ward_id=get_ward(session, reminder.code).id,
            priority=ANSWER_PRIORITY, now=now)
        queued[reminder.code] = (message_id, len(reminder.conversations))
    return queued


def send_reminders(factory: sessionmaker[Session], settings: Settings, *,
                   now: datetime) -> ReminderReport:
    """Queue the reminders and send them now, through the outbox; a ward whose reminder did
    not go (the sender will try it again if the answer was temporary) is in `failed`."""
    with factory.begin() as session:
        queued = queue_reminders(session, settings, now=now)
    if not queued:
        return ReminderReport()
    deliver_due(factory, settings, now=lambda: now, kinds=(MessageKind.REMINDER,))
    report = ReminderReport()
    with factory() as session:
        rows = dict(session.execute(
            select(Delivery.message_id, Delivery)
            .where(Delivery.message_id.in_([ident for ident, _ in queued.values()]))).all())
        for code, (ident, count) in queued.items():
            row = rows[ident]
            if row.status == DeliveryStatus.SENT:
                report.sent[code] = count
            else:
                report.failed[code] = (f"{row.status}: {row.last_error}" if row.last_error
                                       else str(row.status))
    return report
