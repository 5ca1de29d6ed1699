"""Urgent alerts: an officer's alert for a ward, sent at once to every confirmed subscriber
whatever their frequency, ahead of digests already queued.

The alert is stored as an item (so the record of what was said stays with the ward's
other posts) and as a message rendered once for each language the ward's residents read
(topics do not narrow it: an alert goes to everyone); fan-out gives its rows a higher
priority, so senders claim them before anything else. Alerts are never repeated in digests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.core.config import Settings
from alerts.delivery.fanout import fan_out
from alerts.mail.messages import Message, MessageItem, MessageKind
from alerts.mail.render import render_alert
from alerts.sources.items import ItemKind, store_items
from alerts.sources.officer import officer_item
from alerts.sources.registry import officer_source
from subscriptions.languages import Language
from subscriptions.subscribers import Status, Subscriber, Subscription, reads_in
from subscriptions.wards import Ward, get_ward

URGENT_PRIORITY = 10


@dataclass(frozen=True)
class UrgentOutcome:
    ward_code: str
    message_id: int  # in the ward's own language
    deliveries: int
    message_ids: tuple[int, ...] = ()  # one per language sent


def languages_read(session: Session, ward: Ward) -> list[Language]:
    """The ward's language first, then any other its confirmed subscribers chose."""
    chosen = session.scalars(
        select(Subscriber.language).distinct()
        .join(Subscription, Subscription.subscriber_id == Subscriber.id)
        .where(Subscription.ward_id == ward.id, Subscription.status == Status.CONFIRMED,
               Subscriber.language.is_not(None))
    )
    own = Language(ward.language)
    return [own, *sorted({Language(c) for c in chosen if c is not None} - {own})]


def post_urgent(session: Session, settings: Settings, *, ward_code: str, title: str,
                body: str, now: datetime) -> UrgentOutcome:
    """Store, render and queue an urgent alert in the caller's transaction."""
    ward = get_ward(session, ward_code)
    collected = officer_item(title=title, body=body, kind=ItemKind.ALERT, starts=None,
                             ends=None, location=None, now=now)
    stored = store_items(session, officer_source(session, ward), [collected])
    message_ids: list[int] = []
    deliveries = 0
    for language in languages_read(session, ward):
        rendered = render_alert(ward.name, collected.title, collected.body_html, settings,
                                now=now, language=language)
        message = Message(ward_id=ward.id, kind=MessageKind.ALERT, subject=rendered.subject,
                          html=rendered.html, text=rendered.text, calendar=None,
                          language=language, created_at=now)
        session.add(message)
        session.flush()
        session.add_all(MessageItem(message_id=message.id, item_id=i)
                        for i in stored.new_item_ids)
        deliveries += fan_out(session, message, now=now, priority=URGENT_PRIORITY,
                              audience=reads_in(language, ward.language))
        message_ids.append(message.id)
    return UrgentOutcome(ward.code, message_ids[0], deliveries, tuple(message_ids))
