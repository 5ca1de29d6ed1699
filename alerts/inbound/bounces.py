"""Acting on a bounce: a hard failure suppresses the address at once; soft failures are
counted and suppress it when `inbound.soft_bounce_limit` arrive within
`inbound.soft_bounce_days`.

The subscriber is the one the signed `bounces+TOKEN` envelope sender of the delivery names
(whatever address the report quotes, so forwarding mailboxes are matched too), and only
them: intake acts on no bounce without that token, and the addresses a report names are
never looked up, since anyone can write a report naming anyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from alerts.core.config import InboundSettings
from alerts.inbound.classify import Classification, Severity
from alerts.inbound.journal import soft_bounces_since
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
