"""Subscribers and their subscriptions: one row per (resident, ward), with status and consent."""

from __future__ import annotations

import unicodedata
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import ForeignKey, String, UniqueConstraint, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship
from sqlalchemy.sql import ColumnElement

from subscriptions.addresses import normalise_address
from subscriptions.base import NEVER_REUSED, Base, id_never_reused, utcnow
from subscriptions.consent import Consent
from subscriptions.errors import AlertsError
from subscriptions.links import nonce_column
from subscriptions.suppression import Suppression, address_hash, erasure_only
from subscriptions.topics import MAX_TOPICS
from subscriptions.wards import Ward, get_ward


class Frequency(StrEnum):
    IMMEDIATE = "immediate"
    DAILY = "daily"
    WEEKLY = "weekly"


class Status(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    # Confirmed, but the resident asked for a break: nothing is sent until they resume.
    PAUSED = "paused"
    UNSUBSCRIBED = "unsubscribed"


MAX_NAME = 200
MAX_SCHEME = 200
MAX_CONSENT_SOURCE = 300


class SubscriberError(AlertsError, ValueError):
    """A subscriber or subscription cannot be changed as asked; the message says why."""

    http_status = 400


class Subscriber(Base):
    __tablename__ = "subscribers"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = id_never_reused()
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(MAX_NAME), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When the last confirmation email was queued: at most one an hour (see web_consent).
    confirmation_sent_at: Mapped[datetime | None] = mapped_column(default=None)
    # When the last "my data" link was emailed: at most one an hour (see personal_data).
    data_request_sent_at: Mapped[datetime | None] = mapped_column(default=None)
    # "en", "cy" or "bilingual"; None follows each ward's language (see languages).
    language: Mapped[str | None] = mapped_column(String(16), default=None)
    # Confirmation and "my data" links are bound to it (see links).
    nonce: Mapped[str] = nonce_column()

    subscriptions: Mapped[list[Subscription]] = relationship(
        back_populates="subscriber", cascade="all, delete-orphan"
    )


class Subscription(Base):
    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("subscriber_id", "ward_id"), NEVER_REUSED)

    id: Mapped[int] = id_never_reused()
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    ward_id: Mapped[int] = mapped_column(ForeignKey("wards.id", ondelete="CASCADE"), index=True)
    frequency: Mapped[str] = mapped_column(String(16), default=Frequency.WEEKLY)
    status: Mapped[str] = mapped_column(String(16), default=Status.PENDING)
    scheme: Mapped[str | None] = mapped_column(String(MAX_SCHEME), default=None)
    # The topics followed in this ward, sorted and comma-separated; None follows them all.
    topics: Mapped[str | None] = mapped_column(String(MAX_TOPICS), default=None)
    consent_at: Mapped[datetime]
    consent_method: Mapped[str] = mapped_column(String(16))
    consent_source: Mapped[str] = mapped_column(String(MAX_CONSENT_SOURCE), default="")
    consent_wording: Mapped[str] = mapped_column(String(32))
    consent_prior_declared: Mapped[bool] = mapped_column(default=False)
    confirmed_at: Mapped[datetime | None] = mapped_column(default=None)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Preferences and unsubscribe links are bound to it (see links).
    nonce: Mapped[str] = nonce_column()

    subscriber: Mapped[Subscriber] = relationship(back_populates="subscriptions")
    ward: Mapped[Ward] = relationship()


def parse_frequency(value: str) -> Frequency:
    try:
        return Frequency(value.strip().lower())
    except ValueError:
        allowed = ", ".join(f.value for f in Frequency)
        raise SubscriberError(f"frequency {value!r} is not one of {allowed}") from None


# Control characters (CR, LF, tab, NUL…) and Unicode's line and paragraph separators: none
# belongs in a name, and a line break in one breaks the header of every email it is in.
_NOT_IN_NAMES = frozenset({"Cc", "Zl", "Zp"})


def _has_control_character(text: str) -> bool:
    return any(unicodedata.category(ch) in _NOT_IN_NAMES for ch in text)


def check_name_and_scheme(name: str, scheme: str | None) -> tuple[str, str | None]:
    """A resident's name and scheme, trimmed; SubscriberError, naming the field, if either is
    too long to keep or holds a line break or another control character. Every way a name
    comes in (forms, CSV files, the command line) passes through here."""
    name, scheme = name.strip(), (scheme or "").strip() or None
    if len(name) > MAX_NAME:
        raise SubscriberError(f"name is longer than {MAX_NAME} characters")
    if _has_control_character(name):
        raise SubscriberError("name must not contain a line break, a tab or another "
                              "control character")
    if scheme is not None and len(scheme) > MAX_SCHEME:
        raise SubscriberError(f"scheme is longer than {MAX_SCHEME} characters")
    if scheme is not None and _has_control_character(scheme):
        raise SubscriberError("scheme must not contain a line break, a tab or another "
                              "control character")
    return name, scheme


def subscriber_not_suppressed() -> ColumnElement[bool]:
    """For queries over subscriptions: true where the subscriber's address is not on the
    suppression list.

    A correlated NOT EXISTS (two index look-ups a row), not a NOT IN list: planners can
    turn IN lists over large tables into nested scans. Entries that still hold the address
    are matched on it; the hash, which survives erasure, is checked whenever an address
    enters the system (see `subscribe`).
    """
    return ~(
        select(Suppression.address_hash)
        .join(Subscriber, Subscriber.email == Suppression.email)
        .where(Subscriber.id == Subscription.subscriber_id)
        .exists()
    )


def receiving() -> ColumnElement[bool]:
    """For queries over subscriptions: those a message is queued for now, confirmed and with
    the address off the suppression list. The one rule for fan-out and for every count that
    says whom mail reaches (a page's figures, an officer's preview, an export)."""
    return (Subscription.status == Status.CONFIRMED) & subscriber_not_suppressed()


# The state an export and a member list show for a subscription whose address is on the
# suppression list (a hard bounce, a complaint, an operator): kept, but sent nothing.
SUPPRESSED = "suppressed"


def delivery_state(status: str, suppressed: bool) -> str:
    """What a list or an export shows for a subscription: `suppressed` outranks the status,
    so an address that bounced never reads as `confirmed`."""
    return SUPPRESSED if suppressed else status


def reads_in(language: str, ward_language: str) -> ColumnElement[bool]:
    """For queries over a ward's subscriptions: true where the resident is sent mail in
    `language` (their own choice, or the ward's when they made none)."""
    chosen = Subscriber.language == language
    if language == ward_language:
        chosen = chosen | Subscriber.language.is_(None)
    return select(Subscriber.id).where(Subscriber.id == Subscription.subscriber_id,
                                       chosen).exists()


def follows_topics(topics: str | None) -> ColumnElement[bool]:
    """For queries over subscriptions: those following exactly these topics (None: all)."""
    return Subscription.topics.is_(None) if topics is None else Subscription.topics == topics


def claim_send_slots(session: Session, subscriber_ids: Collection[int], stamp: str,
                     interval: timedelta, *, now: datetime) -> set[int]:
    """Stamp `now` into the column `stamp` of each subscriber whose last stamp is older than
    `interval` (or missing); return those that won, the ones that may be emailed now.

    A conditional UPDATE, so two requests at the same moment cannot both win.
    """
    column = getattr(Subscriber, stamp)
    claimed: set[int] = set()
    ordered = sorted(subscriber_ids)
    for at in range(0, len(ordered), 500):
        claimed.update(session.scalars(
            update(Subscriber)
            .where(Subscriber.id.in_(ordered[at : at + 500]),
                   or_(column.is_(None), column <= now - interval))
            .values({stamp: now})
            .returning(Subscriber.id)
            .execution_options(synchronize_session=False)
        ))
    return claimed


def stored_source(consent: Consent) -> str:
    """Where consent was recorded (a file's name, a command), cut to fit: its end says most."""
    if len(consent.source) <= MAX_CONSENT_SOURCE:
        return consent.source
    return "…" + consent.source[-(MAX_CONSENT_SOURCE - 1):]


def find_subscriber(session: Session, email: str) -> Subscriber | None:
    return session.scalar(select(Subscriber).where(Subscriber.email == normalise_address(email)))


def subscribe(
    session: Session,
    email: str,
    ward_code: str,
    consent: Consent,
    *,
    frequency: Frequency = Frequency.WEEKLY,
    name: str = "",
    scheme: str | None = None,
    confirmed: bool = False,
    asked_by_resident: bool = False,
) -> Subscription:
    """Create or renew a subscription; an existing one keeps its history but takes the new
    frequency. `confirmed` (prior consent declared) confirms a new subscription or one
    waiting for confirmation, never what a resident chose: one who left is renewed pending,
    to confirm with their own link, and a paused one stays paused.

    A suppressed address is refused, except that a resident's own request at the web form
    (`asked_by_resident`) passes an entry an erasure left: it is new consent, still pending
    until the link mailed to the address is pressed. Imports, coordinators and the shell
    are refused, and so is everyone for a bounce or a complaint."""
    address = normalise_address(email)
    refused = session.get(Suppression, address_hash(address))
    if refused is not None and not (asked_by_resident and erasure_only(refused)):
        raise SubscriberError(
            f"the address is on the suppression list ({refused.reason}); it can be "
            "subscribed again only after `alerts suppression remove`"
        )
    name, scheme = check_name_and_scheme(name, scheme)
    source = stored_source(consent)
    ward = get_ward(session, ward_code)
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == address))
    if subscriber is None:
        subscriber = Subscriber(email=address, name=name)
        session.add(subscriber)
        session.flush()
    subscription = session.scalar(
        select(Subscription).where(
            Subscription.subscriber_id == subscriber.id, Subscription.ward_id == ward.id
        )
    )
    if subscription is None:
        subscription = Subscription(
            subscriber_id=subscriber.id,
            ward_id=ward.id,
            status=Status.PENDING,
            consent_at=consent.at,
            consent_method=consent.method,
            consent_source=source,
            consent_wording=consent.wording_version,
            consent_prior_declared=consent.prior_consent_declared,
        )
        session.add(subscription)
    renew(subscriber, subscription, consent, frequency=frequency, name=name, scheme=scheme,
          confirmed=confirmed)
    session.flush()
    return subscription


def renew(subscriber: Subscriber, subscription: Subscription, consent: Consent, *,
          frequency: Frequency, name: str, scheme: str | None, confirmed: bool) -> None:
    """`subscribe`'s rule for a subscription that exists (a new one is pending), the name and
    scheme already checked: it takes the new frequency (and scheme, and a name if it had
    none); one who left is renewed pending with this consent; `confirmed` confirms only one
    waiting for confirmation."""
    if name and not subscriber.name:
        subscriber.name = name
    if subscription.status == Status.UNSUBSCRIBED:
        # `unsubscribed_at` stays until they confirm with their own link (see web_consent):
        # until then, no declared consent confirms them.
        subscription.status = Status.PENDING
        subscription.consent_at = consent.at
        subscription.consent_method = consent.method
        subscription.consent_source = stored_source(consent)
        subscription.consent_wording = consent.wording_version
        subscription.consent_prior_declared = consent.prior_consent_declared
    subscription.frequency = frequency
    if scheme:
        subscription.scheme = scheme
    if confirmed and subscription.status == Status.PENDING \
            and subscription.unsubscribed_at is None:
        subscription.status = Status.CONFIRMED
        subscription.confirmed_at = consent.at


def confirm_by_resident(subscription: Subscription, now: datetime) -> bool:
    """A pending subscription confirmed by its resident with a link only their address got
    (a confirmation, a scheme's invitation); one who had left is back by their own hand.
    False, and nothing changes, if it was not pending."""
    if subscription.status != Status.PENDING:
        return False
    subscription.status = Status.CONFIRMED
    subscription.confirmed_at = now
    subscription.unsubscribed_at = None
    return True


def unsubscribe_everywhere(session: Session, email: str) -> int:
    """Mark every subscription of the address unsubscribed; return how many changed."""
    subscriber = find_subscriber(session, email)
    if subscriber is None:
        raise SubscriberError("no subscriber with that address")
    changed = 0
    for subscription in subscriber.subscriptions:
        if subscription.status != Status.UNSUBSCRIBED:
            subscription.status = Status.UNSUBSCRIBED
            subscription.unsubscribed_at = utcnow()
            changed += 1
    session.flush()
    return changed


@dataclass(frozen=True)
class SubscriptionRecord:
    """One subscription as an export row shows it."""

    email: str
    ward: str
    name: str
    frequency: str
    scheme: str
    status: str
    consent_at: datetime
    consent_method: str
    consent_source: str
    consent_wording: str


def iter_subscriptions(session: Session, ward_code: str | None = None) -> Iterator[
    SubscriptionRecord
]:
    """Every subscription (or one ward's) as export rows; an address on the suppression
    list shows the state `suppressed` (see `delivery_state`)."""
    query = (
        select(Subscription, Subscriber, Ward, Suppression.address_hash)
        .join(Subscriber, Subscription.subscriber_id == Subscriber.id)
        .join(Ward, Subscription.ward_id == Ward.id)
        .outerjoin(Suppression, Suppression.email == Subscriber.email)
        .order_by(Ward.code, Subscriber.email)
    )
    if ward_code is not None:
        query = query.where(Ward.id == get_ward(session, ward_code).id)
    for subscription, subscriber, ward, refused in session.execute(query):
        yield SubscriptionRecord(
            email=subscriber.email,
            ward=ward.code,
            name=subscriber.name,
            frequency=subscription.frequency,
            scheme=subscription.scheme or "",
            status=delivery_state(subscription.status, refused is not None),
            consent_at=subscription.consent_at,
            consent_method=subscription.consent_method,
            consent_source=subscription.consent_source,
            consent_wording=subscription.consent_wording,
        )
