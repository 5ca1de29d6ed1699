"""`alerts status`: the outbox at a glance, for an operator watching a backlog."""

from __future__ import annotations

import click

from alerts.cli.app import Runtime, pass_runtime, print_json
from alerts.delivery.status import outbox_report
from subscriptions.base import utcnow


def register(cli: click.Group) -> None:
    cli.add_command(status)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def status(runtime: Runtime, as_json: bool) -> None:
    """Outbox depth by state, what is due, the oldest queued row, send rate, failures."""
    with runtime.sessions()() as session:
        report = outbox_report(session, utcnow())
    if as_json:
        print_json({
            "outbox": report.by_status,
            "due": report.due,
            "oldest_queued_seconds": report.oldest_queued_seconds,
            "sent_last_minute": report.sent_last_minute,
            "sent_last_hour": report.sent_last_hour,
            "per_second_last_minute": round(report.per_second_last_minute, 2),
            "failures_by_reason": report.failures_by_reason,
        })
        return
    depth = ", ".join(f"{count} {state}" for state, count in report.by_status.items())
    click.echo(f"outbox: {depth}")
    oldest = report.oldest_queued_seconds
    click.echo(f"due now: {report.due}; oldest queued: "
               + ("none" if oldest is None else f"{oldest:.0f} s ago"))
    click.echo(f"sent: {report.sent_last_minute} in the last minute "
               f"({report.per_second_last_minute:.1f}/s), {report.sent_last_hour} in the last hour")
    if report.failures_by_reason:
        click.echo("failures by reason:")
        for reason, count in report.failures_by_reason.items():
            click.echo(f"  {count:>6}  {reason}")
