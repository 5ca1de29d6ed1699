"""How the steps hang together in one process: which handler answers which event.

`wire` is called once by each process that runs steps (a CLI command, `alerts run`); a
new step joins the pipeline by subscribing here, without touching the others.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.core.events import DeliveryFailed, DigestDue, EventBus, ItemPublished
from alerts.usecases.digest_rounds import queue_digests, queue_immediate
from subscriptions.base import utcnow
from subscriptions.subscribers import Frequency
from subscriptions.wards import get_ward

log = logging.getLogger(__name__)


def wire(bus: EventBus, factory: sessionmaker[Session], settings: Settings) -> None:
    def send_immediately(event: ItemPublished) -> None:
        with factory() as session, session.begin():
            outcome = queue_immediate(session, get_ward(session, event.ward_code), settings,
                                      utcnow())
        if outcome.deliveries:
            log.info("ward %s: %d immediate message(s) queued for %d delivery(ies)",
                     event.ward_code, outcome.items, outcome.deliveries)

    def queue_due_digest(event: DigestDue) -> None:
        frequencies = tuple(Frequency(f) for f in event.frequencies)
        for outcome in queue_digests(factory, settings, ward_code=event.ward_code,
                                     frequencies=frequencies, now=event.at, bus=bus):
            log.info("ward %s: %s digest(s): %s", outcome.ward_code,
                     "/".join(event.frequencies), outcome.reason)

    def note_failure(event: DeliveryFailed) -> None:
        log.warning("delivery %d %s: %s", event.delivery_id,
                    "failed" if event.permanent else "will be retried", event.reason)

    bus.subscribe(ItemPublished, send_immediately)
    bus.subscribe(DigestDue, queue_due_digest)
    bus.subscribe(DeliveryFailed, note_failure)
