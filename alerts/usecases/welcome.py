"""The welcome a resident's own confirmation brings: which wards they now hear from, when
each first digest comes (the ward's own schedule, `alerts.digests.schedule`), their
preferences link and how replies reach the team; queued once through the outbox, and the
same facts for the page their confirmation opens.

Only a confirmation by the resident's own link brings one: the confirmation email's button
(`confirmations.confirm`) or a scheme invitation's, accepted while the subscription waited
(`scheme_invitations.accept`); both confirm under `hold_resident` and queue through
`welcome_on_confirming`, so however often and at once a link is pressed, one goes. An
import with declared prior consent (`subscribers import --confirmed`, a coordinator's
list) adds people whose consent was given elsewhere, to someone they already hear from:
a burst of welcomes from a sender they never wrote to is the mail most often reported as
spam, and their first digest carries the same links.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from alerts.core.config import Settings
from alerts.delivery.fanout import queue_for_subscriber
from alerts.digests.schedule import FirstDigest, next_digest_at
from alerts.mail.messages import Message, MessageKind
from alerts.mail.render import render_welcome
from subscriptions.languages import Language
from subscriptions.links import Purpose, sign_reference
from subscriptions.subscribers import Frequency, Status, Subscriber, Subscription
from subscriptions.wards import Ward

# As urgent as the confirmation it follows: the resident has just pressed its button.
WELCOME_PRIORITY = 5


@dataclass(frozen=True)
class Welcome:
    """What a newly confirmed resident is told, by email and on the page."""

    subscriber_id: int
    # The first ward by name: the email belongs to it (its Reply-To reaches that team), and
    # its subscription's signed link opens the preferences of every ward.
    ward_id: int
    subscription_id: int
    preferences_url: str
    language: Language
    wards: tuple[FirstDigest, ...]


def welcome_for(session: Session, settings: Settings, subscriber_id: int,
                subscription_ids: Collection[int], *, now: datetime) -> Welcome | None:
    """The welcome for those of the named subscriptions that stand confirmed, A to Z by
    ward; None if none does."""
    rows = session.execute(
        select(Subscription.id, Subscription.nonce, Subscription.frequency, Ward.id,
               Ward.name, Ward.digest_cron, func.coalesce(Subscriber.language, Ward.language))
        .join(Ward, Ward.id == Subscription.ward_id)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(Subscription.subscriber_id == subscriber_id,
               Subscription.id.in_(list(subscription_ids)),
               Subscription.status == Status.CONFIRMED)
        .order_by(Ward.name, Ward.id)
    ).all()
    if not rows:
        return None
    scheduler = settings.scheduler
    wards = tuple(
        FirstDigest(name, Frequency(frequency),
                    next_digest_at(cron, scheduler.digest_cron, scheduler.timezone,
                                   Frequency(frequency), now))
        for _, _, frequency, _, name, cron, _ in rows)
    subscription_id, nonce, _, ward_id, _, _, language = rows[0]
    token = sign_reference(settings.web.secret_key, Purpose.PREFERENCES, subscription_id, nonce)
    return Welcome(subscriber_id, ward_id, subscription_id,
                   f"{settings.web.base_url.rstrip('/')}/preferences/{token}",
                   Language(language), wards)


def hold_resident(session: Session, subscriber_id: int) -> None:
    """Make one resident's confirmations run one after another, whichever link brings them:
    the first write takes their row's lock (PostgreSQL) or the database's write lock
    (SQLite) until commit, so of two at once (a double click, a link scanner pressing too)
    the second finds nothing pending left. Read their subscriptions after this, not before
    (refresh one already loaded)."""
    session.execute(update(Subscriber).where(Subscriber.id == subscriber_id)
                    .values(nonce=Subscriber.nonce)
                    .execution_options(synchronize_session=False))


def welcome_on_confirming(session: Session, settings: Settings, subscriber_id: int,
                          subscription_ids: Collection[int], *, confirmed: bool,
                          now: datetime) -> tuple[Welcome | None, bool]:
    """After the resident's own link has confirmed under `hold_resident`: the welcome for
    those of the subscriptions that stand confirmed (None if none does), and whether it was
    queued now, which only the press that `confirmed` something does."""
    welcome = welcome_for(session, settings, subscriber_id, subscription_ids, now=now)
    welcomed = confirmed and welcome is not None and queue_welcome(
        session, settings, welcome, now=now)
    return welcome, welcomed


def queue_welcome(session: Session, settings: Settings, welcome: Welcome, *,
                  now: datetime) -> bool:
    """Render the welcome in the resident's language and queue it for them; return whether
    it was queued (not to a suppressed address). The caller makes sure it is the first:
    see `welcome_on_confirming`. The sender fills in the preferences and unsubscribe links
    of the subscription to the message's ward, as for every resident's email."""
    rendered = render_welcome(welcome.wards, settings, now=now, language=welcome.language)
    message = Message(ward_id=welcome.ward_id, kind=MessageKind.WELCOME,
                      subject=rendered.subject, html=rendered.html, text=rendered.text,
                      calendar=None, language=welcome.language, created_at=now)
    session.add(message)
    session.flush()
    return queue_for_subscriber(session, message, welcome.subscriber_id,
                                priority=WELCOME_PRIORITY, now=now) == 1
