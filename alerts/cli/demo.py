"""`alerts demo`: run the whole pipeline once on embedded defaults and say where to look."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click

from alerts.core.config import DkimSettings
from alerts.demo.runner import DEMO_PORT, DOMAIN, run_demo


@click.command()
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path),
              default=Path("alerts-demo"), show_default=True,
              help="Where the demo writes its config, database and outbox.")
@click.option("--dkim-key", type=click.Path(dir_okay=False, path_type=Path),
              help=f"Sign every message with this key (`alerts dkim keygen --domain {DOMAIN} "
                   "...` writes one).")
@click.option("--dkim-selector", default="demo", show_default=True,
              help="The selector the key's TXT record was printed for.")
@click.option("--port", type=click.IntRange(1, 65535), default=DEMO_PORT, show_default=True,
              help="The loopback port `alerts run` will serve the demo's links on.")
def demo(folder: Path, dkim_key: Path | None, dkim_selector: str, port: int) -> None:
    """A self-contained tour: sample wards, feeds and residents, collected, digested and
    delivered to a maildir outbox."""
    dkim = None if dkim_key is None else DkimSettings(
        domain=DOMAIN, selector=dkim_selector, private_key_file=str(dkim_key.resolve()))
    report = run_demo(folder, say=click.echo, dkim=dkim, port=port)
    first, second = report.collected[0], report.collected[-1]
    for result in first.results:
        state = f"error: {result.error}" if result.error else f"{result.added} new item(s)"
        click.echo(f"  collected {result.description}: {state}")
    for row in report.skipped_rows:
        click.echo(f"  subscribers.csv {row}; skipped, as a real import would")
    click.echo("Digests:")
    for outcome in report.digests:
        if outcome.queued:
            click.echo(f"  ward {outcome.ward_code}: {outcome.items} item(s) for "
                       f"{outcome.deliveries} confirmed subscriber(s)")
        else:
            click.echo(f"  ward {outcome.ward_code}: none ({outcome.reason})")
    if report.urgent is not None:
        click.echo(f"Urgent alert for ward {report.urgent.ward_code}: queued ahead of the "
                   f"digests for all {report.urgent.deliveries} of its confirmed subscribers.")
    delivery = report.delivery
    if delivery is not None:
        click.echo(f"Delivered {delivery.sent} email(s) to the maildir {report.outbox} "
                   f"({delivery.failed} failed)"
                   + (f", each DKIM-signed for {DOMAIN} (s={dkim_selector})."
                      if dkim else "."))
    if report.inbound:
        click.echo("Residents wrote back (handled as `alerts inbound process` would):")
        for what, handled in report.inbound:
            kind = f"{handled.kind}/{handled.severity}" if handled.severity else handled.kind
            click.echo(f"  {what}: {kind}: {handled.action}")
    if report.forwarded is not None and report.answers is not None:
        click.echo(f"  {report.forwarded.sent} reply(ies) forwarded to the ward team's "
                   f"address and {report.answers.sent} acknowledgement(s) sent, into the same "
                   "maildir.")
    unchanged = sum(1 for r in second.results if r.not_modified)
    queued_again = sum(1 for o in report.second_round if o.queued)
    click.echo(f"Second round: {unchanged} feed(s) answered 'not modified' (calendars are "
               f"always read whole), {queued_again} new digest(s): nothing is sent twice.")
    click.echo(f"Done in {report.seconds:.1f} s. Look at:")
    click.echo(f"  {shown(report.outbox)}/new/    one .eml per email sent: digests, alerts, "
               "acknowledgements, replies forwarded to teams")
    for path in report.previews:
        what = "urgent alert" if path.stem.endswith("-alert") else "digest"
        click.echo(f"  {shown(path)}    the {path.stem.removesuffix('-alert')} {what} in a browser")
    alerts = f"{this_command()} --config {shown(report.config)}"
    click.echo(f"  {alerts} wards list    (and sources list, subscribers export, "
               "digest preview --ward RIV, replies list, suppression list)")
    base = report.base_url
    click.echo("Next, start the service (scheduler, delivery and web app; Ctrl-C stops it):")
    click.echo(f"  {alerts} run")
    click.echo(f"It goes on collecting the sample feeds in {shown(report.folder)}/feeds/ "
               "(an item added to one is picked up by the next collect).")
    click.echo("Then open:")
    click.echo(f"  {base}/                   the front door: find a ward, subscribe, sign in")
    click.echo(f"  {base}/wards/RIV/          the Riverside ward's archive (and its feeds)")
    click.echo(f"  {base}/subscribe           subscribe; the confirmation arrives in the inbox")
    if report.staff:
        click.echo(f"  {base}/staff/sign-in      the staff pages; sign in as")
        for role, email, password in report.staff:
            click.echo(f"    {role:<12} {email}  password {password}")
    click.echo(f"The inbox: {shown(report.outbox)}/new/ (one .eml per email; every link in "
               f"them opens on {base} while `run` is up)")


def shown(path: Path) -> str:
    """`path` relative to the current folder when it is under it, as a person would type it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def this_command() -> str:
    """How to run `alerts` again as it was run now: the installed script's path (such as
    .venv/bin/alerts, which a fresh shell has not on its PATH), or python -m alerts.cli."""
    argv0 = sys.argv[0]
    if Path(argv0).name in ("__main__.py", "-c", "-m") or not argv0:
        return f"{shown(Path(sys.executable).absolute())} -m alerts.cli"
    found = argv0 if os.sep in argv0 else shutil.which(argv0)
    return shown(Path(found or argv0).absolute())
