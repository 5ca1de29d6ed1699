"""`alerts deliver`: send everything that is due now, then exit."""

from __future__ import annotations

import sys

import click
from sqlalchemy import func, select

from alerts.cli.app import Runtime, pass_runtime, print_json, progress_enabled
from alerts.delivery.outbox import Delivery, DeliveryStatus, end_leases_of_the_dead
from alerts.delivery.sender import deliver_due
from alerts.mail.trust import ready_to_send
from subscriptions.base import utcnow


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")
@pass_runtime
def deliver(runtime: Runtime, as_json: bool) -> None:
    """Send all that is due; rows waiting for a retry stay queued for the next run."""
    settings = runtime.settings
    ready_to_send(settings)
    factory = runtime.sessions()
    with factory() as session:
        # Rows a sender on this host left in `sending` when it died are sent now, not when
        # their lease ends.
        end_leases_of_the_dead(session, utcnow())
        due = session.scalar(
            select(func.count()).select_from(Delivery).where(
                Delivery.status == DeliveryStatus.QUEUED, Delivery.next_attempt_at <= utcnow()
            )
        ) or 0
    with click.progressbar(length=due, label="sending", file=sys.stderr,
                           hidden=not progress_enabled() or due == 0) as bar:
        report = deliver_due(factory, settings, on_progress=bar.update, bus=runtime.bus(),
                             batch_size=settings.mail.batch_size)
    if as_json:
        print_json(report.__dict__)
        return
    where = settings.mail.maildir if settings.mail.transport == "maildir" else (
        f"{settings.mail.smtp_host}:{settings.mail.smtp_port}"
    )
    click.echo(f"sent {report.sent} via {settings.mail.transport} ({where}); "
               f"{report.retried} to retry, {report.failed} failed, {report.cancelled} cancelled")
