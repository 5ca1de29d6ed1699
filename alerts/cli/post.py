"""`alerts post`: an officer's own post, advice, contact session or urgent alert for a ward."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from alerts.cli.app import Runtime, fail, pass_runtime
from alerts.core.db import transaction
from alerts.core.events import ItemPublished, UrgentAlertPosted
from alerts.sources.items import ItemKind, store_items
from alerts.sources.officer import officer_item
from alerts.sources.registry import officer_source
from alerts.usecases.posting import post_urgent
from subscriptions.base import utcnow
from subscriptions.wards import get_ward


def register(cli: click.Group) -> None:
    cli.add_command(post)


def parse_time(option: str, value: str | None, zone: ZoneInfo) -> datetime | None:
    """ISO 8601; a time without a zone is read in the scheduler's time zone."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option} {value!r} is not an ISO 8601 time such as 2026-12-05T10:00")
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


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
) -> None:
    """Publish a post, advice or contact session to a ward, or an urgent alert.

    Posts reach immediate subscribers at once and everyone else in their next digest.
    An urgent alert is queued ahead of everything else: a running `alerts run` sends it
    within seconds, otherwise `alerts deliver` does.
    """
    if (body is None) == (body_file is None):
        fail("give the text with exactly one of --body or --body-file")
    text = body_file.read_text(encoding="utf-8") if body_file is not None else body or ""
    if urgent:
        if kind != "post" or starts or ends or location or topics:
            fail("an urgent alert takes only --title and --body (no --kind, times, place or "
                 "topic: it goes to everyone)")
        with transaction(runtime.sessions()) as session:
            outcome = post_urgent(session, runtime.settings, ward_code=ward_code, title=title,
                                  body=text, now=utcnow())
        runtime.bus().publish(
            UrgentAlertPosted(outcome.ward_code, outcome.message_id, outcome.deliveries)
        )
        click.echo(f"urgent alert {outcome.message_id} queued for {outcome.deliveries} "
                   f"subscriber(s) of ward {outcome.ward_code}")
        return
    zone = ZoneInfo(runtime.settings.scheduler.timezone)
    item = officer_item(
        title=title,
        body=text,
        kind=ItemKind(kind),
        starts=parse_time("--starts", starts, zone),
        ends=parse_time("--ends", ends, zone),
        location=location,
        now=utcnow(),
        topics=topics,
        known_topics=runtime.settings.topics.names,
    )
    with transaction(runtime.sessions()) as session:
        ward = get_ward(session, ward_code)
        stored = store_items(session, officer_source(session, ward), [item])
    runtime.bus().publish(ItemPublished(ward.code, stored.new_item_ids))
    click.echo(f"posted {kind} {title!r} to ward {ward.code}; immediate subscribers hear now, "
               "the rest in their next digest")
