"""`alerts inbound process|serve|poll`: take in replies, bounces and auto-replies."""

from __future__ import annotations

import asyncio
import json
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import click

from alerts.cli.app import Runtime, fail, pass_runtime, progress_enabled, warn
from alerts.delivery.sender import deliver_due, deliver_due_async
from alerts.inbound.intake import (
    BATCH_BYTES,
    BATCH_MESSAGES,
    Intake,
    IntakeUnavailable,
    Outcome,
    poll_inbox,
)
from alerts.inbound.journal import Via
from alerts.inbound.lmtp import InboundHandler, ListenAddressError, parse_listen, start_lmtp
from alerts.mail.messages import MessageKind
from alerts.mail.trust import ready_to_send

# The replies taken in are forwarded to their ward teams at once, through the outbox (the
# rest of what is due, acknowledgements included, waits for `alerts deliver` or `alerts run`).
FORWARDS = (MessageKind.FORWARD,)


@click.group()
def inbound() -> None:
    """Replies, bounces and auto-replies coming back to the product's addresses."""


def _intake(runtime: Runtime) -> Intake:
    # Tokens are verified and answers signed with the secret key; forwards leave at once.
    ready_to_send(runtime.settings)
    return Intake(runtime.sessions(), runtime.settings, publish=runtime.bus().publish)


def _describe(name: str, outcome: Outcome) -> str:
    kind = outcome.reported_kind
    kind = f"{kind}/{outcome.severity}" if outcome.severity else kind
    return f"{name}: {kind}: {outcome.action}"


@inbound.command("process")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object a message (file, kind, severity, recipient, action).")
@pass_runtime
def process(runtime: Runtime, files: tuple[Path, ...], as_json: bool) -> None:
    """Classify and route FILE.eml ... (standard input when no file is given)."""
    intake = _intake(runtime)
    sources: list[tuple[str, Path | None]] = [(str(f), f) for f in files] or [("-", None)]
    handled = 0
    with click.progressbar(length=len(sources), label="reading mail", file=sys.stderr,
                           hidden=not progress_enabled() or len(sources) < 20) as bar:
        for batch in _batches(sources):
            # Said only once committed: a line printed is a message kept.
            outcomes = intake.process_many([raw for _name, raw in batch], via=Via.FILE)
            for (name, _raw), outcome in zip(batch, outcomes, strict=True):
                handled += _report(name, outcome, as_json)
            bar.update(len(batch))
    failed = len(sources) - handled  # unreadable, or not handled
    report = deliver_due(runtime.sessions(), runtime.settings, kinds=FORWARDS)
    if report.sent or report.retried or report.failed:
        warn(f"replies to ward teams: {report.sent} forwarded, {report.retried} to retry, "
             f"{report.failed} failed")
    if failed:
        fail(f"{failed} of {len(sources)} message(s) not handled (see above)")


def _batches(sources: list[tuple[str, Path | None]]) -> Iterator[list[tuple[str, bytes]]]:
    """The readable messages, a transaction's worth at a time (a big one alone: the store
    is held for writing while a batch is handled); one that cannot be read is said here."""
    batch: list[tuple[str, bytes]] = []
    size = 0
    for name, path in sources:
        try:
            raw = sys.stdin.buffer.read() if path is None else path.read_bytes()
        except OSError as error:
            warn(f"{name}: cannot be read ({error.strerror or error}); skipped")
            continue
        if batch and (len(batch) == BATCH_MESSAGES or size + len(raw) > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append((name, raw))
        size += len(raw)
    if batch:
        yield batch


def _report(name: str, outcome: Outcome | Exception, as_json: bool) -> bool:
    """Print what was done with a message, or warn why it was not; whether it was handled."""
    if isinstance(outcome, IntakeUnavailable):
        warn(f"{name}: not handled: {outcome}; run the command again for this file")
        return False
    if isinstance(outcome, Exception):  # a fault of ours with this message: carry on past it
        # Its savepoint rolled back, so it is as if not read. The error's own text may quote
        # the message, so only its type is said.
        if click.get_current_context().find_root().params.get("debug"):
            click.echo("".join(traceback.format_exception(outcome)).rstrip(), err=True)
        warn(f"{name}: not handled: an unexpected error ({type(outcome).__name__}); "
             f"nothing of it was kept: `alerts --debug inbound process {name}` shows why")
        return False
    if as_json:
        click.echo(json.dumps({
            "file": name, "kind": outcome.reported_kind, "severity": outcome.severity,
            "recipient": outcome.recipient, "action": outcome.action,
            "reply_id": outcome.reply_id, "flagged": outcome.flagged,
        }))
    else:
        click.echo(_describe(name, outcome))
    return True


@inbound.command("serve")
@click.option("--lmtp", "listen", required=True, metavar="HOST:PORT",
              help="Where to listen for LMTP (e.g. 127.0.0.1:8024).")
@pass_runtime
def serve(runtime: Runtime, listen: str) -> None:
    """Receive mail from an MTA over LMTP until stopped (SIGINT/SIGTERM)."""
    from alerts.service.logs import configure_logging
    from alerts.service.main import Stopper

    try:
        host, port = parse_listen(listen)
    except ListenAddressError as error:
        fail(f"--lmtp: {error}")
    intake = _intake(runtime)
    factory, settings = runtime.sessions(), runtime.settings

    async def forward(outcome: Outcome) -> None:
        if outcome.reply_id is not None:
            await deliver_due_async(factory, settings, kinds=FORWARDS)

    async def main() -> None:
        with Stopper("alerts inbound serve") as stopper:
            try:
                server = await start_lmtp(InboundHandler(intake, settings, after=forward),
                                          host, port)
            except OSError as error:
                fail(f"cannot listen on {host}:{port}: {error.strerror or error}")
            warn(f"alerts inbound serve: LMTP on {host}:{port}")
            async with server:
                await stopper.requested.wait()
            warn("alerts inbound serve: stopped")

    configure_logging(settings.log.format)
    asyncio.run(main())


@inbound.command("poll")
@pass_runtime
def poll(runtime: Runtime) -> None:
    """Fetch and handle what waits in the configured IMAP mailbox, once."""
    settings = runtime.settings
    if not settings.inbound.imap_host:
        fail("inbound.imap_host is not set: give the mailbox in the config "
             "(inbound.imap_host, imap_username, imap_password) or ALERTS_INBOUND_IMAP_HOST")
    intake = _intake(runtime)
    report = poll_inbox(intake, settings)
    forwarded = deliver_due(runtime.sessions(), settings, kinds=FORWARDS)
    click.echo(f"{report.fetched} fetched, {report.handled} handled, {report.left} left for "
               f"the next poll; {forwarded.sent} reply(ies) forwarded to ward teams")
