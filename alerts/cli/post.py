"""`alerts post`: an officer's own post, advice, contact session or urgent alert for a ward.

Thin: it reads the options, asks before an urgent alert goes (on a terminal; `--yes` for
scripts) and calls the posting service the staff pages call too (`alerts.usecases.posting`),
which checks, stores, audits and announces the post. The audit log names the operator as
`command line (<their login name>)`, as for every other change made at the command line.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from alerts.cli.app import Runtime, cli_actor, fail, loading, pass_runtime
from alerts.core.config import Settings

if TYPE_CHECKING:  # the models and the posting service (which builds mail) load once the
    # options are checked, not for --help or a mistyped option
    from sqlalchemy.orm import Session, sessionmaker

    from alerts.accounts.access import Principal
    from alerts.usecases.posting import Draft


def parse_time(option: str, value: str | None, timezone: str) -> datetime | None:
    """ISO 8601; a time without a zone is read in the scheduler's time zone (`timezone`, the
    tz database loaded only then: most posts give no time)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option} {value!r} is not an ISO 8601 time such as 2026-12-05T10:00")
    if moment.tzinfo is not None:
        return moment
    from zoneinfo import ZoneInfo

    return moment.replace(tzinfo=ZoneInfo(timezone))


@click.command()
@click.option("--ward", "ward_code", required=True, metavar="CODE")
@click.option("--title", required=True, metavar="T")
@click.option("--body", metavar="T", help="The text (plain text or simple HTML).")
@click.option("--body-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              metavar="F", help="Read the text from a file.")
@click.option("--kind", type=click.Choice(["post", "advice", "session"]), default="post",
              show_default=True)
@click.option("--starts", metavar="ISO", help="A session's start, e.g. 2026-12-05T10:00.")
@click.option("--ends", metavar="ISO", help="A session's end.")
@click.option("--location", metavar="TEXT", help="Where a session is held.")
@click.option("--topic", "topics", multiple=True, metavar="NAME",
              help="What the post is about (repeat for more), from topics.names in the config.")
@click.option("--urgent", is_flag=True,
              help="Send at once to every confirmed subscriber, whatever their frequency.")
@click.option("--yes", is_flag=True,
              help="Send an urgent alert without asking first (for scripts).")
@pass_runtime
def post(
    runtime: Runtime,
    ward_code: str,
    title: str,
    body: str | None,
    body_file: Path | None,
    kind: str,
    starts: str | None,
    ends: str | None,
    location: str | None,
    topics: tuple[str, ...],
    urgent: bool,
    yes: bool,
) -> None:
    """Publish a post, advice or contact session to a ward, or an urgent alert.

    Posts reach immediate subscribers at once and everyone else in their next digest.
    An urgent alert is queued ahead of everything else: a running `alerts run` sends it
    within seconds, otherwise `alerts deliver` does. It is sent once you confirm it (or
    with --yes).
    """
    if (body is None) == (body_file is None):
        fail("give the text with exactly one of --body or --body-file")
    text = body_file.read_text(encoding="utf-8") if body_file is not None else body or ""
    if urgent and (kind != "post" or starts or ends or location or topics):
        fail("an urgent alert takes only --title and --body (no --kind, times, place or "
             "topic: it goes to everyone)")
    if kind != "session" and (starts or ends or location):
        fail(f"a {kind} has no start, end or location; only a session has")
    with loading():
        from alerts.accounts.access import command_line_principal
        from alerts.sources.items import ItemKind
        from alerts.usecases.posting import Draft, post_draft
        from subscriptions.base import utcnow

    zone = runtime.settings.scheduler.timezone
    draft = Draft(kind=ItemKind.ALERT if urgent else ItemKind(kind), title=title, body=text,
                  starts=parse_time("--starts", starts, zone),
                  ends=parse_time("--ends", ends, zone), location=location, topics=topics)
    who = command_line_principal(cli_actor())
    if urgent and not yes:
        confirm_urgent(runtime.sessions(), runtime.settings, who, ward_code, draft)
    done = post_draft(runtime.sessions(), runtime.bus(), runtime.settings, who, ward_code, draft,
                      now=utcnow())
    if urgent:
        click.echo(f"urgent alert {done.message_id} queued for {done.deliveries} "
                   f"subscriber(s) of ward {done.ward_code}")
    else:
        click.echo(f"posted {kind} {title!r} to ward {done.ward_code}; immediate subscribers "
                   "hear now, the rest in their next digest")


def confirm_urgent(factory: sessionmaker[Session], settings: Settings, who: Principal,
                   code: str, draft: Draft) -> None:
    """Ask, as the page does, before an urgent alert goes; refuse when no one can answer."""
    from alerts.usecases.posting import preview_draft
    from alerts.usecases.staff import ward_for
    from subscriptions.base import utcnow

    with factory() as session:
        ward = ward_for(session, who, code)
        confirmed = preview_draft(session, settings, who, code, draft, now=utcnow()).confirmed
    if sys.stdin is None or not sys.stdin.isatty():
        fail("an urgent alert is sent only once confirmed: run `alerts post --urgent` on a "
             "terminal, or add --yes")
    click.echo(f"It goes now to {confirmed} confirmed subscriber{'' if confirmed == 1 else 's'}"
               f" of {ward.name} ({ward.code}), ahead of every other email. It cannot be "
               "called back once sent, and it stays on the ward's public page and feeds.",
               err=True)
    if not click.confirm(f"Send this urgent alert to {ward.name}?", err=True):
        fail("the urgent alert was not sent")
