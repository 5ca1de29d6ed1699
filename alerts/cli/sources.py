"""`alerts sources add|list|remove`."""

from __future__ import annotations

import click

from alerts.cli.app import Runtime, pass_runtime, print_json, print_table
from alerts.core.db import transaction
from alerts.sources.registry import add_source, list_sources, remove_source


@click.group()
def sources() -> None:
    """Feeds, calendars and data.police.uk neighbourhoods that a ward's items come from."""


@sources.command("add")
@click.option("--ward", "ward_code", required=True, metavar="CODE")
@click.option("--kind", required=True, type=click.Choice(["rss", "atom", "ics", "policeuk"]))
@click.argument("url")
@pass_runtime
def add(runtime: Runtime, ward_code: str, kind: str, url: str) -> None:
    """Add a source of KIND at URL to a ward.

    URL is the feed's or calendar's http(s) address; for policeuk it is the data.police.uk
    FORCE/NEIGHBOURHOOD ids, such as leicestershire/NC04.
    """
    with transaction(runtime.sessions()) as session:
        source = add_source(session, ward_code, kind, url)
        click.echo(f"added {source.describe()} to ward {source.ward.code}")


@sources.command("list")
@click.option("--ward", "ward_code", metavar="CODE")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def list_(runtime: Runtime, ward_code: str | None, as_json: bool) -> None:
    """List sources, with when each was last collected and its last error."""
    with runtime.sessions()() as session:
        rows = [
            {
                "id": s.id,
                "ward": s.ward.code,
                "kind": s.kind,
                "url": s.url,
                "last_fetched_at": s.last_fetched_at.isoformat() if s.last_fetched_at else None,
                "last_ok_at": s.last_ok_at.isoformat() if s.last_ok_at else None,
                "last_error": s.last_error,
            }
            for s in list_sources(session, ward_code)
        ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("no sources (add one with `alerts sources add`)")
        return
    print_table(("ID", "WARD", "KIND", "URL", "STATE"), [
        (row["id"], row["ward"], row["kind"], row["url"],
         f"error: {row['last_error']}" if row["last_error"] else (
             f"ok {row['last_ok_at']}" if row["last_ok_at"] else "never collected"))
        for row in rows])


@sources.command("remove")
@click.argument("source_id", type=int, metavar="ID")
@pass_runtime
def remove(runtime: Runtime, source_id: int) -> None:
    """Remove a source and the items collected from it."""
    with transaction(runtime.sessions()) as session:
        source = remove_source(session, source_id)
        click.echo(f"removed {source.describe()}")
