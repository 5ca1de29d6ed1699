"""Complaints: a resident told their mailbox provider that one of our emails was spam.

A complaint reaches us as an ARF report (RFC 5965) mailed to the `bounces+TOKEN@` envelope
sender of the delivery (or to a bare feedback-loop address, with the original attached), or
as a provider's webhook event tied to a delivery. Either way it is believed only about the
delivery a signed token names, never about an address a report quotes. That delivery's
resident is suppressed (`SuppressionReason.COMPLAINT`: nothing is sent to them again) and
their subscription to the ward the message came from ends, without a note: a complainer is
not mailed again. A complaint about staff mail, or naming no delivery we hold, suppresses
nobody and is only journalled.

The reason kept (in the suppression entry and the journal) is built from the report's
machine fields (Feedback-Type, User-Agent, Arrival-Date) or the provider's event name: never
an address, never text from the message.

`record_complaint` is the entry point for provider webhooks; intake calls `act_on_complaint`
and journals the email itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from alerts.delivery.outbox import Delivery
from alerts.inbound.classify import Kind
from alerts.inbound.commands import subscription_of
from alerts.inbound.journal import InboundRecord, Via, already_seen
from alerts.mail.messages import Message
from alerts.sources.sanitise import shorten
from subscriptions.subscribers import Status, Subscriber, Subscription
from subscriptions.suppression import SuppressionReason, suppress
from subscriptions.web_consent import unsubscribe_subscription


@dataclass(frozen=True)
class ComplaintOutcome:
    """What a complaint did, in words safe for the journal and logs."""

    action: str
    suppressed: bool
    subscriber_id: int | None = None
    ward_id: int | None = None
    # The journal row (`record_complaint` only).
    record_id: int | None = None
    # The same event was recorded before: nothing was done again.
    duplicate: bool = False


def act_on_complaint(session: Session, delivery: Delivery | None, *, detail: str,
                     now: datetime) -> ComplaintOutcome:
    """Suppress the resident of `delivery` and end their subscription to its ward.

    `delivery` is the one a verified token named (None when none did); `detail` says why, in
    safe words (kept in the suppression entry)."""
    if delivery is None:
        return ComplaintOutcome("recorded: it names no delivery of this service; "
                                "nobody was suppressed", False)
    if delivery.subscriber_id is None:
        return ComplaintOutcome("recorded: a complaint about staff mail; nobody was suppressed",
                                False)
    subscriber = session.get(Subscriber, delivery.subscriber_id)
    message = session.get(Message, delivery.message_id)
    ward_id = message.ward_id if message is not None else None
    if subscriber is None:
        return ComplaintOutcome("recorded: the resident is no longer held", False,
                                ward_id=ward_id)
    suppress(session, subscriber.email, SuppressionReason.COMPLAINT,
             shorten(f"complaint: {detail}", 300), now=now)
    ended = False
    ident = subscription_of(session, subscriber.id, ward_id) if ward_id is not None else None
    subscription = session.get(Subscription, ident) if ident is not None else None
    if subscription is not None and subscription.status != Status.UNSUBSCRIBED:
        ended = unsubscribe_subscription(session, subscription.id, everywhere=False, now=now)
    action = "suppressed (complaint); unsubscribed from the ward" if ended \
        else "suppressed (complaint)"
    return ComplaintOutcome(action, True, subscriber_id=subscriber.id, ward_id=ward_id)


def record_complaint(session: Session, delivery_id: int | None, *, source: str, detail: str,
                     now: datetime, event_id: str | None = None) -> ComplaintOutcome:
    """A complaint a provider reported about the delivery `delivery_id` (which the caller read
    from a signed reference it verified): act on it and journal it, once.

    `source` names the provider ("ses", "sendgrid", ...), `detail` the event in safe words
    (its type and feedback type, no address). `event_id`, the provider's own id for the
    event when it has one, makes a repeated call a no-op (`duplicate`); without one, the same
    source, delivery and detail count as the same event. Does not commit."""
    key = hashlib.sha256(
        f"complaint\n{source}\n{delivery_id}\n{event_id or detail}".encode()).hexdigest()
    seen = already_seen(session, key)
    if seen is not None:
        return ComplaintOutcome(f"already recorded as inbound #{seen.id}", False,
                                subscriber_id=seen.subscriber_id, ward_id=seen.ward_id,
                                record_id=seen.id, duplicate=True)
    delivery = session.get(Delivery, delivery_id) if delivery_id is not None else None
    outcome = act_on_complaint(session, delivery, detail=f"{source}: {detail}", now=now)
    record = InboundRecord(
        content_hash=key, received_at=now, via=Via.WEBHOOK, kind=Kind.COMPLAINT,
        action=shorten(outcome.action, 200), reason=shorten(f"{source}: {detail}", 300),
        delivery_id=delivery.id if delivery is not None else None,
        subscriber_id=outcome.subscriber_id, ward_id=outcome.ward_id)
    session.add(record)
    session.flush()
    return ComplaintOutcome(outcome.action, outcome.suppressed, outcome.subscriber_id,
                            outcome.ward_id, record.id)
