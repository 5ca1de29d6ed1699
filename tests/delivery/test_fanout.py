"""Fan-out: a message becomes one outbox row per confirmed subscriber of its ward, once."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.delivery.fanout import fan_out
from alerts.delivery.outbox import Delivery, DeliveryStatus
from alerts.mail.marks import UNSUBSCRIBE_MARK
from alerts.mail.messages import Message
from subscriptions.subscribers import Status
from subscriptions.wards import Ward
from tests.factories import make_subscriber, make_ward


def new_message(session: Session, ward: Ward) -> Message:
    message = Message(
        ward_id=ward.id,
        kind="digest",
        subject="Parking near the school gates",
        html=f"<p>Please park considerately. <a href='{UNSUBSCRIBE_MARK}'>Stop these</a></p>",
        text=f"Please park considerately.\nStop these: {UNSUBSCRIBE_MARK}",
        calendar=None,
    )
    session.add(message)
    session.flush()
    return message


def queued_subscribers(session: Session, message: Message) -> set[int]:
    return set(session.scalars(
        select(Delivery.subscriber_id).where(Delivery.message_id == message.id)
    ))


def test_only_confirmed_subscribers_of_the_message_ward_get_a_row(session: Session) -> None:
    ward, elsewhere = make_ward(session), make_ward(session)
    confirmed = [make_subscriber(session, ward) for _ in range(3)]
    make_subscriber(session, ward, confirmed=False)
    left = make_subscriber(session, ward)
    left.status = Status.UNSUBSCRIBED
    neighbour = make_subscriber(session, elsewhere)
    message = new_message(session, ward)

    assert fan_out(session, message) == 3
    assert queued_subscribers(session, message) == {s.subscriber_id for s in confirmed}
    assert neighbour.subscriber_id not in queued_subscribers(session, message)


def test_queueing_a_message_twice_queues_each_subscriber_once(session: Session) -> None:
    ward = make_ward(session)
    for _ in range(4):
        make_subscriber(session, ward)
    message = new_message(session, ward)

    assert fan_out(session, message) == 4
    session.commit()
    assert fan_out(session, message) == 0
    rows = session.scalars(select(Delivery).where(Delivery.message_id == message.id)).all()
    assert len(rows) == 4


def test_a_subscriber_confirmed_later_is_added_by_queueing_again(session: Session) -> None:
    ward = make_ward(session)
    make_subscriber(session, ward)
    late = make_subscriber(session, ward, confirmed=False)
    message = new_message(session, ward)
    assert fan_out(session, message) == 1

    late.status = Status.CONFIRMED
    session.flush()
    assert fan_out(session, message) == 1
    assert late.subscriber_id in queued_subscribers(session, message)


def test_new_rows_are_queued_and_due_at_once(session: Session) -> None:
    ward = make_ward(session)
    make_subscriber(session, ward)
    message = new_message(session, ward)
    fan_out(session, message)
    row = session.scalars(select(Delivery)).one()
    assert (row.status, row.attempts, row.lease_until, row.sent_at) == (
        DeliveryStatus.QUEUED, 0, None, None)
    assert row.next_attempt_at <= row.created_at


def test_a_ward_with_nobody_confirmed_queues_nothing(session: Session) -> None:
    ward = make_ward(session)
    make_subscriber(session, ward, confirmed=False)
    message = new_message(session, ward)
    assert fan_out(session, message) == 0
    assert queued_subscribers(session, message) == set()


def test_an_outcome_is_not_written_over_a_row_that_another_sender_finished(
    factory: sessionmaker[Session],
) -> None:
    from datetime import timedelta

    from alerts.delivery.outbox import claim_due, mark_all_sent, mark_for_retry
    from subscriptions.base import utcnow

    with factory() as session:
        ward = make_ward(session)
        make_subscriber(session, ward)
        message = Message(ward_id=ward.id, kind="digest", subject="s", html="h", text="t")
        session.add(message)
        session.flush()
        fan_out(session, message)
        session.commit()
        now = utcnow()
        [first] = claim_due(session, limit=1, lease_seconds=1, now=now)
        # The first sender stalls past its lease; a second claims and sends the row.
        [again] = claim_due(session, limit=1, lease_seconds=60, now=now + timedelta(seconds=5))
        assert again == first
        mark_all_sent(session, [again], now + timedelta(seconds=6))
        mark_for_retry(session, first, "late answer", attempts=1, max_attempts=5,
                       base_seconds=60, now=now + timedelta(seconds=7))
        session.commit()
        row = session.get(Delivery, first)
        assert row is not None and row.status == "sent"
