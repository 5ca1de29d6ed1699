"""Neighbourhood Watch schemes: a named group of residents inside one ward, kept by its
coordinators. A member is a subscription in the scheme's ward that names the scheme.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ForeignKey, Select, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from subscriptions.base import Base, utcnow
from subscriptions.subscribers import MAX_SCHEME, Subscriber, Subscription
from subscriptions.wards import Ward, get_ward


class SchemeError(ValueError):
    """A scheme cannot be found or changed as asked; the message says why."""


class Scheme(Base):
    __tablename__ = "schemes"

    id: Mapped[int] = mapped_column(primary_key=True)
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


@dataclass(frozen=True)
class Member:
    subscription_id: int
    subscriber_id: int
    email: str
    name: str
    status: str
    frequency: str
    joined_at: datetime


def members_of(scheme: Scheme) -> Select[Subscription]:
    """The subscriptions that belong to `scheme` (a query, for listing or fan-out)."""
    return (select(Subscription)
            .where(Subscription.ward_id == scheme.ward_id, Subscription.scheme == scheme.name))


def list_members(session: Session, scheme: Scheme) -> list[Member]:
    rows = session.execute(
        select(Subscription, Subscriber)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(Subscription.ward_id == scheme.ward_id, Subscription.scheme == scheme.name)
        .order_by(Subscriber.email)
    ).all()
    return [Member(subscription.id, subscriber.id, subscriber.email, subscriber.name,
                   subscription.status, subscription.frequency, subscription.created_at)
            for subscription, subscriber in rows]


def member_subscription(session: Session, scheme: Scheme, subscription_id: int) -> Subscription:
    """The subscription if it belongs to the scheme; a SchemeError otherwise (whoever asks
    about another scheme's member learns nothing about it)."""
    subscription = session.get(Subscription, subscription_id)
    if subscription is None or subscription.ward_id != scheme.ward_id \
            or subscription.scheme != scheme.name:
        raise SchemeError(f"no such member of {scheme.name}")
    return subscription
