"""Queueing digests: pick a ward's new items, render once, store the message, fan out.

This is the service behind `alerts digest send` and `alerts digest preview`; the rules
of what goes in live in `compose`, the look in `render`, the rows in `delivery.fanout`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.config import Settings
from alerts.delivery.fanout import fan_out
from alerts.digests.compose import DigestContent, DigestItem, compose_digest
from alerts.digests.render import Rendered, render_digest
from alerts.items import Item, ItemKind
from alerts.messages import Message, MessageItem, MessageKind
from alerts.sources.registry import Source
from subscriptions.base import utcnow
from subscriptions.subscribers import Status, Subscription
from subscriptions.wards import Ward, get_ward, list_wards


@dataclass(frozen=True)
class DigestOutcome:
    ward_code: str
    message_id: int | None
    items: int
    deliveries: int
    reason: str

    @property
    def queued(self) -> bool:
        return self.message_id is not None


def undigested_items(session: Session, ward: Ward) -> list[DigestItem]:
    """The ward's live items that no digest of the ward has carried yet."""
    carried = (
        select(MessageItem.item_id)
        .join(Message, Message.id == MessageItem.message_id)
        .where(Message.ward_id == ward.id, Message.kind == MessageKind.DIGEST)
    )
    rows = session.scalars(
        select(Item)
        .join(Source, Source.id == Item.source_id)
        .where(
            Source.ward_id == ward.id,
            Item.withdrawn_at.is_(None),
            Item.kind.in_([ItemKind.POST, ItemKind.ADVICE, ItemKind.SESSION]),
            Item.id.not_in(carried),
        )
        .order_by(Item.id)
    )
    return [
        DigestItem(
            id=item.id,
            kind=ItemKind(item.kind),
            title=item.title,
            body_html=item.body_html,
            link=item.link,
            published_at=item.published_at,
            starts_at=item.starts_at,
            ends_at=item.ends_at,
            location=item.location,
        )
        for item in rows
    ]


def next_digest(session: Session, ward: Ward, settings: Settings, now: datetime) -> (
    DigestContent | None
):
    return compose_digest(
        ward.code,
        ward.name,
        undigested_items(session, ward),
        now=now,
        max_age=timedelta(days=settings.sources.max_item_age_days),
    )


def preview_digest(
    session: Session, ward_code: str, settings: Settings, now: datetime | None = None
) -> Rendered | None:
    """What the ward's next digest would look like, changing nothing."""
    moment = now or utcnow()
    content = next_digest(session, get_ward(session, ward_code), settings, moment)
    return None if content is None else render_digest(content, settings, now=moment)


def confirmed_count(session: Session, ward: Ward) -> int:
    return session.scalar(
        select(func.count())
        .select_from(Subscription)
        .where(Subscription.ward_id == ward.id, Subscription.status == Status.CONFIRMED)
    ) or 0


def queue_digest(session: Session, ward: Ward, settings: Settings, now: datetime) -> DigestOutcome:
    """Render the ward's digest once, record what it carries and queue one row per resident."""
    content = next_digest(session, ward, settings, now)
    if content is None:
        return DigestOutcome(ward.code, None, 0, 0, "nothing new since the last digest")
    if confirmed_count(session, ward) == 0:
        return DigestOutcome(
            ward.code, None, len(content.items), 0, "no confirmed subscribers yet; items kept"
        )
    rendered = render_digest(content, settings, now=now)
    message = Message(
        ward_id=ward.id,
        kind=MessageKind.DIGEST,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        calendar=rendered.calendar,
        created_at=now,
    )
    session.add(message)
    session.flush()
    session.add_all(MessageItem(message_id=message.id, item_id=i) for i in content.item_ids)
    deliveries = fan_out(session, message)
    return DigestOutcome(ward.code, message.id, len(content.items), deliveries, "queued")


def queue_digests(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    ward_code: str | None = None,
    now: datetime | None = None,
) -> list[DigestOutcome]:
    """Queue the digest of one ward, or of every ward; each ward in its own transaction."""
    moment = now or utcnow()
    with factory() as session:
        codes = [get_ward(session, ward_code).code] if ward_code else [
            ward.code for ward in list_wards(session)
        ]
    outcomes = []
    for code in codes:
        with factory() as session, session.begin():
            outcomes.append(queue_digest(session, get_ward(session, code), settings, moment))
    return outcomes
