"""The typed events the pipeline's steps emit, and the small in-process bus that carries them.

A step publishes what happened (`ItemPublished`, `UrgentAlertPosted`, ...); any step that
cares subscribes to that event type. Steps do not call each other, so a new step joins by
subscribing, without touching the others. Handlers run synchronously, in the order they
subscribed; one handler's failure is logged and does not stop the rest.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ItemPublished:
    """New items were stored for a ward (collected from a source or posted by an officer)."""

    ward_code: str
    item_ids: tuple[int, ...]


@dataclass(frozen=True)
class UrgentAlertPosted:
    """An urgent alert was rendered and queued for every confirmed subscriber of a ward."""

    ward_code: str
    message_id: int
    deliveries: int


@dataclass(frozen=True)
class DigestDue:
    """A ward's digest schedule fired for these frequencies (daily, weekly)."""

    ward_code: str
    frequencies: tuple[str, ...]
    at: datetime


@dataclass(frozen=True)
class DigestQueued:
    """Digest messages were stored and fanned out to the outbox."""

    ward_code: str
    message_ids: tuple[int, ...]
    deliveries: int


@dataclass(frozen=True)
class DeliveryFailed:
    """A delivery failed for good (`permanent`) or will be retried; never carries the address."""

    delivery_id: int
    reason: str
    permanent: bool


@dataclass(frozen=True)
class ReplyReceived:
    """A resident's reply was stored for a ward team; `flagged` when it reads like a crime
    report. Carries ids only: the text and the address stay in the database."""

    reply_id: int
    ward_code: str
    flagged: bool


@dataclass(frozen=True)
class BounceReceived:
    """A bounce came back for a subscriber (None when no subscriber could be matched)."""

    subscriber_id: int | None
    severity: str
    suppressed: bool


@dataclass(frozen=True)
class MailQueued:
    """Mail was queued that someone is waiting for (a password reset, an invitation, a
    reminder): the delivery loop looks at the outbox now. Ids only."""

    kind: str
    message_ids: tuple[int, ...]


Event = (ItemPublished | UrgentAlertPosted | DigestDue | DigestQueued | DeliveryFailed
         | ReplyReceived | BounceReceived | MailQueued)
E = TypeVar("E")


class EventBus:
    """Delivers each published event to the handlers subscribed to its type."""

    def __init__(self) -> None:
        self._handlers: defaultdict[type[Any], list[Callable[[Any], None]]] = defaultdict(list)

    def subscribe(self, event_type: type[E], handler: Callable[[E], None]) -> None:
        self._handlers[event_type].append(handler)

    def publish(self, event: object) -> int:
        """Run every handler of the event's type; return how many of them failed."""
        failures = 0
        for handler in list(self._handlers[type(event)]):
            try:
                handler(event)
            except Exception:
                failures += 1
                log.exception("a handler of %s failed", type(event).__name__)
        return failures
