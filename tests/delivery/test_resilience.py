"""Delivery that never loses a message: a relay that defers everyone once, senders that are
cancelled or killed mid-batch (which repeat at most the messages in flight), and two
senders draining one outbox."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from alerts.core.config import Settings
from alerts.delivery.fanout import fan_out
from alerts.delivery.outbox import Delivery
from alerts.delivery.sender import deliver_due, deliver_due_async
from alerts.mail.messages import Message
from subscriptions.base import utcnow
from tests.factories import make_ward
from tests.processes import slow_down, start_alerts, wait_for
from tests.servers import SinkHandler, smtp_sink


def queue_many(factory: sessionmaker[DbSession], count: int) -> None:
    """A ward of `count` confirmed residents and one digest fanned out to them, in bulk."""
    from sqlalchemy import insert

    from subscriptions.base import utcnow
    from subscriptions.subscribers import Subscriber, Subscription

    now = utcnow()
    with factory.begin() as session:
        ward = make_ward(session)
        ids = session.execute(
            insert(Subscriber).returning(Subscriber.id),
            [{"email": f"r{n:05d}@home.example", "name": "", "created_at": now}
             for n in range(count)],
        ).scalars().all()
        session.execute(insert(Subscription), [
            {"subscriber_id": i, "ward_id": ward.id, "frequency": "weekly",
             "status": "confirmed", "consent_at": now, "consent_method": "cli",
             "consent_source": "tests", "consent_wording": "2026-11",
             "consent_prior_declared": True, "confirmed_at": now, "created_at": now}
            for i in ids
        ])
        message = Message(ward_id=ward.id, kind="digest", subject="Weekly news",
                          html="<p>News.</p>", text="News.")
        session.add(message)
        session.flush()
        fan_out(session, message)


def sent(factory: sessionmaker[DbSession]) -> int:
    with factory() as session:
        return session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.status == "sent")) or 0


def test_a_relay_that_defers_every_first_try_still_gets_each_message_exactly_once(
    factory: sessionmaker[DbSession], smtp: tuple[SinkHandler, Settings]
) -> None:
    sink, settings = smtp
    settings = dataclasses.replace(settings, mail=dataclasses.replace(
        settings.mail, retry_base_seconds=0.05))
    queue_many(factory, 40)
    tried: set[str] = set()
    accept = sink.handle_RCPT

    async def defer_first(server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        if address not in tried:
            tried.add(address)
            return "451 4.7.1 Greylisted, try again later"
        return await accept(server, session, envelope, address, options)

    sink.handle_RCPT = defer_first  # type: ignore[method-assign]
    rounds = 0
    while sent(factory) < 40 and rounds < 20:
        deliver_due(factory, settings)
        rounds += 1
        time.sleep(0.1)
    counts = Counter(r.rcpt_tos[0] for r in sink.received)
    assert len(counts) == 40 and set(counts.values()) == {1}
    with factory() as session:
        attempts = set(session.scalars(select(Delivery.attempts)))
    assert attempts == {2}, "each row was deferred once, then sent"


def test_a_pass_cancelled_mid_batch_has_recorded_what_the_relay_accepted_and_a_resumed_pass_repeats_at_most_the_connections_in_flight(  # noqa: E501
    factory: sessionmaker[DbSession], smtp: tuple[SinkHandler, Settings]
) -> None:
    sink, settings = smtp
    # A lease long enough for one batch of all 200 (see safe_batch_size), 4 connections.
    settings = dataclasses.replace(settings, mail=dataclasses.replace(
        settings.mail, lease_seconds=3_600))
    concurrency = settings.mail.concurrency
    slow_down(sink, 0.01)
    queue_many(factory, 200)

    async def cancel_after(accepted: int) -> int:
        task = asyncio.create_task(deliver_due_async(factory, settings, batch_size=200))
        while len(sink.received) < accepted:
            await asyncio.sleep(0.005)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return len(sink.received)

    accepted = asyncio.run(cancel_after(50))
    assert accepted < 200, "cancelled mid-batch"
    # Only a message whose 250 had not arrived yet may be missing from the record.
    assert sent(factory) >= accepted - concurrency

    # The next sender takes the rest once the lease ends.
    later = utcnow() + timedelta(seconds=settings.mail.lease_seconds + 1)
    deliver_due(factory, settings, now=lambda: later)
    counts = Counter(received.rcpt_tos[0] for received in sink.received)
    assert len(counts) == 200 == sent(factory), "nothing lost"
    twice = sum(n - 1 for n in counts.values())
    assert twice <= concurrency, f"{twice} sent twice with {concurrency} connections"


def config_for(path: Path, settings: Settings, smtp_port: int, **mail: object) -> Path:
    extra = "".join(f"{key} = {value!r}\n".replace("'", '"') for key, value in mail.items())
    path.write_text(
        f'[database]\nurl = "{settings.database.url}"\n'
        f'[mail]\ntransport = "smtp"\nsmtp_port = {smtp_port}\nconcurrency = 10\n{extra}'
        '[web]\nsecret_key = "resilience-tests"\nbase_url = "https://alerts.example.org"\n'
        "[scheduler]\noutbox_poll_seconds = 0.2\n"
    )
    return path


def test_a_sender_killed_mid_batch_loses_nothing_repeats_at_most_its_connections_and_is_resumed_at_once(  # noqa: E501
    factory: sessionmaker[DbSession], settings: Settings, tmp_path: Path
) -> None:
    """A batch (50: safe_batch_size) larger than the connections (10), and the default lease
    of 5 minutes: the restarted worker on the same host does not wait for the dead one's
    lease."""
    queue_many(factory, 1_000)
    with smtp_sink() as (sink, port):
        config = config_for(tmp_path / "alerts.toml", settings, port, batch_size=100)
        first = start_alerts(config, "worker", log=tmp_path / "first.log")

        def mid_batch() -> bool:
            with factory() as session:
                return len(sink.received) >= 275 and bool(session.scalar(
                    select(func.count()).select_from(Delivery)
                    .where(Delivery.status == "sending")))

        wait_for(mid_batch, what="275 sent, a batch in hand", timeout=60, process=first)
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait()
        second = start_alerts(config, "worker", log=tmp_path / "second.log")
        try:
            wait_for(lambda: sent(factory) == 1_000, what="every row sent", timeout=120,
                     process=second)
        finally:
            assert second.stop() == 0, second.output()
        counts = Counter(r.rcpt_tos[0] for r in sink.received)
    assert len(counts) == 1_000, "nothing lost"
    duplicates = sum(n - 1 for n in counts.values())
    assert duplicates <= 10, f"{duplicates} sent twice: more than the 10 connections in flight"


def test_two_workers_drain_one_outbox_and_send_nothing_twice(
    factory: sessionmaker[DbSession], settings: Settings, tmp_path: Path
) -> None:
    queue_many(factory, 2_000)
    with smtp_sink() as (sink, port):
        config = config_for(tmp_path / "alerts.toml", settings, port, batch_size=50)
        workers = [start_alerts(config, "worker", log=tmp_path / f"w{n}.log") for n in (1, 2)]
        try:
            wait_for(lambda: sent(factory) == 2_000, what="every row sent", timeout=90,
                     process=workers[0])
        finally:
            for worker in workers:
                assert worker.stop() == 0, worker.output()
        counts = Counter(r.rcpt_tos[0] for r in sink.received)
    assert len(counts) == 2_000 and set(counts.values()) == {1}
    logs = [worker.output() for worker in workers]
    assert all("delivery pass: sent" in log for log in logs), "both workers took a share"


