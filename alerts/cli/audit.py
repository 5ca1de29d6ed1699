"""`alerts audit`: who changed what, and when (newest first)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import click

from alerts.accounts.audit import recent
from alerts.cli.app import Runtime, pass_runtime, print_json


@click.command()
@click.option("--limit", default=50, show_default=True, help="How many entries.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def audit(runtime: Runtime, limit: int, as_json: bool) -> None:
    """Show the audit log: every change made by a person, at the command line or on a page."""
    with runtime.sessions()() as session:
        rows = recent(session, limit=max(1, limit))
    if as_json:
        print_json([{**row.__dict__, "at": row.at.isoformat()} for row in rows])
        return
    zone = ZoneInfo(runtime.settings.scheduler.timezone)
    if not rows:
        click.echo("nothing recorded yet")
    for row in rows:
        click.echo(f"{row.at.astimezone(zone):%Y-%m-%d %H:%M}  {row.actor:<32} {row.action:<20} "
                   f"{row.target:<16} {row.detail}")
