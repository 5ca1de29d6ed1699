"""The functions the job store refers to: collect a source, announce a due digest, poll the
inbound mailbox, remind ward teams of replies still open, reconcile.

Each is a plain (not async) module-level function of plain arguments: the job store pickles
a reference and the arguments, and the scheduler runs plain functions in a worker thread,
off the event loop, because they do blocking network and database work. Each finds the
running service through `context.current()` and does nothing once the service is stopping.
A job logs its own failure and returns, so one bad source or ward never stops the others.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from alerts.core.db import transaction
from alerts.core.events import DigestDue, MailQueued
from alerts.inbound.imap import ImapError
from alerts.inbound.intake import Intake
from alerts.inbound.intake import poll_inbox as intake_poll
from alerts.inbound.reminders import queue_reminders
from alerts.mail.messages import MessageKind
from alerts.service import context, plan
from alerts.service.context import ServiceContext
from alerts.sources.collect import collect
from alerts.sources.registry import SourceError
from subscriptions.base import utcnow

log = logging.getLogger(__name__)


@contextmanager
def _service(job: str) -> Iterator[ServiceContext | None]:
    current = context.current()
    if current is None:
        log.warning("job %s skipped: the service is not running in this process", job)
        yield None
        return
    with current.jobs.working() as admitted:
        yield current if admitted else None


def collect_source(source_id: int) -> None:
    """Fetch one source; new items reach the pipeline as `ItemPublished` on the bus."""
    with _service(f"collect:{source_id}") as service:
        if service is None:
            return
        try:
            report = collect(service.factory, service.settings, source_id=source_id,
                             bus=service.bus)
        except SourceError as exc:
            # Removed (or no longer fetched) since the last reconcile, which drops the job.
            log.info("collect:%d skipped: %s", source_id, exc)
            return
        except Exception:
            log.exception("collect:%d failed", source_id)
            return
        for result in report.results:
            if result.error:
                log.warning("collect:%d: %s", source_id, result.error)
            elif result.added or result.updated or result.withdrawn:
                log.info("collect:%d: %d new, %d updated, %d withdrawn", source_id,
                         result.added, result.updated, result.withdrawn)
            for line in result.left_out:
                log.warning("collect:%d: left out: %s", source_id, line)


def digest_due(ward_code: str, frequency: str) -> None:
    """Announce that a ward's digest for one frequency is due; the pipeline queues it."""
    with _service(f"digest:{ward_code}:{frequency}") as service:
        if service is None:
            return
        failures = service.bus.publish(DigestDue(ward_code, (frequency,), utcnow()))
        if failures:
            log.error("digest:%s:%s: %d handler(s) failed (see above)", ward_code, frequency,
                      failures)


def poll_inbox() -> None:
    """Fetch and handle what waits in the IMAP mailbox; replies reach the bus."""
    with _service(plan.POLL_INBOX_ID) as service:
        if service is None:
            return
        intake = Intake(service.factory, service.settings, publish=service.bus.publish)
        try:
            report = intake_poll(intake, service.settings)
        except ImapError as exc:
            log.error("%s: %s", plan.POLL_INBOX_ID, exc)
            return
        except Exception:
            log.exception("%s failed", plan.POLL_INBOX_ID)
            return
        if report.fetched:
            log.info("%s: %d fetched, %d handled, %d left for the next poll",
                     plan.POLL_INBOX_ID, report.fetched, report.handled, report.left)


def remind_open_replies() -> None:
    """Email each ward team the residents' replies open longer than `inbound.reminder_days`."""
    with _service(plan.REMINDERS_ID) as service:
        if service is None:
            return
        try:
            with transaction(service.factory) as session:
                queued = queue_reminders(session, service.settings, now=utcnow())
        except Exception:
            log.exception("%s failed", plan.REMINDERS_ID)
            return
        if queued:
            log.info("%s: queued for %s", plan.REMINDERS_ID, ", ".join(
                f"{code} ({n} open)" for code, (_, n) in queued.items()))
            service.bus.publish(MailQueued(MessageKind.REMINDER,
                                           tuple(ident for ident, _ in queued.values())))


def reconcile() -> None:
    """Bring the scheduled jobs in line with the wards, sources and crons stored now."""
    with _service(plan.RECONCILE_ID) as service:
        if service is None:
            return
        try:
            report = plan.reconcile(service.scheduler, service.factory, service.settings)
        except Exception:
            log.exception("reconciling the scheduled jobs failed; trying again later")
            return
        if report:
            log.info("jobs reconciled: added %s, rescheduled %s, removed %s",
                     report.added or "none", report.changed or "none", report.removed or "none")
