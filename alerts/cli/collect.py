"""`alerts collect`: run the collectors once."""

from __future__ import annotations

import click

from alerts.cli.app import Runtime, pass_runtime, print_json, warn
from alerts.sources.collect import collect as collect_sources


@click.command()
@click.option("--source", "source_id", type=int, metavar="ID", help="Only this source.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")
@pass_runtime
def collect(runtime: Runtime, source_id: int | None, as_json: bool) -> None:
    """Fetch every feed and calendar once and store new items.

    A source that fails is reported and the others are still collected; the exit
    status is 1 when any source failed. What the caps on one source (sources.max_*) left
    out is reported on stderr, naming the source.
    """
    report = collect_sources(runtime.sessions(), runtime.settings, source_id=source_id,
                             bus=runtime.bus())
    if as_json:
        print_json([result.__dict__ for result in report.results])
    else:
        for result in report.results:
            if result.error:
                warn(f"error: {result.error}")
            elif result.not_modified:
                click.echo(f"{result.description}: not modified")
            else:
                click.echo(
                    f"{result.description}: {result.added} new, {result.updated} updated"
                    + (f", {result.withdrawn} withdrawn" if result.withdrawn else "")
                )
            for line in result.left_out:
                warn(f"left out: {line}")
    failed = [r for r in report.results if r.error]
    if failed:
        raise click.ClickException(
            f"{len(failed)} of {len(report.results)} source(s) failed; the rest were collected"
        )
