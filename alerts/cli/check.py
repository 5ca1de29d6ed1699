"""`alerts check`: what in the config would stop mail being trusted, and the DNS records to
publish (the rules are `alerts.mail.trust`)."""

from __future__ import annotations

import dataclasses

import click

from alerts.cli.app import Runtime, pass_runtime, print_json
from alerts.mail.trust import check as check_settings
from alerts.mail.trust import zone_line


@click.command()
@click.option("--json", "as_json", is_flag=True,
              help='Print {"problems": [{code, message}], "records": [{name, type, value, '
                   'purpose}], "warnings": [{code, message}]}.')
@pass_runtime
def check(runtime: Runtime, as_json: bool) -> None:
    """Say, a line each, what would stop Gmail, Yahoo and Outlook trusting the mail (exit
    status 1 if anything does), then warnings (what reads wrong to a resident, such as no
    force named), then the DNS records to publish."""
    report = check_settings(runtime.settings)
    if as_json:
        print_json(dataclasses.asdict(report))
    else:
        for problem in report.problems:
            click.echo(problem.message)
        if not report.problems:
            click.echo("nothing in the config stops mail being trusted")
        for warning in report.warnings:
            click.echo(warning.message)
        click.echo("\nDNS records to publish:")
        for record in report.records:
            click.echo(f"; {record.purpose}\n{zone_line(record)}")
    if report.problems:
        raise SystemExit(1)
