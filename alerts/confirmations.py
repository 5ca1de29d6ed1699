"""Double opt-in: a web sign-up is recorded pending, and one confirmation email (at most one
an hour per address) carries a signed link that expires; opening it confirms.

The link's token is an itsdangerous timed signature over the subscriber and the pending
subscriptions it confirms, keyed by `web.secret_key` with a salt of its own, so no other
token of the product can stand in for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.config import Settings
from alerts.delivery.fanout import queue_for_subscriber
from alerts.digests.render import render_confirmation
from alerts.messages import Message, MessageKind
from subscriptions.consent import Consent, ConsentMethod
from subscriptions.subscribers import Frequency, Subscription
from subscriptions.wards import Ward
from subscriptions.web_consent import confirm_subscriptions, request_subscription

CONFIRM_SALT = "alerts.confirm-subscription"
CONFIRM_MAX_AGE_HOURS = 48
# Ahead of digests, behind urgent alerts: a resident waits at the form for this one.
CONFIRM_PRIORITY = 5


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.web.secret_key, salt=CONFIRM_SALT)


def confirmation_token(settings: Settings, subscriber_id: int,
                       subscription_ids: tuple[int, ...]) -> str:
    return _serializer(settings).dumps({"s": subscriber_id, "ids": list(subscription_ids)})


@dataclass(frozen=True)
class ConfirmationLink:
    subscriber_id: int
    subscription_ids: tuple[int, ...]


def read_confirmation(settings: Settings, token: str, *,
                      max_age_seconds: int = CONFIRM_MAX_AGE_HOURS * 3600,
                      ) -> ConfirmationLink | None:
    """What a genuine, unexpired token confirms; None for a forged, altered or old one."""
    try:
        data = _serializer(settings).loads(token, max_age=max_age_seconds)
    except BadSignature:  # SignatureExpired is one too
        return None
    if not isinstance(data, dict):
        return None
    subscriber, ids = data.get("s"), data.get("ids")
    if not isinstance(subscriber, int) or not isinstance(ids, list) \
            or not all(isinstance(i, int) for i in ids):
        return None
    return ConfirmationLink(subscriber, tuple(ids))


def sign_up(session: Session, settings: Settings, *, email: str, ward_codes: list[str],
            frequency: Frequency, source: str, now: datetime) -> bool:
    """Record a web sign-up and queue its confirmation email when one is due; return
    whether one was queued. The caller commits; the page says the same either way."""
    consent = Consent(at=now, method=ConsentMethod.WEB_FORM, source=source)
    outcome = request_subscription(session, email, ward_codes, frequency, consent, now=now)
    if outcome.confirm is None:
        return False
    subscriber_id, subscription_ids = outcome.confirm
    token = confirmation_token(settings, subscriber_id, subscription_ids)
    url = f"{settings.web.base_url.rstrip('/')}/confirm/{token}"
    wards = session.execute(
        select(Ward.id, Ward.name).join(Subscription, Subscription.ward_id == Ward.id)
        .where(Subscription.id.in_(subscription_ids)).order_by(Ward.name)
    ).all()
    rendered = render_confirmation([name for _, name in wards], url, CONFIRM_MAX_AGE_HOURS,
                                   settings, now=now)
    # A message belongs to a ward (for List-Id and the send-time check): the first asked for.
    message = Message(ward_id=wards[0][0], kind=MessageKind.CONFIRM, subject=rendered.subject,
                      html=rendered.html, text=rendered.text, calendar=None, created_at=now)
    session.add(message)
    session.flush()
    return queue_for_subscriber(session, message, subscriber_id, priority=CONFIRM_PRIORITY,
                                now=now) == 1


def confirm(session: Session, settings: Settings, token: str, *, now: datetime) -> bool | None:
    """Open a confirmation link: None if the token is not genuine or has expired (nothing
    changes), otherwise True (confirming what was still pending)."""
    link = read_confirmation(settings, token)
    if link is None:
        return None
    confirm_subscriptions(session, link.subscriber_id, link.subscription_ids, now=now)
    return True
