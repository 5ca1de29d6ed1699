"""`alerts replies list|show|remind`: what residents wrote back, for officers, and the
reminder of what is still open that each ward team gets on a schedule. The reminders' mail
loads with `remind`, so that reading replies stays light."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import click

from alerts.cli.app import Runtime, fail, pass_runtime, print_json, print_table
from alerts.inbound.replies import ReplySummary, list_replies, show_reply
from subscriptions.base import utcnow


@click.group()
def replies() -> None:
    """Residents' replies to digests and alerts."""


def _row(summary: ReplySummary) -> dict[str, Any]:
    return {
        "id": summary.id, "thread": summary.thread_id, "ward": summary.ward,
        "received_at": summary.received_at.isoformat(), "resident": summary.resident,
        "subject": summary.subject, "answers": summary.answers, "flagged": summary.flagged,
        "signals": list(summary.signals), "forwarded": summary.forwarded,
        "handled": summary.handled, "sender_verified": summary.sender_verified,
    }


@replies.command("list")
@click.option("--ward", "ward_code", metavar="CODE", help="Only this ward's replies.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def list_(runtime: Runtime, ward_code: str | None, as_json: bool) -> None:
    """List replies, newest first; "!" marks one that reads like a crime report."""
    with runtime.sessions()() as session:
        found = list_replies(session, ward_code=ward_code)
    if as_json:
        print_json([_row(summary) for summary in found])
        return
    if not found:
        click.echo("no replies")
        return
    zone = ZoneInfo(runtime.settings.scheduler.timezone)
    print_table(("!", "ID", "RECEIVED", "WARD", "STATE", "RESIDENT", "SUBJECT"), [
        ("!" if s.flagged else "", s.id, f"{s.received_at.astimezone(zone):%Y-%m-%d %H:%M}",
         s.ward, "handled" if s.handled else ("forwarded" if s.forwarded else "queued"),
         s.resident[:28], s.subject[:60]) for s in found])


@replies.command("show")
@click.argument("reply_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def show(runtime: Runtime, reply_id: int, as_json: bool) -> None:
    """Show one reply: its context, what the resident wrote, and the quote below it."""
    with runtime.sessions()() as session:
        view = show_reply(session, reply_id)
    if view is None:
        fail(f"no reply with id {reply_id} (see `alerts replies list`)")
    row = {**_row(view.summary), "resident_email": view.resident_email, "text": view.text,
           "quoted": view.quoted, "forward_error": view.forward_error}
    if as_json:
        print_json(row)
        return
    s = view.summary
    zone = ZoneInfo(runtime.settings.scheduler.timezone)
    click.echo(f"Reply {s.id} (thread {s.thread_id}), ward {s.ward}, "
               f"{s.received_at.astimezone(zone):%Y-%m-%d %H:%M %Z}")
    click.echo(f"From:     {s.resident} <{view.resident_email}>")
    click.echo(f"Subject:  {s.subject}")
    click.echo(f"Answers:  {s.answers}")
    if s.flagged:
        click.echo(f"FLAGGED:  reads like a crime report ({', '.join(s.signals)})")
    if not s.sender_verified:
        click.echo("SENDER NOT VERIFIED: its From failed DMARC or is not the resident's address")
    click.echo(f"State:    {'handled' if s.handled else 'open'}; "
               f"{'forwarded to the team' if s.forwarded else 'not yet forwarded'}"
               + (f" (last error: {view.forward_error})" if view.forward_error else ""))
    click.echo("")
    click.echo(view.text or "(nothing above the quote)")
    if view.quoted:
        click.echo("")
        click.echo("--- quoted ---")
        click.echo(view.quoted)


@replies.command("remind")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def remind(runtime: Runtime, as_json: bool) -> None:
    """Email each ward team its replies open longer than inbound.reminder_days, now (as
    `alerts run` does on inbound.reminder_cron)."""
    from alerts.inbound.reminders import send_reminders
    from alerts.mail.trust import refuse_unsafe_sending

    refuse_unsafe_sending(runtime.settings)
    report = send_reminders(runtime.sessions(), runtime.settings, now=utcnow())
    if as_json:
        print_json({"sent": report.sent, "failed": report.failed})
    else:
        if not report.sent and not report.failed:
            click.echo(f"no replies open longer than {runtime.settings.inbound.reminder_days} "
                       "days: no reminders sent")
        for code, count in report.sent.items():
            click.echo(f"{code}: reminder sent ({count} open)")
        for code, reason in report.failed.items():
            click.echo(f"{code}: reminder NOT sent: {reason}", err=True)
    if report.failed:
        raise SystemExit(1)
