"""Acting on a bounce: a hard failure suppresses the address at once; soft failures are
counted and suppress it when `inbound.soft_bounce_limit` arrive within
`inbound.soft_bounce_days`.

The subscriber is found through the signed `bounces+TOKEN` envelope sender the delivery
used (it names the delivery, whatever address the report quotes, so forwarding mailboxes are
matched too) and otherwise through the failed addresses the report names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.config import InboundSettings
from alerts.inbound.classify import Classification, Severity
from alerts.inbound.journal import soft_bounces_since
from subscriptions.addresses import AddressError, normalise_address
from subscriptions.subscribers import Subscriber
from subscriptions.suppression import SuppressionReason, is_suppressed, suppress


@dataclass(frozen=True)
class BounceOutcome:
    action: str
    subscriber_ids: tuple[int, ...]
    suppressed: int


def bounced_subscribers(session: Session, classification: Classification,
                        delivery_subscriber_id: int | None) -> list[Subscriber]:
    found: list[Subscriber] = []
    if delivery_subscriber_id is not None:
        subscriber = session.get(Subscriber, delivery_subscriber_id)
        if subscriber is not None:
            found.append(subscriber)
    if not found and classification.failed_recipients:
        addresses = []
        for address in classification.failed_recipients:
            try:
                addresses.append(normalise_address(address))
            except AddressError:
                continue  # detectors sometimes return fragments; they match no one
        if addresses:
            found.extend(session.scalars(select(Subscriber).where(Subscriber.email.in_(addresses))
                                         .order_by(Subscriber.id)))
    return found


def apply_bounce(session: Session, inbound: InboundSettings, classification: Classification,
                 *, delivery_subscriber_id: int | None, now: datetime) -> BounceOutcome:
    subscribers = bounced_subscribers(session, classification, delivery_subscriber_id)
    if not subscribers:
        return BounceOutcome("recorded: no subscriber matched", (), 0)
    detail = classification.reason or "bounce"
    suppressed = 0
    actions: list[str] = []
    for subscriber in subscribers:
        if is_suppressed(session, subscriber.email):
            actions.append("already suppressed")
            continue
        if classification.severity == Severity.HARD:
            suppress(session, subscriber.email, SuppressionReason.HARD_BOUNCE,
                     f"hard bounce: {detail}", now=now)
            suppressed += 1
            actions.append("suppressed (hard bounce)")
            continue
        # This bounce is not in the journal yet: count it with the earlier ones.
        count = soft_bounces_since(session, subscriber.id, days=inbound.soft_bounce_days,
                                   now=now) + 1
        if count >= inbound.soft_bounce_limit:
            suppress(session, subscriber.email, SuppressionReason.HARD_BOUNCE,
                     f"{count} soft bounces within {inbound.soft_bounce_days} days: {detail}",
                     now=now)
            suppressed += 1
            actions.append(f"suppressed ({count} soft bounces)")
        else:
            actions.append(f"soft bounce {count} of {inbound.soft_bounce_limit}")
    return BounceOutcome("; ".join(dict.fromkeys(actions)),
                         tuple(s.id for s in subscribers), suppressed)
