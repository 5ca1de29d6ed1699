"""What officers do, as services: see their wards at a glance, preview digests, read and
answer residents' replies (posting is `alerts.usecases.posting`, shared with `alerts post`).

Every function takes the signed-in `Principal` and checks, itself, that the ward it touches
is theirs (`ward_for` or `require_ward`, raising `Forbidden`): the pages call these functions
and are never the only guard. Every change is written to the audit log with who made it; the
entries name records by id, never a resident's address or words. An answer to a resident
goes through the outbox like every other message. No web types here: callers pass plain
values and commit. `ward_for` and the errors, `InputError` and `NotFound`, live in
`alerts.usecases.staff`, which posting shares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from alerts.accounts.access import Principal, can_use_ward, require_ward
from alerts.accounts.audit import record
from alerts.core.config import Settings
from alerts.delivery.outbox import Delivery, DeliveryStatus
from alerts.digests.compose import DigestItem, group_sessions
from alerts.inbound.replies import (
    SENDER_NOT_VERIFIED,
    Reply,
    ReplyThread,
    ThreadAnswer,
    crime_signals,
    latest_references,
    sender_is_verified,
)
from alerts.mail.marks import fill_links
from alerts.mail.messages import Message, MessageKind
from alerts.sources.items import Item, ItemKind
from alerts.sources.registry import Source, SourceKind
from alerts.sources.sanitise import as_safe_html, shorten
from alerts.usecases.digest_rounds import preview_digest
from alerts.usecases.staff import InputError, NotFound, ward_for
from alerts.usecases.votes import Tally, count_votes
from subscriptions.base import utcnow
from subscriptions.subscribers import Frequency, Status, Subscriber, Subscription, receiving
from subscriptions.suppression import is_suppressed
from subscriptions.wards import Ward, list_wards

if TYPE_CHECKING:  # the renderer (Jinja, Babel, CSS inlining) and the cron parser
    # (APScheduler) load where a message is written or a digest's time is read, not in
    # every command that checks an officer's ward (`alerts post`)
    from alerts.mail.render import Rendered

MAX_ANSWER = 10_000
INBOX_LIMIT = 200
# A preview is one copy of the email, not any resident's: their own links are not made.
PREVIEW_LINK = "#each-resident-gets-their-own-link"


def _audit(session: Session, who: Principal, action: str, target: str, detail: str = "", *,
           now: datetime) -> None:
    record(session, who.email, action, target, detail, user_id=who.user_id, now=now)


# --- wards -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WardGlance:
    code: str
    name: str
    confirmed: int  # confirmed and mail reaches them (`receiving`): what an alert is queued for
    pending: int
    last_digest_at: datetime | None
    queued: int  # mail for the ward waiting in the outbox
    open_threads: int  # replies not yet marked handled
    # Confirmed, but the address is on the suppression list (it bounced, or complained):
    # counted apart, since nothing is sent to them.
    held: int = 0


def _open_thread() -> ColumnElement[bool]:
    # A thread is open until marked handled, and opens again when the resident writes after.
    return or_(ReplyThread.handled_at.is_(None), Reply.received_at > ReplyThread.handled_at)


def wards_at_a_glance(session: Session, who: Principal) -> list[WardGlance]:
    """The person's wards (every ward for an administrator, none for a coordinator) with
    their figures."""
    return _glances(session, [w for w in list_wards(session) if can_use_ward(who, w.id)])


def ward_glance(session: Session, who: Principal, code: str) -> WardGlance:
    return _glances(session, [ward_for(session, who, code)])[0]


def _glances(session: Session, wards: list[Ward]) -> list[WardGlance]:
    """Each ward's figures, a few grouped queries for all of them together."""
    ids = [w.id for w in wards]
    if not ids:
        return []
    counts: dict[tuple[int, str], int] = {
        (ward_id, status): n for ward_id, status, n in session.execute(
            select(Subscription.ward_id, Subscription.status, func.count())
            .where(Subscription.ward_id.in_(ids))
            .group_by(Subscription.ward_id, Subscription.status))}
    held: dict[int, int] = dict(session.execute(
        select(Subscription.ward_id, func.count())
        .where(Subscription.ward_id.in_(ids), Subscription.status == Status.CONFIRMED,
               ~receiving())
        .group_by(Subscription.ward_id)).all())
    last_digest: dict[int | None, datetime | None] = dict(session.execute(
        select(Message.ward_id, func.max(Message.created_at))
        .where(Message.ward_id.in_(ids), Message.kind == MessageKind.DIGEST)
        .group_by(Message.ward_id)).all())
    queued: dict[int | None, int] = dict(session.execute(
        select(Message.ward_id, func.count(Delivery.id))
        .join(Message, Message.id == Delivery.message_id)
        .where(Message.ward_id.in_(ids), Delivery.subscriber_id.is_not(None),  # residents'
               Delivery.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.SENDING]))
        .group_by(Message.ward_id)).all())
    open_threads: dict[int, int] = dict(session.execute(
        select(ReplyThread.ward_id, func.count(func.distinct(ReplyThread.id)))
        .join(Reply, Reply.thread_id == ReplyThread.id)
        .where(ReplyThread.ward_id.in_(ids), _open_thread())
        .group_by(ReplyThread.ward_id)).all())
    return [
        WardGlance(code=w.code, name=w.name,
                   confirmed=counts.get((w.id, Status.CONFIRMED), 0) - held.get(w.id, 0),
                   pending=counts.get((w.id, Status.PENDING), 0),
                   last_digest_at=last_digest.get(w.id), queued=queued.get(w.id, 0),
                   open_threads=open_threads.get(w.id, 0), held=held.get(w.id, 0))
        for w in wards
    ]


# The coming sessions the ward page groups into its rows (a calendar caps each event too).
MAX_SESSIONS = 200


@dataclass(frozen=True)
class RecentItem:
    title: str
    kind: str
    collected_at: datetime
    from_officers: bool
    # Residents' answers to "Was this useful?" (contact sessions are not asked about).
    votes: Tally = field(default_factory=Tally)
    # A session's dates (start, end), soonest first: a weekly drop-in is one row.
    dates: tuple[tuple[datetime | None, datetime | None], ...] = ()


def recent_items(session: Session, who: Principal, code: str, *, limit: int = 10,
                 now: datetime | None = None) -> list[RecentItem]:
    """The ward's newest items, whoever wrote them (an officer or a feed), with their votes;
    its sessions that have not ended are there once each with their dates
    (`compose.group_sessions`), as new as the newest of their occurrences."""
    ward = ward_for(session, who, code)
    now = now or utcnow()
    live = (select(Item, Source.kind).join(Source, Source.id == Item.source_id)
            .where(Source.ward_id == ward.id, Item.withdrawn_at.is_(None)))
    news = session.execute(
        live.where(Item.kind != ItemKind.SESSION.value)
        .order_by(Item.collected_at.desc(), Item.id.desc()).limit(limit)).all()
    coming = {item.id: (item, kind) for item, kind in session.execute(
        live.where(Item.kind == ItemKind.SESSION.value,
                   func.coalesce(Item.ends_at, Item.starts_at) > now)
        .order_by(Item.starts_at, Item.id).limit(MAX_SESSIONS)).all()}
    votes = count_votes(session, [item.id for item, _ in news])
    rows = [RecentItem(item.title, item.kind, item.collected_at,
                       kind == SourceKind.OFFICER, votes.get(item.id, Tally()))
            for item, kind in news]
    for series in group_sessions(DigestItem.of(item) for item, _ in coming.values()):
        first, kind = coming[series.session.id]
        rows.append(RecentItem(first.title, first.kind,
                               max(coming[i][0].collected_at for i in series.ids),
                               kind == SourceKind.OFFICER, dates=series.dates))
    return sorted(rows, key=lambda row: row.collected_at, reverse=True)[:limit]


@dataclass(frozen=True)
class SourceRow:
    id: int
    kind: str
    url: str
    last_fetched_at: datetime | None
    last_ok_at: datetime | None
    last_error: str | None


def ward_sources(session: Session, who: Principal, code: str) -> list[SourceRow]:
    """What the ward's news is collected from (read-only: `alerts sources` changes it)."""
    ward = ward_for(session, who, code)
    return [SourceRow(s.id, s.kind, s.url, s.last_fetched_at, s.last_ok_at, s.last_error)
            for s in session.scalars(
                select(Source).where(Source.ward_id == ward.id).order_by(Source.id))]


def next_digest(session: Session, settings: Settings, who: Principal, code: str, *,
                now: datetime) -> datetime | None:
    """When the ward's next weekly digest goes: its own cron, or the default, in the
    scheduler's time zone (daily subscribers hear every day at the same time)."""
    from alerts.digests.schedule import next_digest_at

    ward = ward_for(session, who, code)
    return next_digest_at(ward.digest_cron, settings.scheduler.digest_cron,
                          settings.scheduler.timezone, Frequency.WEEKLY, now)


def digest_preview(session: Session, settings: Settings, who: Principal, code: str, *,
                   now: datetime) -> Rendered | None:
    """The ward's next digest as most subscribers would get it; None when nothing is new."""
    ward = ward_for(session, who, code)
    return preview_digest(session, ward.code, settings, now)


def for_display(body: str, *, as_text: bool = False) -> str:
    """A rendered email (HTML, or the text part) with the marks where each resident's own
    links go filled in, to show to staff."""
    link = "(each resident's own link)" if as_text else PREVIEW_LINK
    return fill_links(body, link, link, link)


# --- replies -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ThreadSummary:
    id: int
    resident: str
    answers: str  # subject of the message the resident first answered
    last_at: datetime
    replies: int
    flagged: bool
    open: bool
    latest_subject: str
    latest_text: str  # what the resident last wrote, without the quoted history
    # Some reply in it may not come from the resident (alerts.inbound.trust).
    unverified: bool = False


def _excerpt(text: str, limit: int = 240) -> str:
    return shorten(" ".join(text.split()), limit)


def inbox(session: Session, who: Principal, code: str, *,
          limit: int = INBOX_LIMIT) -> list[ThreadSummary]:
    """The ward's reply threads, the one written to most recently first."""
    ward = ward_for(session, who, code)
    latest = (select(Reply.thread_id, func.max(Reply.received_at).label("last_at"),
                     func.count(Reply.id).label("replies"))
              .where(Reply.ward_id == ward.id).group_by(Reply.thread_id).subquery())
    rows = session.execute(
        select(ReplyThread, Subscriber.name, Subscriber.email, Message.subject,
               latest.c.last_at, latest.c.replies)
        .join(latest, latest.c.thread_id == ReplyThread.id)
        .join(Subscriber, Subscriber.id == ReplyThread.subscriber_id)
        .outerjoin(Message, Message.id == ReplyThread.message_id)
        .order_by(latest.c.last_at.desc(), ReplyThread.id.desc()).limit(limit)).all()
    ids = [thread.id for thread, *_ in rows]
    flagged = set(session.scalars(
        select(Reply.thread_id).where(Reply.thread_id.in_(ids), Reply.flagged).distinct()))
    unverified = set(session.scalars(
        select(Reply.thread_id).where(Reply.thread_id.in_(ids),
                                      Reply.signals.contains(SENDER_NOT_VERIFIED)).distinct()))
    newest: dict[int, tuple[str, str]] = {}
    for thread_id, subject, text in session.execute(
            select(Reply.thread_id, Reply.subject, Reply.text)
            .where(Reply.thread_id.in_(ids))
            .order_by(Reply.received_at.desc(), Reply.id.desc())):
        newest.setdefault(thread_id, (subject, text))
    found = []
    for thread, name, email, answered, last_at, count in rows:
        subject, text = newest.get(thread.id, ("", ""))
        found.append(ThreadSummary(
            id=thread.id, resident=name or email,
            answers=answered or "(a message no longer held)", last_at=last_at,
            replies=count, flagged=thread.id in flagged,
            open=thread.handled_at is None or last_at > thread.handled_at,
            latest_subject=subject, latest_text=_excerpt(text),
            unverified=thread.id in unverified))
    return found


@dataclass(frozen=True)
class Entry:
    """One step of a thread: the resident's reply, or a message sent to them in it."""

    at: datetime
    by_resident: bool
    kind: str  # "reply", or the message kind (reply_ack, team_answer)
    subject: str
    text: str
    quoted: str = ""
    flagged: bool = False
    signals: tuple[str, ...] = ()
    sender_verified: bool = True


@dataclass(frozen=True)
class ThreadView:
    id: int
    ward_code: str
    ward_name: str
    resident_name: str
    resident_email: str
    answers: str
    started_at: datetime
    handled_at: datetime | None
    open: bool
    entries: list[Entry]
    # Why an answer cannot be sent, or None when it can.
    cannot_answer: str | None


def _thread(session: Session, who: Principal, thread_id: int) -> ReplyThread:
    thread = session.get(ReplyThread, thread_id)
    if thread is None:
        raise NotFound("no such conversation")
    require_ward(who, thread.ward_id)
    return thread


def thread_ward(session: Session, who: Principal, thread_id: int) -> str:
    """The code of the ward a thread belongs to (pages check it matches their URL)."""
    return session.get_one(Ward, _thread(session, who, thread_id).ward_id).code


def _cannot_answer(session: Session, thread: ReplyThread, resident: Subscriber) -> str | None:
    if is_suppressed(session, resident.email):
        return ("This resident's address is on the suppression list (mail to it bounced, "
                "or they asked for no more), so no answer can be sent.")
    if session.scalar(select(Subscription.id).where(
            Subscription.subscriber_id == resident.id,
            Subscription.ward_id == thread.ward_id)) is None:
        return "This resident no longer has a subscription to this ward to answer through."
    return None


def read_thread(session: Session, who: Principal, thread_id: int) -> ThreadView:
    thread = _thread(session, who, thread_id)
    ward = session.get_one(Ward, thread.ward_id)
    resident = session.get_one(Subscriber, thread.subscriber_id)
    answered = session.get(Message, thread.message_id) if thread.message_id else None
    entries = [
        Entry(at=r.received_at, by_resident=True, kind="reply", subject=r.subject,
              text=r.text, quoted=r.quoted, flagged=r.flagged,
              signals=crime_signals(r.signals), sender_verified=sender_is_verified(r.signals))
        for r in session.scalars(select(Reply).where(Reply.thread_id == thread.id))
    ]
    entries += [
        Entry(at=m.created_at, by_resident=False, kind=m.kind, subject=m.subject,
              text=m.text if m.kind == MessageKind.TEAM_ANSWER else "")
        for m in session.scalars(
            select(Message).join(ThreadAnswer, ThreadAnswer.message_id == Message.id)
            .where(ThreadAnswer.thread_id == thread.id))
    ]
    entries.sort(key=lambda e: e.at)
    last_reply = max((e.at for e in entries if e.by_resident), default=thread.created_at)
    return ThreadView(
        id=thread.id, ward_code=ward.code, ward_name=ward.name, resident_name=resident.name,
        resident_email=resident.email,
        answers=answered.subject if answered else "(a message no longer held)",
        started_at=thread.created_at, handled_at=thread.handled_at,
        open=thread.handled_at is None or last_reply > thread.handled_at, entries=entries,
        cannot_answer=_cannot_answer(session, thread, resident))


def mark_handled(session: Session, who: Principal, thread_id: int, *, handled: bool,
                 now: datetime) -> None:
    """Mark a thread handled (nothing more to do) or open again; audited."""
    thread = _thread(session, who, thread_id)
    thread.handled_at = now if handled else None
    _audit(session, who, "reply.handled" if handled else "reply.reopened",
           f"thread {thread.id}", now=now)
    session.flush()


def _answer_subject(session: Session, thread: ReplyThread, ward: Ward) -> str:
    from alerts.mail.render import fit_subject

    latest = session.scalars(select(Reply.subject).where(Reply.thread_id == thread.id)
                             .order_by(Reply.received_at.desc(), Reply.id.desc())).first()
    subject = " ".join((latest or "").split())
    if not subject:
        return fit_subject(f"Your {ward.name} neighbourhood team has answered")
    return fit_subject(subject if subject.lower().startswith("re:") else f"Re: {subject}")


def render_answer(settings: Settings, *, ward_name: str, subject: str, text: str,
                  signer: str, you_wrote: str, now: datetime) -> Rendered:
    """An officer's answer as an email: their words, what the resident wrote, and how
    to report a crime."""
    from alerts.mail.render import render_email

    return render_email("team-answer", subject, settings, now=now, ward_name=ward_name,
                        body_html=as_safe_html(text),
                        body_text=text.replace("\r\n", "\n").strip(), signer=signer,
                        you_wrote=you_wrote.strip())


@dataclass(frozen=True)
class Answered:
    thread_id: int
    message_id: int


def answer_thread(session: Session, settings: Settings, who: Principal, thread_id: int,
                  text: str, *, now: datetime) -> Answered:
    """Queue an officer's answer to the resident, linked to the thread (so the resident's
    reply to it joins the thread), mark the thread handled, and audit it."""
    from alerts.inbound.answers import ANSWER_PRIORITY, queue_in_thread

    thread = _thread(session, who, thread_id)
    if not text.strip():
        raise InputError({"answer": "Write your answer"})
    if len(text) > MAX_ANSWER:
        raise InputError({"answer": f"The answer must be {MAX_ANSWER:,} characters or fewer"})
    ward = session.get_one(Ward, thread.ward_id)
    resident = session.get_one(Subscriber, thread.subscriber_id)
    reason = _cannot_answer(session, thread, resident)
    if reason is not None:
        raise InputError({"answer": reason})
    you_wrote = session.scalars(select(Reply.text).where(Reply.thread_id == thread.id)
                                .order_by(Reply.received_at.desc(), Reply.id.desc())).first()
    rendered = render_answer(
        settings, ward_name=ward.name, subject=_answer_subject(session, thread, ward),
        text=text, signer=who.name or f"An officer of the {ward.name} team",
        you_wrote=you_wrote or "", now=now)
    message = queue_in_thread(session, thread, MessageKind.TEAM_ANSWER, rendered,
                              priority=ANSWER_PRIORITY, now=now,
                              references=latest_references(session, thread.id))
    if message is None:  # suppressed since the check above
        raise InputError({"answer": "This resident's address can no longer be written to"})
    thread.handled_at = now
    _audit(session, who, "reply.answer", f"thread {thread.id}",
           f"message {message.id}; ward {ward.code}", now=now)
    session.flush()
    return Answered(thread.id, message.id)
