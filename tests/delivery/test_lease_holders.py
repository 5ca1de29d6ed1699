"""Leases that name their holder: a sender starting on the same host takes back at once the
rows of one that died, while the rows of a sender that may still run, or runs on another
host, keep their lease."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.delivery.outbox import (
    Delivery,
    DeliveryStatus,
    claim_due,
    end_leases_of_the_dead,
    lease_holder,
)
from alerts.delivery.sender import deliver_due
from subscriptions.base import utcnow
from tests.cli.test_commands import alerts, config, run  # noqa: F401 (fixtures)
from tests.delivery.test_resilience import queue_many
from tests.servers import SinkHandler


def _claim_one_for(factory: sessionmaker[Session], holder: str) -> int:
    with factory() as session:
        [ident] = claim_due(session, limit=1, lease_seconds=300, now=utcnow(), holder=holder)
        return ident


def _a_holder_that_has_exited() -> str:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        holder = lease_holder(child.pid)
    finally:
        child.kill()
        child.wait()
    return holder


def test_a_starting_sender_takes_back_at_once_the_rows_of_a_local_sender_that_died_and_no_other(
    factory: sessionmaker[Session],
) -> None:
    queue_many(factory, 6)
    me = lease_holder()
    host, pid, identity = me.rsplit(":", 2)
    booted, _, started = identity.rpartition("/")
    holders = {
        "died": _a_holder_that_has_exited(),
        # The same pid as this live process, but started at another time: the pid was reused.
        "pid reused": f"{host}:{pid}:{booted}/{int(started) + 1}",
        # A holder that said nothing but its pid, which is free now.
        "died, no identity": _a_holder_that_has_exited().rpartition(":")[0] + ":",
        "alive": me,
        "alive, no identity": f"{host}:{pid}:",
        "another host": f"sender-2.example:{pid}:{booted}/{int(started) + 1}",
    }
    rows = {name: _claim_one_for(factory, holder) for name, holder in holders.items()}

    with factory() as session:
        assert end_leases_of_the_dead(session, utcnow()) == 3
    with factory() as session:
        taken = claim_due(session, limit=10, lease_seconds=300, now=utcnow())
        assert set(taken) == {rows["died"], rows["pid reused"], rows["died, no identity"]}
        still_held = {ident: holder for ident, holder in session.execute(
            select(Delivery.id, Delivery.lease_holder)
            .where(Delivery.status == DeliveryStatus.SENDING, Delivery.id.not_in(taken)))}
    assert still_held == {rows[name]: holders[name]
                          for name in ("alive", "alive, no identity", "another host")}


def test_a_lease_names_the_process_that_holds_it(factory: sessionmaker[Session]) -> None:
    queue_many(factory, 1)
    with factory() as session:
        [ident] = claim_due(session, limit=1, lease_seconds=300, now=utcnow())
        row = session.get(Delivery, ident)
        assert row is not None and row.lease_holder == lease_holder()
    host, pid, identity = lease_holder().rsplit(":", 2)
    assert (host, int(pid)) == (socket.gethostname()[:200], os.getpid()) and identity


def test_a_recorded_row_no_longer_names_a_holder(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]
) -> None:
    _, settings = smtp
    queue_many(factory, 3)
    deliver_due(factory, settings)
    with factory() as session:
        assert set(session.execute(select(Delivery.status, Delivery.lease_holder))) == {
            ("sent", None)}


def test_alerts_deliver_sends_at_once_the_rows_of_a_local_sender_that_died(
    factory: sessionmaker[Session], alerts: CliRunner, config: Path,  # noqa: F811
) -> None:
    queue_many(factory, 2)
    left = _claim_one_for(factory, _a_holder_that_has_exited())

    result = run(alerts, config, "deliver")

    assert result.exit_code == 0, result.stderr
    assert "sent 2 " in result.stdout
    with factory() as session:
        assert session.get(Delivery, left).status == DeliveryStatus.SENT
