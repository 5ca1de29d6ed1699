"""`alerts wards add|import|import-postcodes|list|set`. The CSV readers and the cron parser
are imported by the commands that use them, so that `alerts wards list` stays light."""

from __future__ import annotations

from pathlib import Path

import click

from alerts.cli.app import Runtime, fail, pass_runtime, print_json, print_table, warn
from alerts.core.db import transaction
from subscriptions.languages import Language
from subscriptions.wards import (
    MAX_CRON,
    WardError,
    add_ward,
    get_ward,
    import_wards,
    list_wards,
)


@click.group()
def wards() -> None:
    """Wards: the areas residents subscribe to."""


@wards.command("add")
@click.argument("code")
@click.argument("name")
@click.option("--team-email", required=True, metavar="ADDR", help="The ward team's inbox.")
@pass_runtime
def add(runtime: Runtime, code: str, name: str, team_email: str) -> None:
    """Add a ward with its CODE and NAME."""
    with transaction(runtime.sessions()) as session:
        ward = add_ward(session, code, name, team_email)
        click.echo(f"added ward {ward.code} ({ward.name})")


@wards.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_runtime
def import_(runtime: Runtime, file: Path) -> None:
    """Add wards from a CSV with the columns code,name,team_email."""
    from subscriptions.csv_io import parse_wards_csv

    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        fail(f"{file}: not UTF-8 text (byte {exc.start}); save it as 'CSV UTF-8'")
    try:
        rows, errors = parse_wards_csv(text)
    except WardError as exc:
        fail(f"{file}: {exc}")
    with transaction(runtime.sessions()) as session:
        added, taken = import_wards(session, rows)
    for error in [*errors, *taken]:
        warn(f"{file}: {error}; row skipped")
    click.echo(f"added {added} ward(s) from {file}; skipped {len(errors) + len(taken)} row(s)")
    if errors or taken:
        raise SystemExit(1)


@wards.command("import-postcodes")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_runtime
def import_postcodes_(runtime: Runtime, file: Path) -> None:
    """Load which ward each postcode lies in, from a CSV with the columns postcode,ward, so
    that residents can find their ward by postcode. A postcode loaded before moves to the
    ward the file gives now."""
    from subscriptions.csv_io import CsvError, decode
    from subscriptions.postcodes import PostcodeError, import_postcodes, parse_postcodes_csv

    try:
        rows, errors = parse_postcodes_csv(decode(file.read_bytes()))
    except (CsvError, PostcodeError) as exc:
        fail(f"{file}: {exc}")
    with transaction(runtime.sessions()) as session:
        stored, unknown = import_postcodes(session, rows)
    problems = sorted([*errors, *unknown], key=lambda error: error.line)
    for problem in problems:
        warn(f"{file}: {problem}; row skipped")
    click.echo(f"loaded {stored} postcode(s) from {file}; skipped {len(problems)} bad row(s)")
    if problems:
        raise SystemExit(1)


@wards.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def list_(runtime: Runtime, as_json: bool) -> None:
    """List the wards."""
    with runtime.sessions()() as session:
        rows = [
            {"code": w.code, "name": w.name, "team_email": w.team_email,
             "digest_cron": w.digest_cron or runtime.settings.scheduler.digest_cron,
             "language": w.language}
            for w in list_wards(session)
        ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("no wards (add one with `alerts wards add`)")
        return
    print_table(("CODE", "NAME", "TEAM EMAIL", "DIGEST CRON", "LANGUAGE"),
                [(r["code"], r["name"], r["team_email"], r["digest_cron"], r["language"])
                 for r in rows])


@wards.command("set")
@click.argument("code")
@click.option("--digest-cron", metavar="CRON",
              help='When the ward\'s digest goes out, as a crontab line ("" for the default).')
@click.option("--language", type=click.Choice([language.value for language in Language]),
              help="What the ward's residents are sent in, unless they chose for themselves.")
@pass_runtime
def set_(runtime: Runtime, code: str, digest_cron: str | None, language: str | None) -> None:
    """Change a ward's settings."""
    from apscheduler.triggers.cron import CronTrigger

    if digest_cron:
        if len(digest_cron) > MAX_CRON:
            fail(f"--digest-cron is longer than {MAX_CRON} characters")
        try:
            CronTrigger.from_crontab(digest_cron, timezone=runtime.settings.scheduler.timezone)
        except ValueError as exc:
            fail(f"--digest-cron {digest_cron!r} is not a crontab line: {exc}")
    with transaction(runtime.sessions()) as session:
        ward = get_ward(session, code)
        if digest_cron is not None:
            ward.digest_cron = digest_cron or None
        if language is not None:
            ward.language = Language(language)
        click.echo(f"ward {ward.code}: digest_cron "
                   f"{ward.digest_cron or runtime.settings.scheduler.digest_cron}, "
                   f"language {ward.language}")
