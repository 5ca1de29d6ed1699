"""Fan-out: one message for a ward becomes one outbox row per confirmed subscriber.

A single INSERT ... SELECT runs inside the database, so memory stays flat however large
the ward, and it skips (message, subscriber) pairs already queued, so queueing a message
twice sends it once.

Staff mail (`queue_staff_mail`) is one message and one row to one staff address, with the
email built whole: the sender applies no resident rule to it, but retries and counts it like
the rest.

Staff mail and the acknowledgement inbound mail queues for every reply it takes in
(`insert_for_subscriber`) write their rows with Core INSERTs and return ids, not objects of
the session, because an object's flush cost several times its statement
(bench/inbound_process.py).
"""

from __future__ import annotations

import functools
from datetime import datetime
from email.message import EmailMessage
from typing import Any, cast

from sqlalchemy import CursorResult, Insert, Select, Table, bindparam, insert, literal, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from alerts.core.db import dialect_insert
from alerts.delivery.outbox import Delivery, DeliveryStatus
from alerts.mail.messages import MAX_SUBJECT, STAFF_KINDS, Message, MessageKind
from subscriptions.base import utcnow
from subscriptions.links import new_nonce_sql
from subscriptions.subscribers import Subscriber, Subscription, receiving
from subscriptions.suppression import Suppression


def fan_out(
    session: Session,
    message: Message,
    *,
    now: datetime | None = None,
    audience: ColumnElement[bool] | None = None,
    priority: int = 0,
) -> int:
    """Queue `message` for every confirmed subscriber of its ward; return rows added.

    `audience` narrows the subscriptions further (a frequency, a point in the ledger);
    rows with a higher `priority` are claimed first. Pending and unsubscribed
    subscriptions get nothing, nor does an address on the suppression list. The caller
    commits.
    """
    at = now or utcnow()
    condition = (Subscription.ward_id == message.ward_id) & receiving()
    if audience is not None:
        condition = condition & audience
    dialect = session.get_bind().dialect.name
    subscribers = select(
        literal(message.id, Delivery.message_id.type),
        Subscription.subscriber_id,
        literal(DeliveryStatus.QUEUED.value, Delivery.status.type),
        literal(0, Delivery.attempts.type),
        literal(at, Delivery.next_attempt_at.type),
        literal(at, Delivery.created_at.type),
        literal(priority, Delivery.priority.type),
        # Made per row by the database: each email's reply+ and bounces+ tokens are bound
        # to its own.
        new_nonce_sql(dialect),
    ).where(condition)
    columns = ["message_id", "subscriber_id", "status", "attempts", "next_attempt_at",
               "created_at", "priority", "nonce"]
    statement = dialect_insert(session, Delivery).from_select(
        columns, subscribers).on_conflict_do_nothing(index_elements=["message_id", "subscriber_id"])
    # SQLAlchemy keeps an INSERT's rowcount only when asked (psycopg reports it, -1 otherwise).
    result = cast(CursorResult[Any],
                  session.execute(statement.execution_options(preserve_rowcount=True)))
    return result.rowcount


def queue_for_subscriber(
    session: Session,
    message: Message,
    subscriber_id: int,
    *,
    priority: int = 0,
    now: datetime | None = None,
) -> int:
    """Queue `message` for one subscriber, whatever the state of their subscription; return
    rows added (0 if already queued or the address is suppressed).

    For the confirmation email, the one message a pending subscription may get; the
    sender still refuses anything else to an unconfirmed address.
    """
    at = now or utcnow()
    if suppressed_subscriber(session, subscriber_id):
        return 0
    if session.scalar(select(Delivery.id).where(Delivery.message_id == message.id,
                                                Delivery.subscriber_id == subscriber_id)):
        return 0
    session.add(Delivery(message_id=message.id, subscriber_id=subscriber_id,
                         status=DeliveryStatus.QUEUED, attempts=0, next_attempt_at=at,
                         created_at=at, priority=priority))
    session.flush()
    return 1


def queue_staff_mail(
    session: Session,
    kind: MessageKind,
    email: EmailMessage,
    *,
    to: str,
    ward_id: int | None = None,
    reply_id: int | None = None,
    priority: int = 0,
    now: datetime | None = None,
) -> int:
    """Queue `email` (built whole) for the staff address `to`: a message of `kind`, one of
    STAFF_KINDS, and its one outbox row, written at once with Core INSERTs in the caller's
    transaction (not committed); the message's id."""
    if kind not in STAFF_KINDS:
        raise ValueError(f"{kind!r} is not a kind of staff mail")
    at = now or utcnow()
    connection = session.connection()
    message_id: int = connection.execute(_message_insert(), dict(
        ward_id=ward_id, kind=kind, subject=str(email["Subject"])[:MAX_SUBJECT], html="",
        text="", email=email.as_bytes(), reply_id=reply_id, created_at=at)).scalar_one()
    connection.execute(_delivery_insert(), dict(
        message_id=message_id, recipient=to, status=DeliveryStatus.QUEUED, attempts=0,
        next_attempt_at=at, created_at=at, priority=priority))
    return message_id


@functools.cache
def _message_insert() -> Insert:
    table = cast(Table, Message.__table__)
    return insert(table).returning(table.c.id)


@functools.cache
def _delivery_insert() -> Insert:
    return insert(cast(Table, Delivery.__table__))


@functools.cache
def _suppressed_query() -> Select[str]:
    # Built once: intake asks it for every acknowledgement.
    return (select(Suppression.address_hash)
            .join(Subscriber, Subscriber.email == Suppression.email)
            .where(Subscriber.id == bindparam("subscriber")))


def suppressed_subscriber(session: Session, subscriber_id: int) -> bool:
    """Whether the subscriber's address is on the suppression list."""
    return session.scalar(_suppressed_query(), {"subscriber": subscriber_id}) is not None


def insert_for_subscriber(session: Session, fields: dict[str, Any], subscriber_id: int, *,
                          priority: int, now: datetime) -> int:
    """Store a new message (`fields`: `Message`'s columns) and queue it for one subscriber,
    whatever the state of their subscription, as `queue_for_subscriber` does but with no
    check: the caller has read `suppressed_subscriber` in this transaction. The message's
    id. Core INSERTs at once, in the session's transaction; they name only rows written."""
    connection = session.connection()
    message_id: int = connection.execute(_message_insert(), fields).scalar_one()
    connection.execute(_delivery_insert(), dict(
        message_id=message_id, subscriber_id=subscriber_id, status=DeliveryStatus.QUEUED,
        attempts=0, next_attempt_at=now, created_at=now, priority=priority))
    return message_id

