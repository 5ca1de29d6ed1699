"""The delivery loop: drain the outbox continuously, pass after pass, until told to stop.

After a pass that sent something the loop looks again at once. Otherwise it waits
`scheduler.outbox_poll_seconds`, or less when `wake()` is called (an in-process event said
mail was queued), and then asks the cheap question "is anything due?" before starting a
pass, so an idle service reads the outbox and never writes to it. The poll is what finds
mail queued by other processes, such as `alerts post --urgent` in another shell.

Starting: the rows a sender on this host left in `sending` when it died (kill -9, a crash)
are taken back at once when the holder of their lease is provably gone
(outbox.end_leases_of_the_dead); rows of a sender on another host, or still running, keep
their lease until it ends.

Stopping: `stop()` lets the batch in hand finish (its sends complete and are recorded),
then the pass ends; rows not yet claimed stay queued for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.core.events import EventBus
from alerts.delivery.outbox import any_due, end_leases_of_the_dead
from alerts.delivery.sender import Transport, deliver_due_async, make_transport
from subscriptions.base import utcnow

log = logging.getLogger(__name__)

# After an unexpected error (a locked or unreachable database), wait longer each time.
MAX_ERROR_PAUSE = 60.0


class DeliveryLoop:
    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        *,
        bus: EventBus | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.factory = factory
        self.settings = settings
        self.bus = bus
        # One transport for every pass: the sender enters it per pass, which (re)opens
        # nothing by itself, and leaving it closes the idle connections.
        self.transport = transport if transport is not None else make_transport(settings)
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        """Look at the outbox now rather than at the next poll; safe from any thread."""
        self._loop.call_soon_threadsafe(self._wake.set)

    def stop(self) -> None:
        """Finish the batch in hand, then return from `run`; call from the loop's thread."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        poll = self.settings.scheduler.outbox_poll_seconds
        pause = poll
        failing_since: float | None = None
        self._take_back_from_the_dead()
        while not self._stopping:
            self._wake.clear()
            try:
                if self._due():
                    sent = await self._one_pass()
                    if sent:
                        pause, failing_since = poll, self._recovered(failing_since)
                        continue
            except Exception:
                # Once per outage, not once a pass: a database that is away for an hour
                # would otherwise fill the log with the same traceback.
                if failing_since is None:
                    failing_since = time.monotonic()
                    log.exception("delivery pass failed; trying again after %g s, then twice "
                                  "as long each time up to every %g s (one line when it works "
                                  "again)", pause, MAX_ERROR_PAUSE)
                await self._sleep(pause)
                pause = min(pause * 2, MAX_ERROR_PAUSE)
                continue
            pause, failing_since = poll, self._recovered(failing_since)
            await self._sleep(poll)

    @staticmethod
    def _recovered(failing_since: float | None) -> None:
        if failing_since is not None:
            log.warning("delivery works again after %.0f s of failed passes",
                        time.monotonic() - failing_since)

    def _take_back_from_the_dead(self) -> None:
        try:
            with self.factory() as session:
                freed = end_leases_of_the_dead(session, utcnow())
        except Exception:
            log.exception("could not look for rows left by a sender that died; their "
                          "leases will end by themselves")
            return
        if freed:
            log.warning("%d rows left in 'sending' by a sender on this host that is no longer "
                        "running are due again", freed)

    def _due(self) -> bool:
        with self.factory() as session:
            return any_due(session, utcnow())

    async def _one_pass(self) -> int:
        report = await deliver_due_async(
            self.factory,
            self.settings,
            transport=self.transport,
            batch_size=self.settings.mail.batch_size,
            should_stop=lambda: self._stopping,
            bus=self.bus,
        )
        if report.sent or report.failed or report.retried:
            log.info("delivery pass: sent %d, to retry %d, failed %d, cancelled %d",
                     report.sent, report.retried, report.failed, report.cancelled)
        return report.sent

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
