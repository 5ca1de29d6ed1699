"""The consent rules behind the residents' pages: sign up (pending until confirmed), confirm,
change preferences, pause, leave, and at most one confirmation email per address per hour.

Plain functions over a session; the caller commits. Nothing here sends mail or knows about
web requests: `alerts` queues the confirmation email that `request_subscription` asks for.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, bindparam, select, update
from sqlalchemy.orm import Session, aliased

from subscriptions.addresses import normalise_address
from subscriptions.consent import Consent
from subscriptions.languages import Language
from subscriptions.links import Purpose, read_signed
from subscriptions.subscribers import (
    Frequency,
    Status,
    Subscriber,
    SubscriberError,
    Subscription,
    claim_send_slots,
    confirm_by_resident,
    stored_source,
    subscribe,
)
from subscriptions.suppression import lift_erasure
from subscriptions.topics import split_topics
from subscriptions.wards import Ward, find_ward

CONFIRMATION_INTERVAL = timedelta(hours=1)


@dataclass(frozen=True)
class SignUp:
    """What a sign-up changed. `confirm` is set when a confirmation email should go now:
    the subscriber and the pending subscriptions its link confirms."""

    confirm: tuple[int, tuple[int, ...]] | None


def request_subscription(
    session: Session,
    email: str,
    ward_codes: Iterable[str],
    frequency: Frequency,
    consent: Consent,
    *,
    now: datetime,
) -> SignUp:
    """Record a resident's request to hear about these wards.

    Wards they already confirmed are left as they are: an unauthenticated form must not
    change a confirmed subscription, or anyone could change anyone's. New or lapsed ones
    become pending with this consent. A suppressed address changes nothing, unless an
    erasure alone suppressed it: the resident who erased their data may come back by
    asking again (see `subscribe`). Raises AddressError for an unusable address; unknown
    ward codes are ignored.
    """
    address = normalise_address(email)
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == address))
    settled = {Status.CONFIRMED, Status.PAUSED}
    already = {
        s.ward.code for s in (subscriber.subscriptions if subscriber else [])
        if s.status in settled
    }
    pending: list[int] = []
    for asked in dict.fromkeys(ward_codes):
        ward = find_ward(session, asked)
        if ward is None or ward.code in already:
            continue
        code = ward.code
        try:
            subscription = subscribe(session, address, code, consent, frequency=frequency,
                                     asked_by_resident=True)
        except SubscriberError:
            return SignUp(None)  # suppressed: said nowhere, so the answer stays the same
        if subscription.status == Status.PENDING:
            pending.append(subscription.id)
    if not pending:
        return SignUp(None)
    subscriber_id = session.scalars(
        select(Subscription.subscriber_id).where(Subscription.id == pending[0])
    ).one()
    if not claim_confirmation_slot(session, subscriber_id, now=now):
        return SignUp(None)
    return SignUp((subscriber_id, tuple(pending)))


def claim_confirmation_slot(session: Session, subscriber_id: int, *, now: datetime) -> bool:
    """Take this hour's one confirmation email for the subscriber; False if already taken."""
    return subscriber_id in claim_confirmation_slots(session, [subscriber_id], now=now)


def confirm_subscriptions(session: Session, subscriber_id: int,
                          subscription_ids: Collection[int], *, now: datetime) -> int:
    """Confirm those of the named subscriptions that are still pending; return how many.

    One that was unsubscribed since the email went out stays unsubscribed. A resident
    who erased their data and asked again is back: their erasure's entry on the
    suppression list goes once they confirm (a bounce's or a complaint's would stay).
    """
    changed = 0
    for subscription in session.scalars(
        select(Subscription).where(Subscription.subscriber_id == subscriber_id,
                                   Subscription.id.in_(list(subscription_ids)))
    ):
        changed += confirm_by_resident(subscription, now)
    session.flush()
    if changed:
        subscriber = session.get(Subscriber, subscriber_id)
        if subscriber is not None:
            lift_erasure(session, subscriber.email)
    return changed


def awaiting_confirmation(session: Session, consent: Consent) -> dict[int, list[int]]:
    """The subscriptions that this consent record left pending, by subscriber.

    An import stamps every subscription it creates or revives with its own consent (one
    moment, method and source), and leaves alone the consent of one already pending, so
    these are exactly the subscriptions it made newly pending: a file imported again does
    not ask the same people again.
    """
    waiting: dict[int, list[int]] = {}
    for subscriber_id, subscription_id in session.execute(
        select(Subscription.subscriber_id, Subscription.id)
        .where(Subscription.status == Status.PENDING,
               Subscription.consent_at == consent.at,
               Subscription.consent_method == consent.method,
               Subscription.consent_source == stored_source(consent))
        .order_by(Subscription.subscriber_id, Subscription.id)
    ):
        waiting.setdefault(subscriber_id, []).append(subscription_id)
    return waiting


def claim_confirmation_slots(session: Session, subscriber_ids: Collection[int], *,
                             now: datetime) -> set[int]:
    """`claim_confirmation_slot` for many subscribers at once; return those that won one."""
    return claim_send_slots(session, subscriber_ids, "confirmation_sent_at",
                            CONFIRMATION_INTERVAL, now=now)


@dataclass(frozen=True)
class WardChoice:
    code: str
    name: str
    status: str | None  # this resident's subscription to it, None if none
    topics: list[str] | None = None  # followed in this ward; None: every topic
    language: str = Language.ENGLISH  # the ward's, for residents who follow it


@dataclass(frozen=True)
class Preferences:
    subscriber_id: int
    ward_name: str  # the ward of the subscription the link names
    frequency: Frequency
    paused: bool
    wards: list[WardChoice]
    language: str | None = None  # the resident's own choice; None follows each ward

    @functools.cached_property  # asked once for each ward the page lists
    def chosen(self) -> set[str]:
        live = {Status.PENDING, Status.CONFIRMED, Status.PAUSED}
        return {w.code for w in self.wards if w.status in live}


def _subscriber_of(session: Session, subscription_id: int) -> Subscription | None:
    return session.get(Subscription, subscription_id)


# The subscription a link names, beside the resident's others.
_NAMED = aliased(Subscription)
# The preferences page's two reads, built once: the resident's every subscription (found
# through the one the link names) with the resident's own language and the named one's
# nonce (what its link is checked against), as columns; every ward.
_OWN = (select(Subscription.id, Subscription.ward_id, Subscription.status,
               Subscription.frequency, Subscription.topics, Subscriber.id, Subscriber.language,
               _NAMED.nonce)
        .join(_NAMED, _NAMED.subscriber_id == Subscription.subscriber_id)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(_NAMED.id == bindparam("named")))
_WARDS = select(Ward.id, Ward.code, Ward.name, Ward.language).order_by(Ward.name)
_Rows = Sequence[Row[*tuple[Any, ...]]]


def _with_nonce(rows: _Rows) -> tuple[str | None, _Rows] | None:
    """The nonce of the named subscription (each row's last column) and the rows."""
    return (rows[0][-1], rows) if rows else None


def load_preferences(session: Session, subscription_id: int) -> Preferences | None:
    """What the preferences page shows for the resident whose subscription the link names."""
    return _preferences(session, subscription_id,
                        session.execute(_OWN, {"named": subscription_id}).all())


def preferences_for_link(session: Session, secret: str,
                         token: str) -> tuple[int, Preferences] | None:
    """The subscription a genuine preferences link names and what its page shows, its
    token checked against the nonce read with the resident's subscriptions."""
    # Columns through the session's connection: the ORM's work on each statement cost about
    # as much as running it, and a link's page opens with nothing pending to flush.
    found = read_signed(secret, Purpose.PREFERENCES, token, lambda ident: _with_nonce(
        session.connection().execute(_OWN, {"named": ident}).all()))
    if found is None:
        return None
    preferences = _preferences(session, found[0], found[1])
    return None if preferences is None else (found[0], preferences)


def _preferences(session: Session, subscription_id: int, rows: _Rows) -> Preferences | None:
    named = next((row for row in rows if row[0] == subscription_id), None)
    if named is None:
        return None
    own = {ward_id: (status, topics) for _, ward_id, status, _, topics, *_ in rows}
    live = [status for status, _ in own.values() if status != Status.UNSUBSCRIBED]
    _, named_ward, _, frequency, _, subscriber_id, language, _ = named
    wards = []  # columns, not an ORM object per ward
    named_ward_name = ""
    for ident, code, name, ward_language in session.connection().execute(_WARDS):
        status, topics = own.get(ident, (None, None))
        wards.append(WardChoice(code, name, status,
                                _followed(topics) if ident in own else None, ward_language))
        if ident == named_ward:
            named_ward_name = name
    paused = bool(live) and all(s in (Status.PAUSED, Status.PENDING) for s in live) \
        and any(s == Status.PAUSED for s in live)
    return Preferences(subscriber_id, named_ward_name, Frequency(frequency), paused, wards,
                       language)


def _followed(stored: str | None) -> list[str] | None:
    return None if stored is None else split_topics(stored)


def update_preferences(
    session: Session,
    subscription_id: int,
    *,
    ward_codes: Collection[str],
    frequency: Frequency,
    paused: bool,
    consent: Consent,
    now: datetime,
    topics: Mapping[str, str | None] | None = None,
    language: Language | None = None,
) -> bool:
    """Apply the preferences form to every subscription of the resident; False if the
    subscription named is gone.

    The link came by email to this address, so a ward added here is confirmed at once
    (with this page as its consent); a ward left out is unsubscribed. `topics` maps a ward
    code to the topics followed there (joined, see `subscriptions.topics`; None: all), for
    the wards the form showed; `language` is the resident's own (None: each ward's).
    """
    named = _subscriber_of(session, subscription_id)
    if named is None:
        return False
    subscriber = named.subscriber
    own = {s.ward.code: s for s in subscriber.subscriptions}
    for code in ward_codes:
        existing = own.get(code)
        if existing is None or existing.status == Status.UNSUBSCRIBED:
            if find_ward(session, code) is None:
                continue
            try:
                own[code] = subscribe(session, subscriber.email, code, consent,
                                      frequency=frequency, confirmed=True)
            except SubscriberError:
                continue  # suppressed since: it stays that way until an operator lifts it
    for code, subscription in own.items():
        if code not in ward_codes:
            _leave(subscription, now)
            continue
        subscription.frequency = frequency
        if topics is not None and code in topics:
            subscription.topics = topics[code]
        if paused and subscription.status == Status.CONFIRMED:
            subscription.status = Status.PAUSED
        elif not paused and subscription.status == Status.PAUSED:
            subscription.status = Status.CONFIRMED
    subscriber.language = language
    session.flush()
    return True


def _leave(subscription: Subscription, now: datetime) -> None:
    if subscription.status != Status.UNSUBSCRIBED:
        subscription.status = Status.UNSUBSCRIBED
        subscription.unsubscribed_at = now


# One query for the resident's every subscription and its ward's name (a link scanner opens
# this page for every message sent), not one for each of them, with the resident and the
# named subscription's nonce; built once, not at each request (the alias alone cost more
# than running the query).
_LEAVING = (select(Subscription.id, Subscription.status, Ward.name, _NAMED.subscriber_id,
                   _NAMED.nonce)
            .join(_NAMED, _NAMED.subscriber_id == Subscription.subscriber_id)
            .join(Ward, Ward.id == Subscription.ward_id)
            .where(_NAMED.id == bindparam("named")))


@dataclass(frozen=True)
class Leaving:
    ward_name: str
    other_wards: list[str]  # names of the resident's other live subscriptions
    subscriber_id: int  # the resident's (for `leave`)


def leaving_for_link(session: Session, secret: str, token: str) -> tuple[int, Leaving] | None:
    """The subscription a genuine unsubscribe link names and what its page says, in one
    read: the token is checked against the nonce read with the resident's subscriptions."""
    found = read_signed(secret, Purpose.UNSUBSCRIBE, token, lambda ident: _with_nonce(
        session.connection().execute(_LEAVING, {"named": ident}).all()))
    leaving = None if found is None else _leaving(found[0], found[1])
    return None if found is None or leaving is None else (found[0], leaving)


def _leaving(subscription_id: int, rows: _Rows) -> Leaving | None:
    here = [(name, subscriber) for ident, _, name, subscriber, _ in rows
            if ident == subscription_id]
    if not here:
        return None
    others = sorted(name for ident, status, name, _, _ in rows
                    if ident != subscription_id and status != Status.UNSUBSCRIBED)
    return Leaving(here[0][0], others, here[0][1])


def leave(session: Session, subscription_id: int, leaving: Leaving, *, everywhere: bool,
          now: datetime) -> None:
    """`unsubscribe_subscription` of a subscription `leaving` was read for in this session,
    in one UPDATE: a repeated one-click POST changes nothing."""
    whose = (Subscription.subscriber_id == leaving.subscriber_id if everywhere
             else Subscription.id == subscription_id)
    session.execute(update(Subscription)
                    .where(whose, Subscription.status != Status.UNSUBSCRIBED)
                    .values(status=Status.UNSUBSCRIBED, unsubscribed_at=now))


def unsubscribe_subscription(session: Session, subscription_id: int, *, everywhere: bool,
                             now: datetime) -> bool:
    """Unsubscribe the named subscription (or all of its resident's); False if it is gone.

    Doing it again changes nothing, so a repeated one-click POST is harmless.
    """
    named = _subscriber_of(session, subscription_id)
    if named is None:
        return False
    targets = named.subscriber.subscriptions if everywhere else [named]
    for subscription in targets:
        _leave(subscription, now)
    session.flush()
    return True
