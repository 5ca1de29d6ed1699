"""`alerts demo`: run the whole pipeline once on embedded defaults and say where to look."""

from __future__ import annotations

from pathlib import Path

import click

from alerts.core.config import DkimSettings
from alerts.demo.runner import DOMAIN, run_demo


def register(cli: click.Group) -> None:
    cli.add_command(demo)


@click.command()
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path),
              default=Path("alerts-demo"), show_default=True,
              help="Where the demo writes its config, database and outbox.")
@click.option("--dkim-key", type=click.Path(dir_okay=False, path_type=Path),
              help=f"Sign every message with this key (`alerts dkim keygen --domain {DOMAIN} "
                   "...` writes one).")
@click.option("--dkim-selector", default="demo", show_default=True,
              help="The selector the key's TXT record was printed for.")
def demo(folder: Path, dkim_key: Path | None, dkim_selector: str) -> None:
    """A self-contained tour: sample wards, feeds and residents, collected, digested and
    delivered to a maildir outbox."""
    dkim = None if dkim_key is None else DkimSettings(
        domain=DOMAIN, selector=dkim_selector, private_key_file=str(dkim_key.resolve()))
    report = run_demo(folder, say=click.echo, dkim=dkim)
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
    click.echo(f"  {report.outbox}/new/    one .eml per email sent: digests, alerts, "
               "acknowledgements, replies forwarded to teams")
    for path in report.previews:
        what = "urgent alert" if path.stem.endswith("-alert") else "digest"
        click.echo(f"  {path}    the {path.stem.removesuffix('-alert')} {what} in a browser")
    click.echo(f"  alerts --config {report.config} wards list    (and sources list, "
               "subscribers export, digest preview --ward RIV, replies list, suppression list)")
    if report.staff:
        click.echo(f"Staff pages: run `alerts --config {report.config} web`, open "
                   "http://127.0.0.1:8000/staff/sign-in and sign in as")
        for role, email, password in report.staff:
            click.echo(f"  {role:<12} {email}  password {password}")
