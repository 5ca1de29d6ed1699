"""Acting on a bounce: a hard failure suppresses the address at once; soft failures are
counted and suppress it when `inbound.soft_bounce_limit` arrive within
`inbound.soft_bounce_days`.

The subscriber is the one the signed `bounces+TOKEN` envelope sender of the delivery names
(whatever address the report quotes, so forwarding mailboxes are matched too), and only
them: intake acts on no bounce without that token, and the addresses a report names are
never looked up, since anyone can write a report naming anyone. A provider's bounce event
(`record_bounce`, from the webhooks) is believed the same way: only about the delivery its
signed reference names.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from alerts.core.config import InboundSettings
from alerts.delivery.outbox import Delivery
from alerts.inbound.classify import Classification, Kind, Severity
from alerts.inbound.journal import InboundRecord, Via, already_seen, soft_bounces_since
from alerts.mail.messages import Message
from alerts.sources.sanitise import shorten
from subscriptions.subscribers import Subscriber
from subscriptions.suppression import SuppressionReason, is_suppressed, suppress


@dataclass(frozen=True)
class BounceOutcome:
    action: str
    suppressed: bool


def apply_bounce(session: Session, inbound: InboundSettings, classification: Classification,
                 *, subscriber_id: int | None, now: datetime) -> BounceOutcome:
    """Suppress or count the bounce for the subscriber the bounces+ token named."""
    subscriber = session.get(Subscriber, subscriber_id) if subscriber_id is not None else None
    if subscriber is None:
        return BounceOutcome("recorded: no subscriber matched", False)
    if is_suppressed(session, subscriber.email):
        return BounceOutcome("already suppressed", False)
    detail = classification.reason or "bounce"
    if classification.severity == Severity.HARD:
        suppress(session, subscriber.email, SuppressionReason.HARD_BOUNCE,
                 f"hard bounce: {detail}", now=now)
        return BounceOutcome("suppressed (hard bounce)", True)
    # This bounce is not in the journal yet: count it with the earlier ones.
    count = soft_bounces_since(session, subscriber.id, days=inbound.soft_bounce_days,
                               now=now) + 1
    if count < inbound.soft_bounce_limit:
        return BounceOutcome(f"soft bounce {count} of {inbound.soft_bounce_limit}", False)
    suppress(session, subscriber.email, SuppressionReason.HARD_BOUNCE,
             f"{count} soft bounces within {inbound.soft_bounce_days} days: {detail}", now=now)
    return BounceOutcome(f"suppressed ({count} soft bounces)", True)


def record_bounce(session: Session, inbound: InboundSettings, classification: Classification,
                  delivery_id: int | None, *, source: str, event_id: str,
                  now: datetime) -> BounceOutcome:
    """A bounce a provider reported about the delivery `delivery_id` (which the caller read
    from a signed reference it verified): act on it as on an inbound bounce and journal it
    (via webhook), once per `source` and `event_id`. Does not commit."""
    key = hashlib.sha256(f"bounce\n{source}\n{event_id}".encode()).hexdigest()
    if already_seen(session, key) is not None:
        return BounceOutcome("already recorded", False)
    delivery = session.get(Delivery, delivery_id) if delivery_id is not None else None
    subscriber_id = delivery.subscriber_id if delivery is not None else None
    outcome = apply_bounce(session, inbound, classification, subscriber_id=subscriber_id,
                           now=now)
    session.add(InboundRecord(
        content_hash=key, received_at=now, via=Via.WEBHOOK, kind=Kind.BOUNCE,
        severity=classification.severity, status=classification.status,
        action=shorten(outcome.action, 200), reason=shorten(classification.reason, 300),
        delivery_id=delivery.id if delivery is not None else None,
        subscriber_id=subscriber_id,
        ward_id=_ward_of(session, delivery)))
    session.flush()
    return outcome


def _ward_of(session: Session, delivery: Delivery | None) -> int | None:
    message = session.get(Message, delivery.message_id) if delivery is not None else None
    return message.ward_id if message is not None else None
