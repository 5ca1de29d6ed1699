"""`alerts init`: create the database or migrate it to the newest schema."""

from __future__ import annotations

import click

from alerts.cli.app import Runtime, pass_runtime
from alerts.core.db import migrate


@click.command()
@pass_runtime
def init(runtime: Runtime) -> None:
    """Create or migrate the database."""
    before, after = migrate(runtime.engine, settings=runtime.settings)
    where = runtime.engine.url.render_as_string(hide_password=True)
    if before == after:
        click.echo(f"database {where} is up to date (revision {after})")
    elif before is None:
        click.echo(f"created database {where} (revision {after})")
    else:
        click.echo(f"migrated database {where} from revision {before} to {after}")
