"""Urgent alerts: everyone confirmed in the ward, at once, ahead of digests, never repeated."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.delivery.outbox import Delivery, claim_due
from alerts.delivery.sender import deliver_due
from alerts.mail.messages import Message
from alerts.sources.items import CollectedItem, ItemKind, store_items
from alerts.sources.registry import officer_source
from alerts.usecases.digest_rounds import queue_digests
from alerts.usecases.posting import post_urgent
from subscriptions.base import utcnow
from subscriptions.subscribers import Frequency, unsubscribe_everywhere
from tests.factories import make_subscriber, make_ward
from tests.servers import SinkHandler


def test_an_urgent_alert_reaches_every_confirmed_resident_of_the_ward_only(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]
) -> None:
    sink, settings = smtp
    with factory.begin() as session:
        riv, hil = make_ward(session, "RIV", "Riverside"), make_ward(session, "HIL", "Hillcrest")
        for n, frequency in enumerate(Frequency):
            make_subscriber(session, riv, f"riv{n}@home.example", frequency=frequency)
        make_subscriber(session, riv, "pending@home.example", confirmed=False)
        make_subscriber(session, riv, "left@home.example")
        unsubscribe_everywhere(session, "left@home.example")
        make_subscriber(session, hil, "hil@home.example")
    with factory.begin() as session:
        outcome = post_urgent(session, settings, ward_code="RIV",
                              title="Missing child near the park",
                              body="Please check sheds and garages. <script>x()</script>",
                              now=utcnow())
    assert outcome.deliveries == 3
    deliver_due(factory, settings)
    assert sorted(r.rcpt_tos[0] for r in sink.received) == [
        "riv0@home.example", "riv1@home.example", "riv2@home.example"]
    message = sink.received[0].message
    assert message["Subject"].startswith("[Urgent] ") and message["Subject"].endswith(
        "(Riverside)")
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "Missing child" in text and "call 999" in text.lower() and "Crimestoppers" in text
    html_part = message.get_body(("html",))
    assert html_part is not None and "<script" not in html_part.get_content()
    assert message["Precedence"] is None, "an alert is not bulk mail"


def test_alerts_are_claimed_ahead_of_queued_digests_and_never_repeated_in_them(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    now = utcnow()
    with factory.begin() as session:
        ward = make_ward(session, "RIV", "Riverside")
        make_subscriber(session, ward, "ann@home.example", at=now - timedelta(days=1))
        store_items(session, officer_source(session, ward), [CollectedItem(
            guid="p1", kind=ItemKind.POST, title="Weekly round-up", published_at=now)])
    queue_digests(factory, settings, now=now)
    with factory.begin() as session:
        alert = post_urgent(session, settings, ward_code="RIV", title="Road closed",
                            body="Avoid the high street this evening.", now=now)
    with factory() as session:
        [first] = claim_due(session, limit=1, lease_seconds=60, now=utcnow())
        claimed = session.get(Delivery, first)
        assert claimed is not None and claimed.message_id == alert.message_id
    later = queue_digests(factory, settings, now=now + timedelta(days=7))
    assert not any(o.queued for o in later), "the alert is not news for the next digest"
    with factory() as session:
        assert len(session.scalars(select(Delivery)).all()) == 2


def test_the_longest_title_for_the_longest_ward_name_still_queues_with_a_shortened_subject(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    with factory.begin() as session:
        ward = make_ward(session, "RIV", "R" * 200)
        make_subscriber(session, ward, "ann@home.example", frequency=Frequency.IMMEDIATE)
        outcome = post_urgent(session, settings, ward_code="RIV", title="T" * 500,
                              body="Avoid the area.", now=utcnow())
    assert outcome.deliveries == 1
    with factory() as session:
        message = session.get(Message, outcome.message_id)
        assert message is not None
        assert len(message.subject) == 300 and message.subject.endswith("T…")
        assert message.subject.startswith("[Urgent] TTT")
