"""Residents' replies: threads, the stored reply, and what officers read.

A thread is one resident answering one message (a digest, post or alert). Answers the
product sends in a thread (the acknowledgement) are linked to it (`ThreadAnswer`), so that a
reply to an answer joins the thread it came from. A reply keeps the text the resident wrote apart
from the quoted history and the signals that made it look like a crime report; whether it
has reached the ward team is its forward's outbox row (`forward_states`). A reply whose sender
could not be verified (`alerts.inbound.trust`) keeps the mark `SENDER_NOT_VERIFIED` among
its signals: that column is a set of labels, and the mark needs no column of its own.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    ForeignKey,
    Insert,
    LargeBinary,
    Select,
    String,
    Table,
    Text,
    UniqueConstraint,
    Update,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from alerts.delivery.outbox import Delivery, DeliveryStatus
from alerts.mail.messages import Message, MessageKind
from subscriptions.base import Base, utcnow
from subscriptions.wards import Ward, get_ward

if TYPE_CHECKING:  # loaded by the reading of replies, not by the counts (`alerts status`)
    from subscriptions.subscribers import Subscriber

MAX_SUBJECT = 300
# Stored with the signals, never shown as one: see `stored_signals`, `crime_signals`.
SENDER_NOT_VERIFIED = "sender not verified"


def stored_signals(signals: tuple[str, ...], *, sender_verified: bool) -> str:
    """What `Reply.signals` holds: the crime-report signals, and the unverified mark."""
    return ",".join((*signals, *(() if sender_verified else (SENDER_NOT_VERIFIED,))))


def crime_signals(stored: str) -> tuple[str, ...]:
    """The crime-report signals among what `Reply.signals` holds."""
    return tuple(s for s in stored.split(",") if s and s != SENDER_NOT_VERIFIED)


def sender_is_verified(stored: str) -> bool:
    """Whether what `Reply.signals` holds lacks the "sender not verified" mark."""
    return SENDER_NOT_VERIFIED not in stored.split(",")


class ReplyThread(Base):
    __tablename__ = "reply_threads"
    __table_args__ = (UniqueConstraint("subscriber_id", "message_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ward_id: Mapped[int] = mapped_column(ForeignKey("wards.id", ondelete="CASCADE"), index=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    # The message the resident first answered.
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(default=None)
    handled_at: Mapped[datetime | None] = mapped_column(default=None)


# The kinds of message sent in a thread (`answers.queue_in_thread` links no other): only a
# reply to one of these can join a thread through its ThreadAnswer.
THREAD_KINDS = (MessageKind.REPLY_ACK, MessageKind.TEAM_ANSWER)


class ThreadAnswer(Base):
    """A message the product sent in a thread (an acknowledgement, later an officer's answer)."""

    __tablename__ = "thread_answers"

    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True)
    thread_id: Mapped[int] = mapped_column(
        ForeignKey("reply_threads.id", ondelete="CASCADE"), index=True)


class Reply(Base):
    __tablename__ = "replies"

    id: Mapped[int] = mapped_column(primary_key=True)
    thread_id: Mapped[int] = mapped_column(
        ForeignKey("reply_threads.id", ondelete="CASCADE"), index=True)
    ward_id: Mapped[int] = mapped_column(ForeignKey("wards.id", ondelete="CASCADE"), index=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    # The message this email answered (the original, or an answer in the thread).
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), default=None)
    inbound_id: Mapped[int | None] = mapped_column(
        ForeignKey("inbound_messages.id", ondelete="SET NULL"), default=None)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    subject: Mapped[str] = mapped_column(String(MAX_SUBJECT), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    quoted: Mapped[str] = mapped_column(Text, default="")
    # The crime-report signals found in the text, comma-separated ("" for none), and
    # SENDER_NOT_VERIFIED last when the sender could not be verified.
    signals: Mapped[str] = mapped_column(String(300), default="")
    flagged: Mapped[bool] = mapped_column(default=False)
    # The email as received, attached when it is forwarded (photos, the full quote); erased
    # with the resident like the rest of the reply.
    original: Mapped[bytes | None] = mapped_column(LargeBinary, default=None, deferred=True)


@dataclass(frozen=True)
class ForwardState:
    """How a reply's forward to its team fares: `status` is its outbox row's."""

    status: str
    attempts: int
    error: str | None
    forwarded_at: datetime | None


def forward_states(session: Session, reply_ids: list[int]) -> dict[int, ForwardState]:
    """The state of each reply's forward, by reply id; a reply whose forward is gone (or
    was never queued) is left out."""
    found: dict[int, ForwardState] = {}
    for reply_id, status, attempts, error, sent_at in session.execute(
        select(Message.reply_id, Delivery.status, Delivery.attempts, Delivery.last_error,
               Delivery.sent_at)
        .join(Message, Message.id == Delivery.message_id)
        .where(Message.reply_id.in_(reply_ids), Message.kind == MessageKind.FORWARD)
        .order_by(Delivery.id)
    ):
        if reply_id is not None:  # the newest row of a reply wins
            found[reply_id] = ForwardState(status, attempts, error,
                                           sent_at if status == DeliveryStatus.SENT else None)
    return found


# A msg-id (RFC 5322 3.6.4) as it can be repeated safely in a header: printable ASCII.
_MESSAGE_ID = re.compile(r"<[\x21-\x3b\x3d\x3f\x41-\x7e]+@[\x21-\x3b\x3d\x3f\x41-\x7e]+>")
# Beyond this many, an answer's References keeps the first (the thread's start) and the last.
MAX_REFERENCES = 20
_HEAD_END = re.compile(rb"\r?\n\r?\n")


def references_of(message: EmailMessage) -> str | None:
    """What an answer to the resident's `message` carries as References (RFC 5322 3.6.4):
    its References (or else its In-Reply-To), then its Message-ID, space-separated; None
    when it has no usable Message-ID (then there is nothing to reply to)."""
    own = _MESSAGE_ID.findall(str(message.get("Message-ID", "") or ""))
    if not own:
        return None
    earlier = _MESSAGE_ID.findall(str(message.get("References", "") or "")) or \
        _MESSAGE_ID.findall(str(message.get("In-Reply-To", "") or ""))
    ids = [i for i in dict.fromkeys(earlier) if i != own[0]]
    if len(ids) >= MAX_REFERENCES:
        ids = [ids[0], *ids[len(ids) - MAX_REFERENCES + 2:]]
    return " ".join((*ids, own[0]))


def latest_references(session: Session, thread_id: int) -> str | None:
    """`references_of` the resident's newest reply in the thread, from the email as kept."""
    original = session.scalars(select(Reply.original).where(Reply.thread_id == thread_id)
                               .order_by(Reply.received_at.desc(), Reply.id.desc())).first()
    if not original:
        return None
    from email import policy  # here: the counts (`alerts status`) read no email
    from email.parser import BytesHeaderParser

    head = _HEAD_END.split(original, maxsplit=1)[0] + b"\r\n\r\n"
    message = BytesHeaderParser(policy=policy.default).parsebytes(head)
    assert isinstance(message, EmailMessage)
    return references_of(message)


@functools.cache
def _reply_insert() -> Insert:
    table = cast(Table, Reply.__table__)
    return insert(table).returning(table.c.id)


def store_reply(session: Session, fields: dict[str, Any]) -> Reply:
    """Insert a reply (`fields`: `Reply`'s columns) at once with a Core INSERT, in the
    session's transaction (an object flushed cost several times the statement); the reply
    as written, with its id, outside the session. It names only rows already written."""
    ident: int = session.connection().execute(_reply_insert(), fields).scalar_one()
    return Reply(id=ident, **fields)


def _threads() -> Table:
    return cast(Table, ReplyThread.__table__)


@functools.cache
def _thread_query() -> Select[Any]:
    # Built once: every reply asks it (building it cost as much as running it).
    threads = _threads()
    return select(threads).where(threads.c.subscriber_id == bindparam("subscriber"),
                                 threads.c.message_id == bindparam("message"))


@functools.cache
def _answered_in_query() -> Select[Any]:
    threads, answers = _threads(), cast(Table, ThreadAnswer.__table__)
    return select(threads).join(answers, answers.c.thread_id == threads.c.id).where(
        answers.c.message_id == bindparam("message"))


@functools.cache
def _thread_insert() -> Insert:
    return insert(_threads()).returning(_threads().c.id)


@functools.cache
def _thread_update() -> Update:
    threads = _threads()
    return update(threads).where(threads.c.id == bindparam("thread")).values(
        acknowledged_at=bindparam("acknowledged_at"), handled_at=bindparam("handled_at"))


def thread_for(session: Session, *, subscriber_id: int, message: Message,
               now: datetime) -> ReplyThread:
    """The thread an email answering `message` belongs to, or a new one (without an id).
    Read with Core, it is not an object of the session: a change to it is written with
    `keep_thread` (intake's reply writes its rows as statements of their own, which cost a
    fraction of flushing objects)."""
    connection = session.connection()
    if message.kind in THREAD_KINDS:  # a digest, a post…: sent to everyone, in no thread
        row = connection.execute(_answered_in_query(), {"message": message.id}).first()
        if row is not None:
            return ReplyThread(**row._mapping)
    row = connection.execute(_thread_query(), {"subscriber": subscriber_id,
                                               "message": message.id}).first()
    if row is not None:
        return ReplyThread(**row._mapping)
    return ReplyThread(ward_id=message.ward_id, subscriber_id=subscriber_id,
                       message_id=message.id, created_at=now, acknowledged_at=None,
                       handled_at=None)


def keep_thread(session: Session, thread: ReplyThread) -> None:
    """Write `thread` from `thread_for`: insert a new one (giving it its id), or write its
    acknowledgement and handling times."""
    connection = session.connection()
    if thread.id is None:
        thread.id = connection.execute(_thread_insert(), dict(
            ward_id=thread.ward_id, subscriber_id=thread.subscriber_id,
            message_id=thread.message_id, created_at=thread.created_at,
            acknowledged_at=thread.acknowledged_at, handled_at=thread.handled_at)).scalar_one()
        return
    connection.execute(_thread_update(), {"thread": thread.id,
                                          "acknowledged_at": thread.acknowledged_at,
                                          "handled_at": thread.handled_at})


@dataclass(frozen=True)
class ReplySummary:
    id: int
    thread_id: int
    ward: str
    received_at: datetime
    subject: str
    resident: str
    flagged: bool
    signals: tuple[str, ...]
    forwarded: bool
    handled: bool
    answers: str  # subject of the message the thread began with
    sender_verified: bool = True


@dataclass(frozen=True)
class ReplyView:
    summary: ReplySummary
    resident_email: str
    text: str
    quoted: str
    forward_error: str | None


def _summaries(session: Session, ward_code: str | None, reply_id: int | None,
               limit: int) -> list[tuple[ReplySummary, Reply, Subscriber]]:
    from subscriptions.subscribers import Subscriber

    query = (
        select(Reply, ReplyThread, Ward.code, Subscriber, Message.subject)
        .join(ReplyThread, ReplyThread.id == Reply.thread_id)
        .join(Ward, Ward.id == Reply.ward_id)
        .join(Subscriber, Subscriber.id == Reply.subscriber_id)
        .outerjoin(Message, Message.id == ReplyThread.message_id)
        .order_by(Reply.received_at.desc(), Reply.id.desc())
        .limit(limit)
    )
    if ward_code is not None:
        query = query.where(Ward.id == get_ward(session, ward_code).id)
    if reply_id is not None:
        query = query.where(Reply.id == reply_id)
    found = []
    rows = session.execute(query).all()
    forwards = forward_states(session, [reply.id for reply, *_ in rows])
    for reply, thread, code, subscriber, answered in rows:
        forward = forwards.get(reply.id)
        summary = ReplySummary(
            id=reply.id, thread_id=thread.id, ward=code, received_at=reply.received_at,
            subject=reply.subject, resident=subscriber.name or subscriber.email,
            flagged=reply.flagged,
            signals=crime_signals(reply.signals),
            forwarded=forward is not None and forward.forwarded_at is not None,
            handled=thread.handled_at is not None,
            answers=answered or "(a message no longer held)",
            sender_verified=sender_is_verified(reply.signals))
        found.append((summary, reply, subscriber))
    return found


def list_replies(session: Session, *, ward_code: str | None = None,
                 limit: int = 200) -> list[ReplySummary]:
    """Newest first; raises WardError for an unknown ward."""
    return [summary for summary, _, _ in _summaries(session, ward_code, None, limit)]


def show_reply(session: Session, reply_id: int) -> ReplyView | None:
    found = _summaries(session, None, reply_id, 1)
    if not found:
        return None
    summary, reply, subscriber = found[0]
    forward = forward_states(session, [reply.id]).get(reply.id)
    return ReplyView(summary=summary, resident_email=subscriber.email, text=reply.text,
                     quoted=reply.quoted, forward_error=forward.error if forward else None)
