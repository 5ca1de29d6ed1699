"""Commands by email: `unsubscribe` to the List-Unsubscribe mailto address, or a reply whose
whole text is "unsubscribe" or "stop". The subscription leaves at once and the resident gets
one note saying so; asking again changes nothing and sends nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.core.config import Settings
from alerts.inbound.answers import confirm_left
from subscriptions.subscribers import Status, Subscription
from subscriptions.wards import Ward
from subscriptions.web_consent import unsubscribe_subscription


def subscription_of(session: Session, subscriber_id: int, ward_id: int) -> int | None:
    return session.scalar(select(Subscription.id).where(
        Subscription.subscriber_id == subscriber_id, Subscription.ward_id == ward_id))


def unsubscribe_by_email(session: Session, settings: Settings, subscription_id: int, *,
                         may_answer: bool, now: datetime) -> str:
    """Unsubscribe; return what was done, in words safe for the journal."""
    subscription = session.get(Subscription, subscription_id)
    if subscription is None:
        return "no such subscription: nothing changed"
    if subscription.status == Status.UNSUBSCRIBED:
        return "already unsubscribed: nothing sent"
    unsubscribe_subscription(session, subscription_id, everywhere=False, now=now)
    if not may_answer:
        return "unsubscribed (no note: the sender must not be answered)"
    ward = session.get_one(Ward, subscription.ward_id)
    if confirm_left(session, settings, ward, subscription.subscriber_id, now=now):
        return "unsubscribed; note queued"
    return "unsubscribed (no note: the address is suppressed)"
