"""A resident's data, on request: a signed, expiring link by email, then download or erasure.

`subscriptions.personal_data` holds and erases who the resident is and what they agreed
to; this module adds what the pipeline holds about them (the deliveries sent to them, the
digest progress of their subscriptions, the messages written for them alone) and queues
the email with the link.

The link's token is an itsdangerous timed signature with a salt of its own, over the
subscriber's id and a seal of their row's nonce (see subscriptions.links): an erased
resident's old link opens nobody's data, even a newcomer's given the same id or address.
The payload (which anyone can read) holds no address.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session, aliased

from alerts.core.config import Settings
from alerts.delivery.fanout import queue_for_subscriber
from alerts.delivery.outbox import Delivery
from alerts.digests.ledger import SubscriptionProgress
from alerts.inbound.journal import InboundRecord, erase_held_copies
from alerts.inbound.replies import Reply, ReplyThread, ThreadAnswer
from alerts.mail.messages import PERSONAL_KINDS, Message, MessageKind
from alerts.mail.render import render_data_request
from subscriptions.links import Purpose, nonces_in, open_sealed_link, sealed_link
from subscriptions.personal_data import (
    claim_data_request_slot,
    erase_subscriber,
    export_subscriber,
    find_subscriber_id,
)
from subscriptions.subscribers import Status, Subscriber, Subscription
from subscriptions.wards import Ward

DATA_SALT = "alerts.my-data"
DATA_MAX_AGE_HOURS = 24
# As urgent as a confirmation: the resident is waiting for it.
DATA_PRIORITY = 5


def data_token(settings: Settings, subscriber_id: int, nonce: str) -> str:
    return sealed_link(settings.web.secret_key, DATA_SALT, Purpose.MY_DATA, subscriber_id, nonce)


def read_data_link(session: Session, settings: Settings, token: str, *,
                   max_age_seconds: int = DATA_MAX_AGE_HOURS * 3600) -> int | None:
    """The subscriber a genuine, unexpired link names, if they are still held; else None."""
    data = open_sealed_link(settings.web.secret_key, DATA_SALT, Purpose.MY_DATA, token,
                            nonces_in(session, Subscriber), max_age_seconds=max_age_seconds)
    return None if data is None else int(data["s"])


def request_data(session: Session, settings: Settings, email: str, *, now: datetime) -> bool:
    """Queue the "my data" email if the address is held and none went in the last hour;
    return whether one was queued. The caller commits; the page says the same either way."""
    subscriber_id = find_subscriber_id(session, email)
    if subscriber_id is None:
        return False
    # A message belongs to a ward (for List-Id and the send-time check): a live one first.
    ward_id = session.scalar(
        select(Ward.id).join(Subscription, Subscription.ward_id == Ward.id)
        .where(Subscription.subscriber_id == subscriber_id)
        .order_by(Subscription.status == Status.UNSUBSCRIBED, Ward.name).limit(1)
    )
    if ward_id is None or not claim_data_request_slot(session, subscriber_id, now=now):
        return False
    nonce = session.scalars(select(Subscriber.nonce)
                            .where(Subscriber.id == subscriber_id)).one()
    token = data_token(settings, subscriber_id, nonce)
    url = f"{settings.web.base_url.rstrip('/')}/my-data/{token}"
    rendered = render_data_request(url, DATA_MAX_AGE_HOURS, settings, now=now)
    message = Message(ward_id=ward_id, kind=MessageKind.DATA_REQUEST, subject=rendered.subject,
                      html=rendered.html, text=rendered.text, calendar=None, created_at=now)
    session.add(message)
    session.flush()
    return queue_for_subscriber(session, message, subscriber_id, priority=DATA_PRIORITY,
                                now=now) == 1


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def export_data(session: Session, subscriber_id: int, *, now: datetime) -> dict[str, Any] | None:
    """Everything held about the subscriber, JSON-ready; None if they are gone.

    Deliveries are listed by subject, ward, date and outcome; their bodies were written
    for a whole ward and say nothing about the resident.
    """
    held = export_subscriber(session, subscriber_id)
    if held is None:
        return None
    deliveries = session.execute(
        select(Message.subject, Message.kind, Ward.code, Delivery.created_at,
               Delivery.sent_at, Delivery.status)
        .join(Message, Message.id == Delivery.message_id)
        .join(Ward, Ward.id == Message.ward_id)
        .where(Delivery.subscriber_id == subscriber_id)
        .order_by(Delivery.created_at, Delivery.id)
    ).all()
    replies = session.execute(
        select(Reply.received_at, Ward.code, Reply.subject, Reply.text, Reply.flagged)
        .join(Ward, Ward.id == Reply.ward_id)
        .where(Reply.subscriber_id == subscriber_id)
        .order_by(Reply.received_at, Reply.id)
    ).all()
    return {
        "exported_at": now.isoformat(),
        **held,
        "replies": [
            {"received_at": _when(received), "ward": ward, "subject": subject, "text": text,
             "flagged_as_possible_crime_report": flagged}
            for received, ward, subject, text, flagged in replies
        ],
        "deliveries": [
            {"subject": subject, "kind": kind, "ward": ward, "queued_at": _when(queued),
             "sent_at": _when(sent), "status": status}
            for subject, kind, ward, queued, sent, status in deliveries
        ],
    }


def erase_data(session: Session, subscriber_id: int, *, now: datetime) -> bool:
    """Erase the subscriber and everything of theirs; False if they are already gone.

    Only a hash of the address stays, on the suppression list. Explicit deletes, not the
    foreign keys' cascade, so that nothing depends on a store enforcing them.
    """
    if session.get(Subscriber, subscriber_id) is None:
        return False
    own = select(Subscription.id).where(Subscription.subscriber_id == subscriber_id)
    other = aliased(Delivery)
    personal_ids = list(session.scalars(
        select(Delivery.message_id).join(Message, Message.id == Delivery.message_id)
        .where(Delivery.subscriber_id == subscriber_id, Message.kind.in_(PERSONAL_KINDS),
               ~exists().where(other.message_id == Delivery.message_id,
                               other.subscriber_id != subscriber_id))
    ))
    session.execute(delete(SubscriptionProgress)
                    .where(SubscriptionProgress.subscription_id.in_(own))
                    .execution_options(synchronize_session=False))
    # Their replies (text, quote, original email) and threads go, with the forwards of them
    # to the ward team (which hold their words and address), sent or not; the journal keeps
    # only what kind of mail came in, no longer linked to them.
    forwards = list(session.scalars(select(Message.id).where(Message.reply_id.in_(
        select(Reply.id).where(Reply.subscriber_id == subscriber_id)))))
    if forwards:
        session.execute(delete(Delivery).where(Delivery.message_id.in_(forwards))
                        .execution_options(synchronize_session=False))
        session.execute(delete(Message).where(Message.id.in_(forwards))
                        .execution_options(synchronize_session=False))
    session.execute(delete(Reply).where(Reply.subscriber_id == subscriber_id)
                    .execution_options(synchronize_session=False))
    own_threads = select(ReplyThread.id).where(ReplyThread.subscriber_id == subscriber_id)
    session.execute(delete(ThreadAnswer).where(ThreadAnswer.thread_id.in_(own_threads))
                    .execution_options(synchronize_session=False))
    session.execute(delete(ReplyThread).where(ReplyThread.subscriber_id == subscriber_id)
                    .execution_options(synchronize_session=False))
    erase_held_copies(session, subscriber_id)  # their emails kept in review/, dead-letter/
    session.execute(update(InboundRecord).where(InboundRecord.subscriber_id == subscriber_id)
                    .values(subscriber_id=None, delivery_id=None)
                    .execution_options(synchronize_session=False))
    own_deliveries = select(Delivery.id).where(Delivery.subscriber_id == subscriber_id)
    session.execute(update(InboundRecord).where(InboundRecord.delivery_id.in_(own_deliveries))
                    .values(delivery_id=None).execution_options(synchronize_session=False))
    session.execute(delete(Delivery).where(Delivery.subscriber_id == subscriber_id)
                    .execution_options(synchronize_session=False))
    if personal_ids:
        session.execute(delete(Message).where(Message.id.in_(personal_ids))
                        .execution_options(synchronize_session=False))
    return erase_subscriber(session, subscriber_id, now=now)
