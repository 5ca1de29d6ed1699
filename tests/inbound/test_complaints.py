"""Complaints: a resident marked one of our emails as spam (an ARF report, RFC 5965, or a
provider's event). Exactly the resident a signed token names is suppressed and leaves that
ward; nobody else, and nobody at all for staff mail or a token that does not verify."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.inbound.complaints import record_complaint
from alerts.inbound.journal import InboundRecord
from subscriptions.base import utcnow
from subscriptions.subscribers import Status, Subscription
from subscriptions.suppression import Suppression, is_suppressed
from tests.factories import make_sent_message, make_subscriber, make_ward


def test_a_providers_complaint_suppresses_that_resident_and_ends_that_subscription_once(
        factory: sessionmaker[Session]) -> None:
    with factory() as session, session.begin():
        ward = make_ward(session, "RIV", "Riverside")
        other = make_ward(session, "HIL", "Hillside")
        ann = make_subscriber(session, ward, "ann@home.example")
        ann_elsewhere = make_subscriber(session, other, "ann@home.example")
        bob = make_subscriber(session, ward, "bob@home.example")
        delivery = make_sent_message(session, ward, [ann, bob])[ann.subscriber_id]
    now = utcnow()
    with factory() as session, session.begin():
        first = record_complaint(session, delivery, source="ses", detail="abuse", now=now,
                                 event_id="evt-1")
        again = record_complaint(session, delivery, source="ses", detail="abuse", now=now,
                                 event_id="evt-1")
    assert first.suppressed and not first.duplicate
    assert again.duplicate and not again.suppressed
    with factory() as session:
        assert is_suppressed(session, "ann@home.example")
        assert not is_suppressed(session, "bob@home.example")
        entry = session.scalars(select(Suppression)).one()
        assert entry.reason == "complaint" and "ses: abuse" in entry.detail
        assert session.get_one(Subscription, ann.id).status == Status.UNSUBSCRIBED
        assert session.get_one(Subscription, ann_elsewhere.id).status != Status.UNSUBSCRIBED, \
            "suppressed everywhere, but only the ward's subscription is ended"
        assert session.get_one(Subscription, bob.id).status != Status.UNSUBSCRIBED
        records = session.scalars(select(InboundRecord)).all()
        assert [(r.kind, r.via, r.delivery_id) for r in records] == \
            [("complaint", "webhook", delivery)]


def test_a_complaint_naming_no_delivery_suppresses_nobody_and_is_journalled(
        factory: sessionmaker[Session]) -> None:
    with factory() as session, session.begin():
        ward = make_ward(session, "RIV", "Riverside")
        make_sent_message(session, ward, [make_subscriber(session, ward, "ann@home.example")])
        outcome = record_complaint(session, 999_999, source="sendgrid", detail="spamreport",
                                   now=utcnow())
    assert not outcome.suppressed and outcome.record_id is not None
    with factory() as session:
        assert session.scalars(select(Suppression)).all() == []
        assert session.scalars(select(InboundRecord.kind)).all() == ["complaint"]
