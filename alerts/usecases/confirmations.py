"""Double opt-in: a web sign-up, or an import without declared prior consent, is recorded
pending, and one confirmation email (at most one an hour per address) carries a signed link
that expires; it opens a page whose button confirms (opening the link alone changes nothing),
and the press that confirms queues one welcome email (`alerts.usecases.welcome`).

The link's token is an itsdangerous timed signature over the subscriber, a seal of their
row's nonce (see subscriptions.links) and the pending subscriptions it confirms, keyed by
`web.secret_key` with a salt of its own, so no other token of the product can stand in for
it, and an erased resident's link confirms nobody.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from alerts.core.config import Settings
from alerts.delivery.outbox import Delivery, DeliveryStatus
from alerts.mail.marks import CONFIRM_URL_MARK
from alerts.mail.messages import Message, MessageKind
from alerts.mail.render import ADDED_FOR_YOU, SIGNED_UP, Rendered, render_confirmation
from alerts.usecases.welcome import Welcome, hold_resident, welcome_on_confirming
from subscriptions.consent import Consent, ConsentMethod
from subscriptions.links import Purpose, nonces_in, open_sealed_link, sealed_link
from subscriptions.subscribers import Frequency, Subscriber, Subscription
from subscriptions.suppression import Suppression
from subscriptions.wards import Ward
from subscriptions.web_consent import (
    awaiting_confirmation,
    claim_confirmation_slots,
    confirm_subscriptions,
    request_subscription,
)

CONFIRM_SALT = "alerts.confirm-subscription"
CONFIRM_MAX_AGE_HOURS = 48
# Ahead of digests, behind urgent alerts: a resident waits at the form for this one.
CONFIRM_PRIORITY = 5


def confirmation_token(settings: Settings, subscriber_id: int, nonce: str,
                       subscription_ids: tuple[int, ...]) -> str:
    return sealed_link(settings.web.secret_key, CONFIRM_SALT, Purpose.CONFIRM, subscriber_id,
                       nonce, ids=list(subscription_ids))


@dataclass(frozen=True)
class ConfirmationLink:
    subscriber_id: int
    subscription_ids: tuple[int, ...]


def read_confirmation(session: Session, settings: Settings, token: str, *,
                      max_age_seconds: int = CONFIRM_MAX_AGE_HOURS * 3600,
                      ) -> ConfirmationLink | None:
    """What a genuine, unexpired token confirms; None for a forged, altered or old one, or
    one for a resident who is no longer held (erased, even if the address came back)."""
    data = open_sealed_link(settings.web.secret_key, CONFIRM_SALT, Purpose.CONFIRM, token,
                            nonces_in(session, Subscriber), max_age_seconds=max_age_seconds)
    ids = None if data is None else data.get("ids")
    if data is None or not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
        return None
    return ConfirmationLink(int(data["s"]), tuple(ids))


def sign_up(session: Session, settings: Settings, *, email: str, ward_codes: list[str],
            frequency: Frequency, source: str, now: datetime) -> bool:
    """Record a web sign-up and queue its confirmation email when one is due; return
    whether one was queued. The caller commits; the page says the same either way."""
    consent = Consent(at=now, method=ConsentMethod.WEB_FORM, source=source)
    outcome = request_subscription(session, email, ward_codes, frequency, consent, now=now)
    if outcome.confirm is None:
        return False
    subscriber_id, subscription_ids = outcome.confirm
    return queue_confirmations(session, settings, {subscriber_id: subscription_ids},
                               now=now) == 1


@dataclass(frozen=True)
class ImportConfirmations:
    queued: int
    # Addresses already sent a confirmation in the last hour: their new wards wait for the
    # next one they ask for, so an import cannot be used to mail-bomb anyone either.
    held_back: int


def confirm_imported(session: Session, settings: Settings, consent: Consent, *,
                     now: datetime) -> ImportConfirmations:
    """Queue one confirmation email for each address that the import with this consent
    left pending (at most one an hour per address). The caller commits."""
    waiting = awaiting_confirmation(session, consent)
    claimed = claim_confirmation_slots(session, waiting, now=now)
    queued = queue_confirmations(
        session, settings, {s: ids for s, ids in waiting.items() if s in claimed}, now=now,
        why=SIGNED_UP if consent.method == ConsentMethod.WEB_FORM else ADDED_FOR_YOU)
    return ImportConfirmations(queued, len(waiting) - len(claimed))


def _chunks(values: Sequence[int], size: int = 500) -> Iterator[Sequence[int]]:
    for at in range(0, len(values), size):
        yield values[at : at + size]


def queue_confirmations(session: Session, settings: Settings,
                        waiting: Mapping[int, Sequence[int]], *, now: datetime,
                        why: str = SIGNED_UP) -> int:
    """Queue a confirmation email for each subscriber, its link confirming the pending
    subscriptions named; return how many were queued. The throttle is the caller's; a
    suppressed address gets nothing.

    Each email is written for one resident (its link is theirs), but the emails for the
    same wards are rendered once and differ only by the link swapped in: rendering costs
    milliseconds, a swap microseconds, and an import may ask thousands at once.
    """
    subscriber_ids = sorted(waiting)
    suppressed: set[int] = set()
    nonces: dict[int, str] = {}
    for chunk in _chunks(subscriber_ids):
        nonces.update((ident, nonce) for ident, nonce in session.execute(
            select(Subscriber.id, Subscriber.nonce).where(Subscriber.id.in_(chunk))))
        suppressed.update(session.scalars(
            select(Subscriber.id).join(Suppression, Suppression.email == Subscriber.email)
            .where(Subscriber.id.in_(chunk))))
    wards: dict[int, tuple[int, str]] = {}
    for chunk in _chunks(sorted({i for ids in waiting.values() for i in ids})):
        wards.update((ident, (ward_id, name)) for ident, ward_id, name in session.execute(
            select(Subscription.id, Ward.id, Ward.name)
            .join(Ward, Ward.id == Subscription.ward_id).where(Subscription.id.in_(chunk))))
    base = settings.web.base_url.rstrip("/")
    rendered: dict[tuple[str, ...], Rendered] = {}
    messages: list[dict[str, Any]] = []
    recipients: list[int] = []
    queued = 0
    for subscriber_id in subscriber_ids:
        ids = tuple(waiting[subscriber_id])
        named = sorted({wards[i] for i in ids if i in wards}, key=lambda ward: ward[1])
        if subscriber_id in suppressed or subscriber_id not in nonces or not named:
            continue
        names = tuple(name for _, name in named)
        if names not in rendered:
            rendered[names] = render_confirmation(list(names), CONFIRM_URL_MARK,
                                                  CONFIRM_MAX_AGE_HOURS, settings, now=now,
                                                  why=why)
        token = confirmation_token(settings, subscriber_id, nonces[subscriber_id], ids)
        own = rendered[names].with_own_link(CONFIRM_URL_MARK, f"{base}/confirm/{token}")
        # A message belongs to a ward (for List-Id and the send-time check): the first named.
        messages.append({
            "ward_id": named[0][0], "kind": MessageKind.CONFIRM.value,
            "subject": own.subject, "calendar": None, "created_at": now,
            "html": own.html, "text": own.text,
        })
        recipients.append(subscriber_id)
        # In batches, so memory stays flat however many an import asks.
        if len(messages) == 1000:
            queued += _insert_confirmations(session, messages, recipients, now=now)
            messages, recipients = [], []
    return queued + _insert_confirmations(session, messages, recipients, now=now)


def _insert_confirmations(session: Session, messages: list[dict[str, Any]],
                          recipients: list[int], *, now: datetime) -> int:
    if not messages:
        return 0
    message_ids = session.scalars(
        insert(Message).returning(Message.id, sort_by_parameter_order=True), messages).all()
    session.execute(insert(Delivery), [
        {"message_id": message_id, "subscriber_id": subscriber_id,
         "status": DeliveryStatus.QUEUED.value, "attempts": 0, "next_attempt_at": now,
         "created_at": now, "priority": CONFIRM_PRIORITY}
        for message_id, subscriber_id in zip(message_ids, recipients, strict=True)
    ])
    return len(recipients)


def preview_confirmation(session: Session, settings: Settings, token: str) -> list[str] | None:
    """What a confirmation link would confirm, changing nothing: the names of its wards
    (A to Z), or None if the token is not genuine or has expired. The page a link opens
    shows these; only its button confirms, so a mail scanner opening the link does not."""
    link = read_confirmation(session, settings, token)
    if link is None:
        return None
    return list(session.scalars(
        select(Ward.name).join(Subscription, Subscription.ward_id == Ward.id)
        .where(Subscription.subscriber_id == link.subscriber_id,
               Subscription.id.in_(link.subscription_ids))
        .order_by(Ward.name)))


@dataclass(frozen=True)
class Confirmed:
    """What a genuine confirmation link did."""

    # What the page tells the resident (when each first digest comes, their preferences
    # link); None if none of the link's subscriptions stands confirmed (left since).
    welcome: Welcome | None
    # Whether this press queued the welcome email: only the one that confirmed something.
    welcomed: bool


def confirm(session: Session, settings: Settings, token: str, *,
            now: datetime) -> Confirmed | None:
    """Open a confirmation link: None if the token is not genuine or has expired (nothing
    changes); otherwise confirm what was still pending and, if that was anything, queue
    the resident's one welcome email (`alerts.usecases.welcome`)."""
    link = read_confirmation(session, settings, token)
    if link is None:
        return None
    # Of two presses at once the second finds nothing pending and queues no second welcome.
    hold_resident(session, link.subscriber_id)
    changed = confirm_subscriptions(session, link.subscriber_id, link.subscription_ids,
                                    now=now)
    welcome, welcomed = welcome_on_confirming(
        session, settings, link.subscriber_id, link.subscription_ids, confirmed=bool(changed),
        now=now)
    return Confirmed(welcome, welcomed)
