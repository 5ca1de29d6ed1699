"""The functions the job store refers to: collect a source, announce a due digest, poll the
inbound mailbox, remind ward teams of replies still open, reconcile.

Each is a plain (not async) module-level function of plain arguments: the job store pickles
a reference and the arguments, and the scheduler runs plain functions in a worker thread,
off the event loop, because they do blocking network and database work. Each finds the
running service through `context.current()` and does nothing once the service is stopping.
A job logs its own failure and returns, so one bad source or ward never stops the others.

Every run is recorded in `job_runs` (`alerts.core.job_runs`) here, in `_service`, whichever
process's scheduler runs it: its start, then its success or its failure (the error's class
name and a short reason the job gives, never an error's text, which may quote a resident).
The records are short transactions of their own, apart from the job's work; one that
fails (a locked database) costs one line in the log, never the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.orm import Session

from alerts.core.db import transaction
from alerts.core.events import DigestDue, MailQueued
from alerts.core.job_runs import Failure, record_end, record_start
from alerts.inbound.imap import ImapError
from alerts.inbound.intake import Intake
from alerts.inbound.intake import poll_inbox as intake_poll
from alerts.inbound.reminders import queue_reminders
from alerts.mail.messages import MessageKind
from alerts.service import context, plan
from alerts.service.context import ServiceContext
from alerts.service.scheduler import describe
from alerts.sources.collect import collect
from alerts.sources.registry import SourceError
from subscriptions.base import utcnow

log = logging.getLogger(__name__)


# What a run records of an error it did not expect: its class, and where to look.
UNEXPECTED = "unexpected; the service's log has the traceback"


@dataclass
class Run:
    """A job at work: the running service, and the failure to record when the run ends."""

    service: ServiceContext
    failure: Failure | None = None

    def failed(self, kind: str | Exception, reason: str = UNEXPECTED) -> None:
        name = kind if isinstance(kind, str) else type(kind).__name__
        self.failure = Failure(name, reason)


@contextmanager
def _service(job: str) -> Iterator[Run | None]:
    current = context.current()
    if current is None:
        log.warning("job %s skipped: the service is not running in this process", job)
        yield None
        return
    with current.jobs.working() as admitted:
        if not admitted:
            yield None
            return
        run = Run(current)
        _record(current, job, lambda session: record_start(session, job, utcnow()))
        try:
            yield run
        except Exception as exc:
            run.failed(exc)
            raise
        finally:
            _record(current, job, lambda session: record_end(session, job, utcnow(),
                                                             run.failure))


def _record(service: ServiceContext, job: str, write: Callable[[Session], None]) -> None:
    try:
        with transaction(service.factory) as session:
            write(session)
    except Exception as exc:
        log.warning("job %s: its run could not be recorded (%s); it carries on", job,
                    describe(exc))


def collect_source(source_id: int) -> None:
    """Fetch one source; new items reach the pipeline as `ItemPublished` on the bus."""
    with _service(f"collect:{source_id}") as run:
        if run is None:
            return
        service = run.service
        try:
            report = collect(service.factory, service.settings, source_id=source_id,
                             bus=service.bus)
        except SourceError as exc:
            # Removed (or no longer fetched) since the last reconcile, which drops the job.
            log.info("collect:%d skipped: %s", source_id, exc)
            return
        except Exception as exc:
            log.exception("collect:%d failed", source_id)
            run.failed(exc)
            return
        for result in report.results:
            if result.error:
                log.warning("collect:%d: %s", source_id, result.error)
                # The source's own one-line error, as its page shows it: no resident's words.
                run.failed("SourceError", result.error)
            elif result.added or result.updated or result.withdrawn:
                log.info("collect:%d: %d new, %d updated, %d withdrawn", source_id,
                         result.added, result.updated, result.withdrawn)
            for line in result.left_out:
                log.warning("collect:%d: left out: %s", source_id, line)


def digest_due(ward_code: str, frequency: str) -> None:
    """Announce that a ward's digest for one frequency is due; the pipeline queues it."""
    with _service(f"digest:{ward_code}:{frequency}") as run:
        if run is None:
            return
        failures = run.service.bus.publish(DigestDue(ward_code, (frequency,), utcnow()))
        if failures:
            log.error("digest:%s:%s: %d handler(s) failed (see above)", ward_code, frequency,
                      failures)
            run.failed("HandlerError", f"{failures} handler(s) failed; the log says why")


def poll_inbox() -> None:
    """Fetch and handle what waits in the IMAP mailbox; replies reach the bus."""
    with _service(plan.POLL_INBOX_ID) as run:
        if run is None:
            return
        service = run.service
        intake = Intake(service.factory, service.settings, publish=service.bus.publish)
        try:
            report = intake_poll(intake, service.settings)
        except ImapError as exc:
            log.error("%s: %s", plan.POLL_INBOX_ID, exc)
            run.failed(exc, "the mailbox could not be read; the log says why")
            return
        except Exception as exc:
            log.exception("%s failed", plan.POLL_INBOX_ID)
            run.failed(exc)
            return
        if report.fetched:
            log.info("%s: %d fetched, %d handled, %d left for the next poll",
                     plan.POLL_INBOX_ID, report.fetched, report.handled, report.left)


def remind_open_replies() -> None:
    """Email each ward team the residents' replies open longer than `inbound.reminder_days`."""
    with _service(plan.REMINDERS_ID) as run:
        if run is None:
            return
        service = run.service
        try:
            with transaction(service.factory) as session:
                queued = queue_reminders(session, service.settings, now=utcnow())
        except Exception as exc:
            log.exception("%s failed", plan.REMINDERS_ID)
            run.failed(exc)
            return
        if queued:
            log.info("%s: queued for %s", plan.REMINDERS_ID, ", ".join(
                f"{code} ({n} open)" for code, (_, n) in queued.items()))
            service.bus.publish(MailQueued(MessageKind.REMINDER,
                                           tuple(ident for ident, _ in queued.values())))


def reconcile() -> None:
    """Bring the scheduled jobs in line with the wards, sources and crons stored now."""
    with _service(plan.RECONCILE_ID) as run:
        if run is None:
            return
        service = run.service
        try:
            report = plan.reconcile(service.scheduler, service.factory, service.settings)
        except Exception as exc:
            log.exception("reconciling the scheduled jobs failed; trying again later")
            run.failed(exc)
            return
        if report:
            log.info("jobs reconciled: added %s, rescheduled %s, removed %s",
                     report.added or "none", report.changed or "none", report.removed or "none")
