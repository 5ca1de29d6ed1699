"""Claiming on every store: senders that claim at the same moment never share a row."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.delivery.outbox import Delivery, DeliveryStatus, claim_due
from subscriptions.base import utcnow
from subscriptions.subscribers import Subscriber
from tests.delivery.test_fanout import new_message
from tests.factories import make_ward

ROWS, SENDERS, BATCH = 400, 4, 25


def test_senders_claiming_at_once_never_take_the_same_row(
    factory: sessionmaker[Session],
) -> None:
    now = utcnow()
    with factory.begin() as session:
        message = new_message(session, make_ward(session))
        session.execute(insert(Subscriber), [
            {"email": f"resident{n}@home.example", "name": "", "created_at": now}
            for n in range(ROWS)])
        session.execute(insert(Delivery), [
            {"message_id": message.id, "subscriber_id": subscriber, "status": "queued",
             "attempts": 0, "next_attempt_at": now, "created_at": now, "priority": 0}
            for subscriber in session.scalars(select(Subscriber.id))])
    start = threading.Barrier(SENDERS)

    def sender() -> list[int]:
        start.wait()
        claimed: list[int] = []
        with factory() as session:
            while batch := claim_due(session, limit=BATCH, lease_seconds=300, now=now):
                claimed += batch
        return claimed

    with ThreadPoolExecutor(SENDERS) as pool:
        claims = list(pool.map(lambda _: sender(), range(SENDERS)))
    every = [row for claimed in claims for row in claimed]
    assert len(every) == len(set(every)) == ROWS
    with factory() as session:
        rows = session.scalars(select(Delivery)).all()
    assert {(row.status, row.attempts) for row in rows} == {(DeliveryStatus.SENDING, 1)}
