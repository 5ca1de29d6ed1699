"""`alerts suppression list|add|remove`: addresses that are never sent to."""

from __future__ import annotations

import click

from alerts.cli.app import Runtime, pass_runtime, print_json, print_table
from alerts.core.db import transaction
from subscriptions.suppression import (
    SuppressionReason,
    list_suppressions,
    suppress,
    unsuppress,
)


@click.group()
def suppression() -> None:
    """The suppression list: hard bounces, complaints, erasures and manual entries."""


@suppression.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def list_(runtime: Runtime, as_json: bool) -> None:
    """List suppressed addresses (erased ones show only as a hash)."""
    with runtime.sessions()() as session:
        rows = [
            {"email": entry.email, "address_hash": entry.address_hash, "reason": entry.reason,
             "detail": entry.detail, "since": entry.created_at.isoformat()}
            for entry in list_suppressions(session)
        ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("the suppression list is empty")
        return
    print_table(("ADDRESS", "REASON", "SINCE", "DETAIL"), [
        (row["email"] or f"(erased) {str(row['address_hash'])[:16]}…", row["reason"],
         str(row["since"])[:19], row["detail"]) for row in rows])


@suppression.command("add")
@click.argument("email")
@click.option("--detail", default="", help="Why, for whoever reads the list later.")
@pass_runtime
def add(runtime: Runtime, email: str, detail: str) -> None:
    """Never send to EMAIL again (until removed)."""
    with transaction(runtime.sessions()) as session:
        suppress(session, email, SuppressionReason.MANUAL, detail)
    click.echo("added to the suppression list")


@suppression.command("remove")
@click.argument("email")
@pass_runtime
def remove(runtime: Runtime, email: str) -> None:
    """Allow mail to EMAIL again."""
    with transaction(runtime.sessions()) as session:
        removed = unsuppress(session, email)
    if not removed:
        raise click.ClickException("that address is not on the suppression list")
    click.echo("removed from the suppression list")
