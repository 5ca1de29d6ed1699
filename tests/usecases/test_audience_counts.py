"""What an officer is told a post or an alert reaches is what is then queued: the preview
counts with fan-out's own rule (`subscriptions.subscribers.receiving`: confirmed, address not
suppressed) and, for a post's immediate subscribers, the topics they follow. On both stores."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.sources.items import ItemKind
from alerts.usecases import posting
from alerts.usecases.digest_rounds import queue_immediate
from subscriptions.base import utcnow
from subscriptions.subscribers import Frequency
from subscriptions.suppression import SuppressionReason, suppress
from subscriptions.wards import get_ward
from tests.factories import make_subscriber
from tests.usecases.test_officers import World, team_update, world

__all__ = ["world"]  # the fixture, shared with the officers' service tests


def more_residents(factory: sessionmaker[Session]) -> None:
    """Besides Ann (immediate, every topic): Dee follows scams only, Eve's address bounced."""
    with factory.begin() as session:
        riv = get_ward(session, "RIV")
        dee = make_subscriber(session, riv, "dee@home.example", frequency=Frequency.IMMEDIATE)
        dee.topics = "scams"
        make_subscriber(session, riv, "eve@home.example", frequency=Frequency.IMMEDIATE)
        suppress(session, "eve@home.example", SuppressionReason.HARD_BOUNCE, "550 gone")


def test_an_urgent_alert_is_queued_for_as_many_as_its_preview_said(
        factory: sessionmaker[Session], settings: Settings, world: World) -> None:
    more_residents(factory)
    alert = team_update(kind=ItemKind.ALERT)
    with factory() as session:
        said = posting.preview_draft(session, settings, world.officer, "RIV", alert,
                                     now=utcnow()).confirmed
    with factory.begin() as session:
        done = posting.publish_draft(session, settings, world.officer, "RIV", alert,
                                     now=utcnow())
    assert said == done.deliveries == 2  # Ann and Dee; not Eve


def test_a_post_goes_at_once_to_as_many_as_its_preview_said(
        factory: sessionmaker[Session], settings: Settings, world: World) -> None:
    more_residents(factory)
    burglary = team_update(topics=("burglary",))
    with factory() as session:
        said = posting.preview_draft(session, settings, world.officer, "RIV", burglary,
                                     now=utcnow())
    with factory.begin() as session:
        posting.publish_draft(session, settings, world.officer, "RIV", burglary, now=utcnow())
        queued = queue_immediate(session, get_ward(session, "RIV"), settings, utcnow())
    assert said.immediate == queued.deliveries == 1  # Ann; not Dee (scams), not Eve
    assert said.confirmed == 2
