"""`alerts status`: the scheduler, the outbox and inbound mail at a glance, for an operator."""

from __future__ import annotations

from datetime import datetime

import click

from alerts.cli.app import Runtime, pass_runtime, print_json
from alerts.core.scheduler_store import JobStatus, SchedulerStatus, stored_status
from alerts.delivery.status import outbox_by_kind, outbox_report
from alerts.inbound.status import (
    FLAG_PER_MILLE,
    WARN_PER_MILLE,
    DayRates,
    daily_rates,
    inbound_report,
)
from subscriptions.base import utcnow


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def status(runtime: Runtime, as_json: bool) -> None:
    """Scheduled jobs (each one's last success, and a failing one's failures) and any that
    stalled; outbox depth by state, what is due, the oldest
    queued row, send rate, failures; inbound mail of the last day, what waits for a person,
    bounces no token vouched for, replies not yet forwarded; hard-bounce and complaint rates
    of the last 7 days, marked at Gmail's thresholds."""
    now = utcnow()
    with runtime.sessions()() as session:
        report = outbox_report(session, now)
        by_kind = outbox_by_kind(session)
        inbound = inbound_report(session, now)
        rates = daily_rates(session, now)
    scheduler = stored_status(runtime.engine, runtime.settings.scheduler, now)
    if as_json:
        print_json({
            "scheduler": {"jobs": scheduler["jobs"], "stalled": scheduler.get("stalled", [])},
            "outbox": report.by_status,
            "outbox_by_kind": by_kind,
            "due": report.due,
            "oldest_queued_seconds": report.oldest_queued_seconds,
            "sent_last_minute": report.sent_last_minute,
            "sent_last_hour": report.sent_last_hour,
            "per_second_last_minute": round(report.per_second_last_minute, 2),
            "failures_by_reason": report.failures_by_reason,
            "inbound": {
                "last_day_by_kind": inbound.last_day_by_kind,
                "held_last_week": inbound.held_last_week,
                "untrusted_bounces_last_week": inbound.untrusted_bounces_last_week,
                "replies_to_forward": inbound.replies_to_forward,
                "replies_not_forwarded": inbound.replies_not_forwarded,
                "open_threads": inbound.open_threads,
            },
            "rates": {
                "warn_at": WARN_PER_MILLE / 1000, "flag_at": FLAG_PER_MILLE / 1000,
                "days": [{"day": day.day, "sent": day.sent, "hard_bounces": day.hard_bounces,
                          "bounce_rate": day.bounce_rate, "bounce_mark": day.bounce_mark,
                          "complaints": day.complaints, "complaint_rate": day.complaint_rate,
                          "complaint_mark": day.complaint_mark} for day in rates],
            },
        })
        return
    click.echo(_scheduler_line(scheduler, runtime.settings.scheduler.stall_grace_seconds))
    for job in scheduler["jobs"]:
        click.echo(_job_line(job))
    depth = ", ".join(f"{count} {state}" for state, count in report.by_status.items())
    click.echo(f"outbox: {depth}")
    for kind, states in by_kind.items():
        click.echo(f"  {kind}: " + ", ".join(f"{n} {state}" for state, n in states.items() if n))
    oldest = report.oldest_queued_seconds
    click.echo(f"due now: {report.due}; oldest queued: "
               + ("none" if oldest is None else f"{oldest:.0f} s ago"))
    click.echo(f"sent: {report.sent_last_minute} in the last minute "
               f"({report.per_second_last_minute:.1f}/s), {report.sent_last_hour} in the last hour")
    if report.failures_by_reason:
        click.echo("failures by reason:")
        for reason, count in report.failures_by_reason.items():
            click.echo(f"  {count:>6}  {reason}")
    kinds = ", ".join(f"{count} {kind}" for kind, count in inbound.last_day_by_kind.items())
    click.echo(f"inbound, last 24 h: {kinds or 'none'}; held for a person (7 days): "
               f"{inbound.held_last_week}")
    click.echo(f"bounces without a genuine bounces+ address (7 days): "
               f"{inbound.untrusted_bounces_last_week} (in review/; nobody suppressed)")
    click.echo(f"replies: {inbound.replies_to_forward} waiting to reach their team, "
               f"{inbound.replies_not_forwarded} not forwarded (see `alerts replies list`), "
               f"{inbound.open_threads} open thread(s)")
    click.echo(f"hard bounces and complaints per resident email sent, by day (warn at "
               f"{WARN_PER_MILLE / 10:.1f}%, FLAGGED at {FLAG_PER_MILLE / 10:.1f}%):")
    for day in rates:
        click.echo(_rates_line(day))


def _rates_line(day: DayRates) -> str:
    def rate(events: int, of: float | None, mark: str) -> str:
        shown = f"{events} ({of:.2%})" if of is not None else f"{events}"
        return shown + {"ok": "", "warn": " WARN", "flag": " FLAGGED"}[mark]

    return (f"  {day.day}: {day.sent} sent, hard bounces "
            f"{rate(day.hard_bounces, day.bounce_rate, day.bounce_mark)}, complaints "
            f"{rate(day.complaints, day.complaint_rate, day.complaint_mark)}")


def _scheduler_line(report: SchedulerStatus, grace: float) -> str:
    stalled = report.get("stalled", [])
    if stalled:
        late = ", ".join(f"{job['id']} ({job['overdue_seconds']} s)" for job in stalled)
        return (f"scheduler: STALLED, overdue by more than {grace:g} s: {late}; is `alerts run` "
                "up, and can it use the database? (its log says why)")
    times = [job["next_run_time"] for job in report["jobs"] if job["next_run_time"]]
    if not times:
        return "scheduler: no jobs stored (has `alerts run` started?)"
    return (f"scheduler: {len(report['jobs'])} job(s), the next at "
            f"{min(times, key=datetime.fromisoformat)}")


def _job_line(job: JobStatus) -> str:
    if "consecutive_failures" not in job:
        return f"  {job['id']}: not run yet"
    line = f"  {job['id']}: last success {job.get('last_success_at') or 'never'}"
    failures = job["consecutive_failures"]
    if failures:
        line += (f"; FAILING, {failures} run(s) in a row, the last at "
                 f"{job.get('last_failure_at')}: {job.get('last_failure')}")
    return line
