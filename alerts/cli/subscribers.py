"""`alerts subscribers add|import|export|remove`. The confirmation emails' writer loads with
`import`, the one command that sends them, so that `export` and `remove` stay light."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from alerts.cli.app import Runtime, fail, pass_runtime, warn
from alerts.core.db import transaction
from subscriptions.base import utcnow
from subscriptions.consent import Consent, ConsentMethod
from subscriptions.csv_io import (
    CsvError,
    batches,
    import_rows,
    open_csv,
    read_subscriber_rows,
    write_records,
)
from subscriptions.languages import Language
from subscriptions.subscribers import (
    Frequency,
    iter_subscriptions,
    parse_frequency,
    subscribe,
    unsubscribe_everywhere,
)
from subscriptions.topics import TopicError, choose_topics, join_topics

# A file of bad rows names the first this many; every one is counted.
MAX_ERRORS_SHOWN = 100


@click.group()
def subscribers() -> None:
    """Residents and the wards they subscribe to."""


@subscribers.command("add")
@click.argument("email")
@click.option("--ward", "ward_code", required=True, metavar="CODE")
@click.option("--frequency", type=click.Choice([f.value for f in Frequency]),
              default=Frequency.WEEKLY.value, show_default=True)
@click.option("--name", default="", help="How emails greet the resident.")
@click.option("--confirmed", is_flag=True,
              help="The resident already gave consent elsewhere (recorded as such).")
@click.option("--topic", "topics", multiple=True, metavar="NAME",
              help="Follow only this topic in the ward (repeat for more; default: all).")
@click.option("--language", type=click.Choice([language.value for language in Language]),
              help="What the resident is sent in (default: the ward's language).")
@pass_runtime
def add(runtime: Runtime, email: str, ward_code: str, frequency: str, name: str,
        confirmed: bool, topics: tuple[str, ...], language: str | None) -> None:
    """Subscribe EMAIL to a ward."""
    try:
        followed = choose_topics(topics, runtime.settings.topics.names)
    except TopicError as error:
        fail(f"--topic: {error}")
    consent = Consent(at=utcnow(), method=ConsentMethod.OFFICER_CLI,
                      source="alerts subscribers add", prior_consent_declared=confirmed)
    with transaction(runtime.sessions()) as session:
        subscription = subscribe(session, email, ward_code, consent,
                                 frequency=parse_frequency(frequency), name=name,
                                 confirmed=confirmed)
        if followed:
            subscription.topics = join_topics(followed)
        if language is not None:
            subscription.subscriber.language = Language(language)
        click.echo(f"subscribed to ward {subscription.ward.code} ({subscription.frequency}, "
                   f"{subscription.status})")


@subscribers.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--confirmed", is_flag=True,
              help="Every resident in the file already gave consent (recorded as such).")
@pass_runtime
def import_(runtime: Runtime, file: Path, confirmed: bool) -> None:
    """Subscribe residents from a CSV (email,ward required; name,frequency,scheme optional).

    Each address the file makes newly pending is sent one confirmation email (at most one an
    hour per address) and nothing else until it is confirmed: without --confirmed every new
    one, with it only residents who had left a ward (declared consent never overrides that).
    Bad rows are reported with their line numbers (the first 100) and skipped. The file is
    read and written 2,000 rows at a time, each batch with its confirmation emails in one
    transaction: if the import stops part-way, the batches before stay, and importing the
    same file again adds the rest without asking anyone twice.
    """
    from alerts.usecases.confirmations import confirm_imported

    consent = None
    imported = queued = held_back = bad = 0
    size = file.stat().st_size
    try:
        with open_csv(file) as stream, click.progressbar(
                length=size, label="importing", file=sys.stderr,
                hidden=size < 1_000_000 or not sys.stderr.isatty()) as bar:
            for good, errors in batches(read_subscriber_rows(stream)):
                # Each batch its own consent moment, so that its confirmations are its own.
                consent = Consent(at=utcnow(), method=ConsentMethod.CSV_IMPORT,
                                  source=file.name, prior_consent_declared=confirmed)
                with transaction(runtime.sessions()) as session:
                    added, unknown = import_rows(session, good, consent, confirmed=confirmed)
                    # With --confirmed too: declared consent never renews a resident who
                    # left, so the file leaves them pending, and they are asked.
                    asked = confirm_imported(session, runtime.settings, consent, now=utcnow())
                imported, queued, held_back = (imported + added, queued + asked.queued,
                                               held_back + asked.held_back)
                for error in sorted(errors + unknown, key=lambda e: e.line):
                    bad += 1
                    if bad <= MAX_ERRORS_SHOWN:
                        warn(f"{file}: {error}; row skipped")
                bar.update(stream.buffer.tell() - bar.pos)
    except CsvError as exc:
        stopped: CsvError | None = exc
    else:
        stopped = None
    if consent is None and stopped is not None:
        fail(f"{file}: {stopped}")
    if bad > MAX_ERRORS_SHOWN:
        warn(f"{file}: {bad - MAX_ERRORS_SHOWN} more bad row(s) skipped, not listed")
    state = "confirmed" if confirmed else "pending confirmation"
    click.echo(f"imported {imported} subscription(s) from {file} ({state}); "
               f"skipped {bad} bad row(s)")
    if queued or held_back or (consent is not None and not confirmed):
        held = (f"; {held_back} address(es) already sent one in the last hour"
                if held_back else "")
        click.echo(f"queued {queued} confirmation email(s){held}; nothing else is sent "
                   "to an address until it is confirmed")
    if stopped is not None:
        fail(f"{file}: {stopped}")
    if bad:
        raise SystemExit(1)


@subscribers.command("export")
@click.option("--ward", "ward_code", metavar="CODE")
@pass_runtime
def export(runtime: Runtime, ward_code: str | None) -> None:
    """Write every subscription as CSV to stdout, with status and consent."""
    with runtime.sessions()() as session:
        write_records(iter_subscriptions(session, ward_code), sys.stdout)


@subscribers.command("remove")
@click.argument("email")
@pass_runtime
def remove(runtime: Runtime, email: str) -> None:
    """Unsubscribe EMAIL from every ward (the record of consent is kept)."""
    with transaction(runtime.sessions()) as session:
        changed = unsubscribe_everywhere(session, email)
    click.echo(f"unsubscribed from {changed} ward(s)")
