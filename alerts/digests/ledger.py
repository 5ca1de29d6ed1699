"""The ledger: for each subscription, the newest item it has been sent up to.

Items get increasing ids as they are stored, so one number per subscription says what a
resident has had. A digest or an immediate message carries the ward's items above that
number and moves it on; a resident who changes frequency keeps the number, so nothing is
missed or repeated whatever the schedule. A subscription with no entry yet starts from
the items stored before it was confirmed: residents hear news from the day they join.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ForeignKey, func, literal, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql import ColumnElement

from alerts.core.db import dialect_insert
from alerts.sources.items import Item
from alerts.sources.registry import Source
from subscriptions.base import Base, utcnow
from subscriptions.languages import Language
from subscriptions.subscribers import (
    Frequency,
    Status,
    Subscriber,
    Subscription,
    follows_topics,
    reads_in,
)
from subscriptions.wards import Ward


class SubscriptionProgress(Base):
    __tablename__ = "subscription_progress"

    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="CASCADE"), primary_key=True
    )
    last_item_id: Mapped[int] = mapped_column(default=0, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


def newest_item_id(session: Session, ward_id: int) -> int:
    return session.scalar(
        select(func.max(Item.id)).join(Source, Source.id == Item.source_id)
        .where(Source.ward_id == ward_id)
    ) or 0


def _baseline(ward_id: int) -> ColumnElement[int]:
    """For a subscription in a query: the newest ward item stored before it was confirmed."""
    return func.coalesce(
        select(func.max(Item.id))
        .join(Source, Source.id == Item.source_id)
        .where(Source.ward_id == ward_id, Item.collected_at < Subscription.confirmed_at)
        .scalar_subquery(),
        0,
    )


def _in_ward(ward_id: int, frequencies: tuple[Frequency, ...]) -> ColumnElement[bool]:
    return (
        (Subscription.ward_id == ward_id)
        & (Subscription.status == Status.CONFIRMED)
        & Subscription.frequency.in_([f.value for f in frequencies])
    )


def open_entries(session: Session, ward_id: int, frequencies: tuple[Frequency, ...]) -> None:
    """Give every confirmed subscription of the ward (at these frequencies) its entry."""
    missing = select(
        Subscription.id, _baseline(ward_id), literal(utcnow(), SubscriptionProgress.updated_at.type)
    ).where(
        _in_ward(ward_id, frequencies),
        ~select(SubscriptionProgress.subscription_id)
        .where(SubscriptionProgress.subscription_id == Subscription.id)
        .exists(),
    )
    session.execute(
        dialect_insert(session, SubscriptionProgress)
        .from_select(["subscription_id", "last_item_id", "updated_at"], missing)
        .on_conflict_do_nothing(index_elements=["subscription_id"])
    )


def read_watermarks(session: Session, ward_id: int, frequencies: tuple[Frequency, ...]) -> dict[
    int, int
]:
    """Each distinct point the ward's subscriptions stand at (or would, once they have
    entries), with how many stand there; writes nothing (for previews)."""
    mark = func.coalesce(SubscriptionProgress.last_item_id, _baseline(ward_id))
    rows = session.execute(
        select(mark, func.count())
        .select_from(Subscription)
        .outerjoin(SubscriptionProgress,
                   SubscriptionProgress.subscription_id == Subscription.id)
        .where(_in_ward(ward_id, frequencies))
        .group_by(mark)
    )
    return {value: count for value, count in rows}


def at_watermark(ward_id: int, frequencies: tuple[Frequency, ...], mark: int) -> (
    ColumnElement[bool]
):
    """The subscriptions of a group: for fan-out and for moving the group on."""
    # A correlated EXISTS on the primary key, not an IN list: see subscriber_not_suppressed.
    return _in_ward(ward_id, frequencies) & (
        select(SubscriptionProgress.subscription_id)
        .where(SubscriptionProgress.subscription_id == Subscription.id,
               SubscriptionProgress.last_item_id == mark)
        .exists()
    )


@dataclass(frozen=True)
class Audience:
    """Subscriptions that get the same message: one point in the ledger, the same topics
    followed, the same language."""

    mark: int
    topics: str | None
    language: Language
    count: int


def audiences(session: Session, ward: Ward, frequencies: tuple[Frequency, ...]) -> list[
    Audience
]:
    """The ward's groups of subscriptions (with entries) that get the same message."""
    language = func.coalesce(Subscriber.language, ward.language)
    rows = session.execute(
        select(SubscriptionProgress.last_item_id, Subscription.topics, language, func.count())
        .join(Subscription, Subscription.id == SubscriptionProgress.subscription_id)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(_in_ward(ward.id, frequencies))
        .group_by(SubscriptionProgress.last_item_id, Subscription.topics, language)
    )
    found = [Audience(mark, topics, Language(spoken), count)
             for mark, topics, spoken, count in rows]
    return sorted(found, key=lambda a: (a.mark, a.topics or "", a.language.value))


def in_audience(ward: Ward, frequencies: tuple[Frequency, ...], audience: Audience) -> (
    ColumnElement[bool]
):
    """The subscriptions of one audience: for fan-out."""
    return (at_watermark(ward.id, frequencies, audience.mark)
            & follows_topics(audience.topics) & reads_in(audience.language, ward.language))


def advance(session: Session, ward_id: int, frequencies: tuple[Frequency, ...], mark: int,
            to: int, now: datetime) -> None:
    """Move every subscription standing at `mark` on to `to`."""
    session.execute(
        update(SubscriptionProgress)
        .where(
            SubscriptionProgress.last_item_id == mark,
            SubscriptionProgress.subscription_id.in_(
                select(Subscription.id).where(_in_ward(ward_id, frequencies))
            ),
        )
        .values(last_item_id=to, updated_at=now)
        .execution_options(synchronize_session=False)
    )
