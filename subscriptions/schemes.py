"""Neighbourhood Watch schemes: a named group of residents inside one ward, kept by its
coordinators. A member is a subscription in the scheme's ward that names the scheme.

Besides the scheme itself, this module holds the scheme-scoped rules for its members:
reading a coordinator's CSV (the scheme's ward and name are implied, so `ward` and
`scheme` columns are optional), adding residents (a file's rows or one at a time, through
the same checks as `alerts subscribers import`), inviting residents who are already
subscribed and their accepting, removing one, the export rows, and who is on the
suppression list. Who may do any of it is decided by the caller (`alerts`).

A coordinator sees only the members who joined: a resident who subscribed on their own is
never pulled into a scheme by someone typing their address. They are invited, and join only
when they accept; until then nothing about them (not even whether they are subscribed, in
another scheme, suppressed or erased) reaches the person who added them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

from sqlalchemy import ForeignKey, Select, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship
from sqlalchemy.sql import ColumnElement

from subscriptions.addresses import AddressError, normalise_address
from subscriptions.base import NEVER_REUSED, Base, id_never_reused, utcnow
from subscriptions.consent import Consent
from subscriptions.csv_io import RowError, SubscriberRow, import_rows, read_table
from subscriptions.errors import AlertsError
from subscriptions.subscribers import (
    MAX_SCHEME,
    Frequency,
    Status,
    Subscriber,
    SubscriberError,
    Subscription,
    SubscriptionRecord,
    check_name_and_scheme,
    confirm_by_resident,
    delivery_state,
    parse_frequency,
)
from subscriptions.suppression import Suppression, address_hash, is_suppressed
from subscriptions.wards import Ward, get_ward


class SchemeError(AlertsError, ValueError):
    """A scheme cannot be found or changed as asked; the message says why."""

    http_status = 400


class Scheme(Base):
    __tablename__ = "schemes"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = id_never_reused()
    name: Mapped[str] = mapped_column(String(MAX_SCHEME), unique=True)
    ward_id: Mapped[int] = mapped_column(ForeignKey("wards.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    ward: Mapped[Ward] = relationship()


def check_scheme_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise SchemeError("a scheme needs a name")
    if len(cleaned) > MAX_SCHEME:
        raise SchemeError(f"a scheme name is at most {MAX_SCHEME} characters")
    return cleaned


def add_scheme(session: Session, name: str, ward_code: str) -> Scheme:
    cleaned = check_scheme_name(name)
    ward = get_ward(session, ward_code)
    if find_scheme(session, cleaned) is not None:
        raise SchemeError(f"there is already a scheme called {cleaned!r}")
    scheme = Scheme(name=cleaned, ward_id=ward.id)
    session.add(scheme)
    session.flush()
    return scheme


def find_scheme(session: Session, name: str) -> Scheme | None:
    return session.scalars(select(Scheme).where(Scheme.name == " ".join(name.split()))).first()


def get_scheme(session: Session, name: str) -> Scheme:
    scheme = find_scheme(session, name)
    if scheme is None:
        raise SchemeError(f"no scheme called {name!r} (see `alerts schemes list`)")
    return scheme


def list_schemes(session: Session, ward_ids: set[int] | None = None) -> list[Scheme]:
    query = select(Scheme).order_by(Scheme.name)
    if ward_ids is not None:
        query = query.where(Scheme.ward_id.in_(ward_ids))
    return list(session.scalars(query))


def scheme_by_id(session: Session, scheme_id: int) -> Scheme | None:
    return session.get(Scheme, scheme_id)


@dataclass(frozen=True)
class Member:
    subscription_id: int
    subscriber_id: int
    email: str
    name: str
    status: str
    frequency: str
    joined_at: datetime
    # On the suppression list (a hard bounce, a complaint, an operator): sent nothing.
    suppressed: bool = False

    @property
    def state(self) -> str:
        """The status an export and the member list show: `suppressed` outranks the rest."""
        return delivery_state(self.status, self.suppressed)


def joined(scheme: Scheme) -> ColumnElement[bool]:
    """For queries over subscriptions: the scheme's members, those who joined it. A member
    confirmed their subscription with the scheme named (their own link, an invitation they
    accepted, or written consent the coordinator declared for an address new to us), and
    stays listed, as unsubscribed, if they leave. One still waiting to confirm is no
    member: listing them would tell the coordinator which addresses were new to us."""
    settled = Subscription.status.in_([Status.CONFIRMED, Status.PAUSED]) | (
        (Subscription.status == Status.UNSUBSCRIBED) & Subscription.confirmed_at.is_not(None))
    return (Subscription.ward_id == scheme.ward_id) & (Subscription.scheme == scheme.name) \
        & settled


def members_of(scheme: Scheme) -> Select[Subscription]:
    """The subscriptions of the scheme's members (a query, for listing or fan-out)."""
    return select(Subscription).where(joined(scheme))


def list_members(session: Session, scheme: Scheme) -> list[Member]:
    rows = session.execute(
        select(Subscription, Subscriber, Suppression.address_hash)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .outerjoin(Suppression, Suppression.email == Subscriber.email)
        .where(joined(scheme))
        .order_by(Subscriber.email)
    ).all()
    return [Member(subscription.id, subscriber.id, subscriber.email, subscriber.name,
                   subscription.status, subscription.frequency, subscription.created_at,
                   suppressed=refused is not None)
            for subscription, subscriber, refused in rows]


def member_subscription(session: Session, scheme: Scheme, subscription_id: int) -> Subscription:
    """The subscription if it belongs to the scheme; a SchemeError otherwise (whoever asks
    about another scheme's member learns nothing about it)."""
    subscription = session.scalar(members_of(scheme).where(Subscription.id == subscription_id))
    if subscription is None:
        raise SchemeError(f"no such member of {scheme.name}")
    return subscription


def unsubscribe_member(session: Session, scheme: Scheme, subscription_id: int, *,
                       now: datetime) -> Subscription:
    """Unsubscribe one of the scheme's members from its ward (the record of consent and of
    membership stays, so the list shows them as unsubscribed); SchemeError for anyone who
    is not a member. Doing it again changes nothing."""
    subscription = member_subscription(session, scheme, subscription_id)
    if subscription.status != Status.UNSUBSCRIBED:
        subscription.status = Status.UNSUBSCRIBED
        subscription.unsubscribed_at = now
        session.flush()
    return subscription


# --- adding members, from a file or one at a time ------------------------------------------

SCHEME_COLUMNS = ("email",)
SCHEME_OPTIONAL = ("ward", "name", "frequency", "scheme")


def _same(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def read_scheme_file(
    text: str, *, scheme_name: str, ward_code: str, ward_name: str = "",
    default_frequency: Frequency = Frequency.WEEKLY,
) -> tuple[list[SubscriberRow], list[RowError]]:
    """Check every row of a coordinator's CSV for their scheme; return the good ones (one per
    address, the last wins) and the errors, each with its line number.

    Only `email` is required. A `ward` column may be left out or empty; when it names a
    ward, it must be the scheme's (by code or name). The same goes for a `scheme` column.
    Every good row is for the scheme's ward and names the scheme.
    """
    rows: dict[str, SubscriberRow] = {}
    errors: list[RowError] = []
    for line, cell in read_table(text, SCHEME_COLUMNS, SCHEME_OPTIONAL):
        try:
            email = normalise_address(cell("email"))
        except AddressError as exc:
            errors.append(RowError(line, f"email {exc}"))
            continue
        ward = cell("ward")
        if ward and not (_same(ward, ward_code) or (ward_name and _same(ward, ward_name))):
            errors.append(RowError(line, f"ward {ward!r} is not this scheme's ward ({ward_code})"))
            continue
        scheme = cell("scheme")
        if scheme and not _same(scheme, scheme_name):
            errors.append(RowError(line, f"scheme {scheme!r} is not {scheme_name}"))
            continue
        try:
            frequency = parse_frequency(cell("frequency")) if cell("frequency") else \
                default_frequency
            name, _ = check_name_and_scheme(cell("name"), scheme_name)
        except SubscriberError as exc:
            errors.append(RowError(line, str(exc)))
            continue
        rows[email] = SubscriberRow(line, email, ward_code, name, frequency, scheme_name)
    return list(rows.values()), errors


def member_row(scheme: Scheme, email: str, *, name: str = "",
               frequency: Frequency = Frequency.WEEKLY) -> SubscriberRow:
    """One resident to add by hand, as a file's row would carry them; SubscriberError or
    AddressError when the address or name cannot be kept."""
    name, _ = check_name_and_scheme(name, scheme.name)
    return SubscriberRow(0, normalise_address(email), scheme.ward.code, name, frequency,
                         scheme.name)


@dataclass(frozen=True)
class Joined:
    """What adding rows to a scheme leaves the caller to do, and the rows that were not for
    this scheme. It says nothing of any address's state, and the person who added the rows
    must be told nothing of it either (see `join_scheme`)."""

    # Subscriptions already in the ward whose residents are to be invited to join.
    invite: list[int]
    errors: list[RowError]


T = TypeVar("T")


def _chunks(values: Sequence[T], size: int = 500) -> Iterator[Sequence[T]]:
    for at in range(0, len(values), size):
        yield values[at : at + size]


def join_scheme(session: Session, scheme: Scheme, rows: Iterable[SubscriberRow],
                consent: Consent, *, confirmed: bool) -> Joined:
    """Add residents to the scheme in the caller's transaction. A coordinator may add only
    people new to us; anyone else decides for themselves:

    - an address new to us becomes a member pending confirmation with this consent (the
      caller emails the double opt-in link), or a confirmed member when `confirmed`
      declares they gave consent in writing;
    - an address we hold with no subscription in the ward gets one, pending confirmation
      (written consent is not taken for someone who subscribed on their own);
    - a confirmed or pending subscription in the ward, in no scheme or waiting for this
      one, is returned in `invite`: it changes only if its resident accepts the invitation;
    - an address on the suppression list (bounced, complained, erased), one that left the
      ward or paused it, one on another scheme's list and a member already change nothing.
      Written consent overrides none of these.
    """
    errors: list[RowError] = []
    wanted: dict[str, SubscriberRow] = {}
    for row in rows:
        if row.ward != scheme.ward.code or row.scheme != scheme.name:
            errors.append(RowError(row.line, f"not a row for {scheme.name}"))
        else:
            wanted[row.email] = row
    emails = sorted(wanted)
    hashes = {email: address_hash(email) for email in emails}
    refused: set[str] = set()
    known: dict[str, int] = {}
    for chunk in _chunks(emails):
        refused.update(session.scalars(select(Suppression.address_hash).where(
            Suppression.address_hash.in_([hashes[email] for email in chunk]))))
        known.update(session.execute(
            select(Subscriber.email, Subscriber.id).where(Subscriber.email.in_(chunk))).all())
    in_ward: dict[int, Subscription] = {}
    for ids in _chunks(sorted(known.values())):
        in_ward.update((found.subscriber_id, found) for found in session.scalars(
            select(Subscription).where(Subscription.subscriber_id.in_(ids),
                                       Subscription.ward_id == scheme.ward_id)))
    new: list[SubscriberRow] = []
    elsewhere: list[SubscriberRow] = []
    invite: list[int] = []
    for email, row in wanted.items():
        if hashes[email] in refused:
            continue
        subscriber_id = known.get(email)
        if subscriber_id is None:
            new.append(row)
        elif subscriber_id not in in_ward:
            elsewhere.append(row)
        elif may_be_invited(in_ward[subscriber_id], scheme) \
                and not is_member(in_ward[subscriber_id], scheme):
            invite.append(in_ward[subscriber_id].id)
    _, more = import_rows(session, new, consent, confirmed=confirmed)
    _, others = import_rows(session, elsewhere, replace(consent, prior_consent_declared=False),
                            confirmed=False)
    session.flush()
    return Joined(sorted(invite), sorted(errors + more + others, key=lambda e: e.line))


def is_member(subscription: Subscription, scheme: Scheme) -> bool:
    """Whether the subscription is a confirmed member of the scheme."""
    return subscription.scheme == scheme.name and subscription.status == Status.CONFIRMED


def may_be_invited(subscription: Subscription, scheme: Scheme) -> bool:
    """Whether the resident of this subscription may be invited to join the scheme, or
    accept its invitation: subscribed to its ward (confirmed, or waiting to confirm), in no
    other scheme. A member already may accept again, which changes nothing. (Suppression
    is the caller's check: the address is on the subscriber.)"""
    return subscription.ward_id == scheme.ward_id \
        and subscription.status in (Status.CONFIRMED, Status.PENDING) \
        and subscription.scheme in (None, scheme.name)


def invitation_open(session: Session, subscription: Subscription, scheme: Scheme) -> bool:
    """Whether the resident may still accept the scheme's invitation: not if they left the
    ward or paused it, joined another scheme, or their address went on the suppression list
    since it was sent."""
    return may_be_invited(subscription, scheme) \
        and not is_suppressed(session, subscription.subscriber.email)


def accept_invitation(session: Session, subscription: Subscription, scheme: Scheme, *,
                      now: datetime) -> bool:
    """The resident accepts the scheme's invitation: their subscription joins the scheme,
    and is confirmed if it was waiting (the invitation reached their address). False, and
    nothing changes, if it is no longer open (`invitation_open`)."""
    if not invitation_open(session, subscription, scheme):
        return False
    subscription.scheme = scheme.name
    confirm_by_resident(subscription, now)
    session.flush()
    return True


# --- what the coordinator reads back ------------------------------------------------------

def scheme_records(session: Session, scheme: Scheme) -> Iterator[SubscriptionRecord]:
    """The scheme's members as export rows (the columns of `alerts subscribers export`);
    an address on the suppression list shows the status `suppressed`."""
    query = (
        select(Subscription, Subscriber, Suppression.address_hash)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .outerjoin(Suppression, Suppression.email == Subscriber.email)
        .where(joined(scheme))
        .order_by(Subscriber.email)
    )
    code = scheme.ward.code
    for subscription, subscriber, refused in session.execute(query):
        yield SubscriptionRecord(
            email=subscriber.email,
            ward=code,
            name=subscriber.name,
            frequency=subscription.frequency,
            scheme=subscription.scheme or "",
            status=delivery_state(subscription.status, refused is not None),
            consent_at=subscription.consent_at,
            consent_method=subscription.consent_method,
            consent_source=subscription.consent_source,
            consent_wording=subscription.consent_wording,
        )


@dataclass(frozen=True)
class SuppressedMember:
    member: Member
    reason: str
    detail: str
    since: datetime


def suppressed_members(session: Session, scheme: Scheme) -> list[SuppressedMember]:
    """The scheme's members whose address is on the suppression list, and why."""
    rows = session.execute(
        select(Subscription, Subscriber, Suppression)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .join(Suppression, Suppression.email == Subscriber.email)
        .where(joined(scheme))
        .order_by(Suppression.created_at.desc(), Subscriber.email)
    )
    return [SuppressedMember(
        Member(subscription.id, subscriber.id, subscriber.email, subscriber.name,
               subscription.status, subscription.frequency, subscription.created_at,
               suppressed=True),
        entry.reason, entry.detail, entry.created_at) for subscription, subscriber, entry in rows]
