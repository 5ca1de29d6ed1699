"""Losing nothing at scale: 10,000 messages, a sender killed with SIGKILL mid-way, and two
workers sharing one outbox on PostgreSQL.

    python bench/resilience.py [--messages 10000]

1. SQLite, one `alerts worker` (mail.concurrency 20, batches of 200, the default lease of
   5 minutes) sending to an aiosmtpd sink on loopback; after a third of the messages it gets
   SIGKILL; a second worker is started on the same host and finishes. Prints how many were
   lost (must be 0), how many went twice (must be at most mail.concurrency: each success is
   recorded as its 250 arrives), how many rows the killed worker held as `sending`, and the
   seconds from starting the second worker to its first send of one of those rows (it takes
   them back at start, as their holder is gone, instead of waiting for the lease).
2. PostgreSQL (a throw-away cluster), two `alerts worker` processes draining the same
   10,000 rows. Prints how many each sent and how many went twice (must be 0).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiosmtpd.smtp import SMTP, Envelope, Session  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from alerts.core.db import make_engine, migrate, session_factory  # noqa: E402
from alerts.delivery.outbox import Delivery  # noqa: E402
from subscriptions.subscribers import Subscriber  # noqa: E402
from tests.delivery.test_resilience import queue_many  # noqa: E402
from tests.postgres import postgres_cluster  # noqa: E402
from tests.processes import start_alerts  # noqa: E402
from tests.servers import SinkHandler, smtp_sink  # noqa: E402

CONCURRENCY = 20


def config(path: Path, url: str, port: int, extra: str = "") -> Path:
    path.write_text(
        f'[database]\nurl = "{url}"\n'
        f'[mail]\ntransport = "smtp"\nsmtp_port = {port}\nconcurrency = {CONCURRENCY}\n'
        f'{extra}'
        '[web]\nsecret_key = "bench-resilience"\n[scheduler]\noutbox_poll_seconds = 0.2\n'
    )
    return path


def wait(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def timed(sink: SinkHandler) -> list[tuple[float, str]]:
    """(perf_counter, recipient) of each message the sink accepts, in order."""
    arrivals: list[tuple[float, str]] = []
    accept = sink.handle_DATA

    async def handle_DATA(server: SMTP, session: Session, envelope: Envelope) -> str:
        answer = await accept(server, session, envelope)
        arrivals.append((time.perf_counter(), envelope.rcpt_tos[0]))
        return answer

    sink.handle_DATA = handle_DATA  # type: ignore[method-assign]
    return arrivals


def killed_sender(folder: Path, messages: int) -> None:
    url = f"sqlite:///{folder / 'kill.db'}"
    engine = make_engine(url)
    migrate(engine)
    factory = session_factory(engine)
    queue_many(factory, messages)

    def count(status: str) -> int:
        with factory() as session:
            return session.scalar(select(func.count()).select_from(Delivery)
                                  .where(Delivery.status == status)) or 0

    with smtp_sink() as (sink, port):
        arrivals = timed(sink)
        cfg = config(folder / "kill.toml", url, port, "batch_size = 200\n")
        first = start_alerts(cfg, "worker", log=folder / "kill-1.log")
        wait(lambda: len(sink.received) >= messages // 3, 300, "a third sent")
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait()
        received_at_kill = len(arrivals)
        with factory() as session:
            held = set(session.scalars(
                select(Subscriber.email).join(Delivery, Delivery.subscriber_id == Subscriber.id)
                .where(Delivery.status == "sending")))
        started = time.perf_counter()
        second = start_alerts(cfg, "worker", log=folder / "kill-2.log")
        wait(lambda: count("sent") == messages, 900, "every row sent")
        finished = time.perf_counter()
        second.stop()
        counts = Counter(r.rcpt_tos[0] for r in sink.received)
        after = arrivals[received_at_kill:]
        resumed = next((at for at, rcpt in after if rcpt in held), None)
        first_any = after[0][0] if after else None
    engine.dispose()
    lost = messages - len(counts)
    twice = sum(n - 1 for n in counts.values())
    print(f"SIGKILL mid-send (SQLite, one worker, then a second): {messages:,} messages")
    print(f"  accepted by the sink before the kill: {received_at_kill:,}; rows the killed "
          f"worker held as 'sending': {len(held)}")
    print(f"  lost: {lost}; sent twice: {twice} (mail.concurrency: {CONCURRENCY})")
    print("  restart to the first resumed send of a held row: "
          + (f"{resumed - started:.2f} s" if resumed is not None else "none held")
          + " (mail.lease_seconds: 300; to its first send of any row: "
          + (f"{first_any - started:.2f} s" if first_any is not None else "none")
          + f"); the restart finished in {finished - started:.1f} s")
    if lost or twice > CONCURRENCY:
        raise SystemExit("FAILED: a message was lost, or more repeated than were in flight")


def two_workers(folder: Path, messages: int) -> None:
    with postgres_cluster() as cluster:
        url = cluster.url(cluster.create_database())
        engine = make_engine(url)
        migrate(engine)
        factory = session_factory(engine)
        queue_many(factory, messages)

        def sent() -> int:
            with factory() as session:
                return session.scalar(select(func.count()).select_from(Delivery)
                                      .where(Delivery.status == "sent")) or 0

        with smtp_sink() as (sink, port):
            cfg = config(folder / "pg.toml", url, port, "batch_size = 200\n")
            started = time.perf_counter()
            workers = [start_alerts(cfg, "worker", log=folder / f"pg-{n}.log") for n in (1, 2)]
            wait(lambda: sent() == messages, 600, "every row sent")
            took = time.perf_counter() - started
            for worker in workers:
                worker.stop()
            counts = Counter(r.rcpt_tos[0] for r in sink.received)
        engine.dispose()
    twice = sum(n - 1 for n in counts.values())
    print(f"Two workers on PostgreSQL: {messages:,} messages in {took:.1f} s "
          f"(aiosmtpd sink), {len(counts):,} delivered, sent twice: {twice}")
    if twice or len(counts) != messages:
        raise SystemExit("FAILED: a message was lost or sent twice")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        killed_sender(Path(tmp), options.messages)
        two_workers(Path(tmp), options.messages)


if __name__ == "__main__":
    main()
