"""`alerts digest preview|send|print`."""

from __future__ import annotations

from pathlib import Path

import click

from alerts.cli.app import Runtime, fail, pass_runtime, print_json
from alerts.mail.marks import fill_links
from alerts.mail.trust import refuse_unsafe_sending
from alerts.usecases.digest_rounds import preview_digest, queue_digests
from alerts.usecases.printed_digests import (
    printed_digest_for,
    render_pdf,
    write_atomically,
)
from subscriptions.base import utcnow


@click.group()
def digest() -> None:
    """Ward digests: what is new since each ward's last one."""


@digest.command()
@click.option("--ward", "ward_code", required=True, metavar="CODE")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.html",
              help="Write the HTML a resident would see (default: print the text part).")
@pass_runtime
def preview(runtime: Runtime, ward_code: str, out: Path | None) -> None:
    """Show the ward's next digest without sending or recording anything."""
    with runtime.sessions()() as session:
        rendered = preview_digest(session, ward_code, runtime.settings)
    if rendered is None:
        click.echo(f"ward {ward_code} has nothing new since its last digest: none would be sent")
        return
    base = runtime.settings.web.base_url.rstrip("/")
    def links(body: str) -> str:
        return fill_links(body, f"{base}/unsubscribe", f"{base}/preferences")
    if out is None:
        click.echo(f"Subject: {rendered.subject}\n")
        click.echo(links(rendered.text))
        return
    out.write_text(links(rendered.html), encoding="utf-8")
    click.echo(f"wrote the preview of {rendered.subject!r} to {out}")


@digest.command()
@click.option("--ward", "ward_code", metavar="CODE", help="One ward.")
@click.option("--all", "all_wards", is_flag=True, help="Every ward.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")
@pass_runtime
def send(runtime: Runtime, ward_code: str | None, all_wards: bool, as_json: bool) -> None:
    """Queue digests now, whatever the schedule; `alerts deliver` sends them."""
    if bool(ward_code) == all_wards:
        fail("give exactly one of --ward CODE or --all")
    refuse_unsafe_sending(runtime.settings)
    outcomes = queue_digests(runtime.sessions(), runtime.settings, ward_code=ward_code,
                             bus=runtime.bus())
    if as_json:
        print_json([{**o.__dict__, "queued": o.queued} for o in outcomes])
        return
    for o in outcomes:
        if o.queued:
            ids = ", ".join(str(i) for i in o.message_ids)
            click.echo(f"ward {o.ward_code}: digest {ids} with {o.items} item(s) "
                       f"queued for {o.deliveries} subscriber(s)")
        else:
            click.echo(f"ward {o.ward_code}: no digest ({o.reason})")


@digest.command("print")
@click.option("--ward", "ward_code", required=True, metavar="CODE")
@click.option("--scheme", "scheme_name", metavar="NAME",
              help="Head the sheet for this Neighbourhood Watch scheme of the ward.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              metavar="FILE.pdf", help="Where to write the PDF (replaced whole, or not at all).")
@pass_runtime
def print_(runtime: Runtime, ward_code: str, scheme_name: str | None, out: Path) -> None:
    """Write the ward's latest digest as an A4 PDF, for members without email."""
    with runtime.sessions()() as session:
        sheet = printed_digest_for(session, runtime.settings, ward_code, now=utcnow(),
                                   scheme_name=scheme_name)
    pdf = render_pdf(sheet)
    try:
        write_atomically(pdf, out)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}")
    heading = f" for {sheet.scheme_name}" if sheet.scheme_name else ""
    click.echo(f"wrote the {sheet.ward_name} digest of {sheet.digest_date}{heading} to {out} "
               f"({len(pdf):,} bytes)")
