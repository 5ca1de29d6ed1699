"""Urgent alerts: an officer's alert for a ward, sent at once to every confirmed subscriber
whatever their frequency, ahead of digests already queued.

The alert is stored as an item (so the record of what was said stays with the ward's
other posts) and as a message rendered once; fan-out gives its rows a higher priority, so
senders claim them before anything else. Alerts are never repeated in digests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from alerts.config import Settings
from alerts.delivery.fanout import fan_out
from alerts.digests.render import render_alert
from alerts.items import ItemKind, store_items
from alerts.messages import Message, MessageItem, MessageKind
from alerts.sources.officer import officer_item
from alerts.sources.registry import officer_source
from subscriptions.wards import get_ward

URGENT_PRIORITY = 10


@dataclass(frozen=True)
class UrgentOutcome:
    ward_code: str
    message_id: int
    deliveries: int


def post_urgent(session: Session, settings: Settings, *, ward_code: str, title: str,
                body: str, now: datetime) -> UrgentOutcome:
    """Store, render and queue an urgent alert in the caller's transaction."""
    ward = get_ward(session, ward_code)
    collected = officer_item(title=title, body=body, kind=ItemKind.ALERT, starts=None,
                             ends=None, location=None, now=now)
    stored = store_items(session, officer_source(session, ward), [collected])
    rendered = render_alert(ward.name, collected.title, collected.body_html, settings, now=now)
    message = Message(ward_id=ward.id, kind=MessageKind.ALERT, subject=rendered.subject,
                      html=rendered.html, text=rendered.text, calendar=None, created_at=now)
    session.add(message)
    session.flush()
    session.add_all(MessageItem(message_id=message.id, item_id=i) for i in stored.new_item_ids)
    deliveries = fan_out(session, message, now=now, priority=URGENT_PRIORITY)
    return UrgentOutcome(ward.code, message.id, deliveries)
