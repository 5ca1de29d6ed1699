"""Which scheduled jobs should exist, and bringing the job store in line with that.

The wanted jobs follow from the database and the settings: one `collect:{id}` per fetched
source, one `digest:{CODE}:daily` and `digest:{CODE}:weekly` per ward (the ward's cron, else
`scheduler.digest_cron`), `inbound:poll` when an IMAP mailbox is configured (so only the
leader polls it), `replies:reminders` on `inbound.reminder_cron` (each ward team's reminder
of replies still open), and `reconcile`, which calls `reconcile()` below. A job whose
schedule has not changed is left exactly as it is, so its next run time survives restarts:
that is how a digest missed while the service was down still runs (once) when it is back.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from apscheduler.jobstores.base import JobLookupError
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.digests.schedule import (
    DIGEST_FREQUENCIES,
    ScheduleError,
    digest_schedule,
    parse_cron,
)
from alerts.service.scheduler import MISFIRE_GRACE_SECONDS
from alerts.sources.registry import FETCHED_KINDS, Source
from subscriptions.base import utcnow
from subscriptions.wards import Ward

log = logging.getLogger(__name__)

# Textual references: the job store keeps these, and this module need not import the jobs.
COLLECT = "alerts.service.jobs:collect_source"
DIGEST = "alerts.service.jobs:digest_due"
RECONCILE = "alerts.service.jobs:reconcile"
POLL_INBOX = "alerts.service.jobs:poll_inbox"
REMIND = "alerts.service.jobs:remind_open_replies"

RECONCILE_ID = "reconcile"
POLL_INBOX_ID = "inbound:poll"
REMINDERS_ID = "replies:reminders"
MANAGED_PREFIXES = ("collect:", "digest:", "inbound:", "replies:")


@dataclass(frozen=True)
class JobSpec:
    """One job as it should be. `signature` describes its schedule and is stored as the
    job's name, so a changed cron or interval is seen by comparing names."""

    id: str
    func: str
    args: tuple[int | str, ...]
    trigger: Any
    signature: str
    # Seconds within which a new or changed job first runs; None: when its trigger says.
    first_run_within: float | None = None


@dataclass(frozen=True)
class Plan:
    jobs: list[JobSpec]
    # Jobs to leave as they are: their ward's cron cannot be read, so keep the last good one.
    keep: frozenset[str] = frozenset()


@dataclass
class ReconcileReport:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)


def collect_jitter(minutes: int) -> int:
    """Up to a minute, and at most a tenth of the interval, so sources do not fetch in step."""
    return min(60, (minutes * 60) // 10)


def plan_jobs(wards: Sequence[tuple[str, str | None]], source_ids: Sequence[int],
              settings: Settings) -> Plan:
    """The jobs that should exist for these wards (code, own cron) and fetched sources."""
    scheduler = settings.scheduler
    zone = scheduler.timezone
    jobs: list[JobSpec] = []
    keep: set[str] = set()
    interval = scheduler.collect_minutes * 60
    jitter = collect_jitter(scheduler.collect_minutes)
    for source_id in sorted(source_ids):
        jobs.append(JobSpec(
            id=f"collect:{source_id}",
            func=COLLECT,
            args=(source_id,),
            trigger=IntervalTrigger(seconds=interval, jitter=jitter, timezone=zone),
            signature=f"every {interval}s jitter {jitter}s",
            first_run_within=float(jitter),
        ))
    for code, ward_cron in sorted(wards):
        ids = [f"digest:{code}:{frequency.value}" for frequency in DIGEST_FREQUENCIES]
        try:
            schedule = digest_schedule(code, ward_cron, scheduler.digest_cron, zone)
        except ScheduleError as exc:
            log.error("ward %s: digest schedule unchanged: %s", code, exc)
            keep.update(ids)
            continue
        for frequency, ident in zip(DIGEST_FREQUENCIES, ids, strict=True):
            trigger = schedule.triggers[frequency]
            jobs.append(JobSpec(
                id=ident,
                func=DIGEST,
                args=(code, frequency.value),
                trigger=trigger,
                signature=f"{trigger} {zone}",
            ))
    if settings.inbound.imap_host:
        poll = settings.inbound.poll_seconds
        jobs.append(JobSpec(
            id=POLL_INBOX_ID,
            func=POLL_INBOX,
            args=(),
            trigger=IntervalTrigger(seconds=poll, timezone=zone),
            signature=f"every {poll}s",
            first_run_within=min(5.0, float(poll)),
        ))
    try:
        reminders = parse_cron(settings.inbound.reminder_cron, zone)
    except ScheduleError as exc:
        log.error("inbound.reminder_cron: reply reminders' schedule unchanged: %s", exc)
        keep.add(REMINDERS_ID)
    else:
        jobs.append(JobSpec(
            id=REMINDERS_ID,
            func=REMIND,
            args=(),
            trigger=reminders,
            signature=f"{reminders} {zone}",
        ))
    jobs.append(JobSpec(
        id=RECONCILE_ID,
        func=RECONCILE,
        args=(),
        trigger=IntervalTrigger(seconds=scheduler.reconcile_seconds, timezone=zone),
        signature=f"every {scheduler.reconcile_seconds:g}s",
    ))
    return Plan(jobs, frozenset(keep))


def read_inputs(factory: sessionmaker[Session]) -> tuple[list[tuple[str, str | None]], list[int]]:
    """The wards (code, own cron) and the ids of the fetched sources, as stored now."""
    with factory() as session:
        wards = [(code, cron) for code, cron in session.execute(
            select(Ward.code, Ward.digest_cron).order_by(Ward.code))]
        sources = list(session.scalars(
            select(Source.id).where(Source.kind.in_(FETCHED_KINDS)).order_by(Source.id)))
    return wards, sources


def _unchanged(job: Any, spec: JobSpec) -> bool:
    return bool(
        job.name == spec.signature
        and job.func_ref == spec.func
        and tuple(job.args) == spec.args
        and job.misfire_grace_time == MISFIRE_GRACE_SECONDS
        and job.coalesce
        and job.max_instances == 1
    )


def reconcile(scheduler: Any, factory: sessionmaker[Session], settings: Settings, *,
              rng: random.Random | None = None) -> ReconcileReport:
    """Add the jobs that are missing, reschedule the changed ones, remove the orphans."""
    wards, sources = read_inputs(factory)
    plan = plan_jobs(wards, sources, settings)
    existing = {job.id: job for job in scheduler.get_jobs()}
    report = ReconcileReport()
    chance = rng or random
    for spec in plan.jobs:
        job = existing.get(spec.id)
        if job is not None and _unchanged(job, spec):
            continue
        options: dict[str, Any] = {}
        if spec.first_run_within is not None:
            options["next_run_time"] = utcnow() + timedelta(
                seconds=chance.uniform(0, spec.first_run_within))
        scheduler.add_job(
            spec.func,
            spec.trigger,
            args=spec.args,
            id=spec.id,
            name=spec.signature,
            replace_existing=True,
            misfire_grace_time=MISFIRE_GRACE_SECONDS,
            coalesce=True,
            max_instances=1,
            **options,
        )
        (report.added if job is None else report.changed).append(spec.id)
    wanted = {spec.id for spec in plan.jobs} | plan.keep
    for ident in sorted(existing):
        if ident.startswith(MANAGED_PREFIXES) and ident not in wanted:
            try:
                scheduler.remove_job(ident)
            except JobLookupError:
                continue
            report.removed.append(ident)
    return report
