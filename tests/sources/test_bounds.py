"""Bounded work from outside: a hostile calendar, feed or police answer, served over HTTP on
loopback, is collected up to the caps in `sources.*`, and the collect says what it left out,
naming the source."""

from __future__ import annotations

import dataclasses
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session, sessionmaker

from alerts.cli import cli
from alerts.core.config import Settings
from alerts.sources.collect import SourceResult, collect
from alerts.sources.items import ItemKind
from alerts.sources.registry import Source, add_source
from tests.factories import make_ward
from tests.servers import FeedServer
from tests.sources.test_collect import calendar, now_utc, stamp
from tests.sources.test_policeuk import items_of


def drop_in(first: str, rule: str) -> list[str]:
    """A 'Drop-in' that repeats by `rule` for ever (unless the rule says otherwise)."""
    return ["UID:drop-in@riverside.snt.example", f"DTSTART:{first}", f"RRULE:{rule}",
            "DURATION:PT30S", "SUMMARY:Drop-in", "LOCATION:Riverside Library"]


def new_source(session: Session, kind: str, url: str) -> Source:
    source = add_source(session, make_ward(session).code, kind, url)
    session.commit()
    return source


def with_sources(settings: Settings, **changes: object) -> Settings:
    return dataclasses.replace(settings, sources=dataclasses.replace(settings.sources, **changes))


def left_out(result: SourceResult) -> list[str]:
    return list(getattr(result, "left_out", ()))


# --- calendars ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "first", "rule", "step"),
    [
        ("minutely-from-now", "now", "FREQ=MINUTELY", timedelta(minutes=1)),
        ("secondly-from-now", "now", "FREQ=SECONDLY", timedelta(seconds=1)),
        ("secondly-since-2000", "20000101T000000Z", "FREQ=SECONDLY", timedelta(seconds=1)),
        ("two-billion-seconds-since-2000", "20000101T000000Z",
         "FREQ=SECONDLY;COUNT=2000000000", timedelta(seconds=1)),
        ("minutely-since-1900-floating", "19000101T000000", "FREQ=MINUTELY",
         timedelta(minutes=1)),
    ],
)
def test_an_endless_event_keeps_its_first_occurrences_and_the_collect_says_so(
    factory: sessionmaker[Session], session: Session, feeds: FeedServer, settings: Settings,
    shape: str, first: str, rule: str, step: timedelta,
) -> None:
    now = now_utc().replace(second=0)
    start = stamp(now) if first == "now" else first
    source = new_source(session, "ics", feeds.put("/sessions.ics",
                                                   calendar(drop_in(start, rule))))

    (result,) = collect(factory, settings, now=now).results

    items = items_of(factory, source)
    assert result.error is None
    assert result.added == len(items) == 100
    assert settings.sources.max_occurrences_per_event == 100
    assert all(item.kind == ItemKind.SESSION and item.title == "Drop-in" for item in items)
    # The soonest 100, one step apart, from the one in progress at `now` (floating times are
    # London's, whose seconds are UTC's).
    starts = sorted(item.starts_at for item in items if item.starts_at is not None)
    assert starts[-1] - starts[0] == 99 * step
    assert starts[0] <= now + step
    assert left_out(result) == [
        f"{source.describe()}: kept 100 occurrences of 'Drop-in' (more left out: "
        "sources.max_occurrences_per_event = 100)"
    ]


def test_the_next_collect_moves_the_kept_occurrences_forward_and_withdraws_none(
    factory: sessionmaker[Session], session: Session, feeds: FeedServer, settings: Settings,
) -> None:
    now = now_utc().replace(second=0)
    body = calendar(drop_in(stamp(now), "FREQ=MINUTELY"))
    source = new_source(session, "ics", feeds.put("/sessions.ics", body))
    collect(factory, settings, now=now)

    (result,) = collect(factory, settings, now=now + timedelta(minutes=15)).results

    assert (result.added, result.withdrawn) == (15, 0)
    assert len(items_of(factory, source)) == 115


def test_a_calendar_with_more_events_than_the_cap_keeps_the_soonest(
    factory: sessionmaker[Session], session: Session, feeds: FeedServer, settings: Settings,
) -> None:
    now = now_utc()
    events = [
        [f"UID:session-{n}@riverside.snt.example", f"DTSTART:{stamp(now + timedelta(hours=n))}",
         "DURATION:PT1H", f"SUMMARY:Session {n}"]
        for n in range(1, 601)
    ]
    random.Random(15).shuffle(events)
    source = new_source(session, "ics", feeds.put("/sessions.ics", calendar(*events)))

    (result,) = collect(factory, settings, now=now).results

    titles = {item.title for item in items_of(factory, source)}
    assert result.added == len(titles) == 500
    assert settings.sources.max_items_per_collect == 500
    assert titles == {f"Session {n}" for n in range(1, 501)}
    assert left_out(result) == [
        f"{source.describe()}: kept the first 500 of 600 items (100 left out: "
        "sources.max_items_per_collect = 500)"
    ]


# --- feeds --------------------------------------------------------------------------------


def rss(entries: list[tuple[int, datetime | None]]) -> bytes:
    """An RSS document of one short item per (number, published) pair, in that order."""
    parts = ['<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
             "<title>Riverside</title><link>https://snt.police.example/</link>"]
    for number, published in entries:
        when = f"{published:%d %b %Y %H:%M:%S} GMT" if published else ""
        date = f"<pubDate>{when}</pubDate>" if published else ""
        parts.append(f"<item><title>News {number}</title>{date}</item>")
    parts.append("</channel></rss>")
    return "".join(parts).encode()


def test_a_feed_of_60000_entries_keeps_only_the_200_newest(
    factory: sessionmaker[Session], session: Session, feeds: FeedServer, settings: Settings,
) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    entries: list[tuple[int, datetime | None]] = [
        (n, base + timedelta(minutes=n)) for n in range(60_000)
    ]
    random.Random(15).shuffle(entries)  # newest by date, wherever they are in the feed
    body = rss(entries)
    assert len(body) < 5_000_000  # under the fetch's size cap
    source = new_source(session, "rss", feeds.put("/news.xml", body))

    (result,) = collect(factory, settings, now=base + timedelta(days=60)).results

    assert result.error is None
    titles = {item.title for item in items_of(factory, source)}
    assert result.added == len(titles) == 200
    assert settings.sources.max_feed_entries == 200
    assert titles == {f"News {n}" for n in range(59_800, 60_000)}
    assert left_out(result) == [
        f"{source.describe()}: kept the newest 200 of 60,000 entries (59,800 left out: "
        "sources.max_feed_entries = 200)"
    ]


def test_a_feed_without_dates_keeps_its_first_entries(
    factory: sessionmaker[Session], session: Session, feeds: FeedServer, settings: Settings,
) -> None:
    body = rss([(n, None) for n in range(1_000)])
    source = new_source(session, "rss", feeds.put("/news.xml", body))

    (result,) = collect(factory, settings).results

    assert [item.title for item in items_of(factory, source)] == [
        f"News {n}" for n in range(200)
    ]
    assert left_out(result) == [
        f"{source.describe()}: kept the newest 200 of 1,000 entries (800 left out: "
        "sources.max_feed_entries = 200)"
    ]


def test_a_feed_that_is_not_well_formed_is_still_bounded(
    factory: sessionmaker[Session], session: Session, feeds: FeedServer, settings: Settings,
) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    body = rss([(n, base + timedelta(hours=n)) for n in range(1_000)]).replace(
        b"<title>News 0</title>", b"<title>News 0 & more</title>")  # a bare & : not XML
    source = new_source(session, "rss", feeds.put("/news.xml", body))

    (result,) = collect(factory, settings, now=base + timedelta(days=60)).results

    titles = {item.title for item in items_of(factory, source)}
    assert titles == {f"News {n}" for n in range(800, 1_000)}
    assert len(left_out(result)) == 1


def test_the_item_cap_bounds_a_feed_when_it_is_the_smaller(
    factory: sessionmaker[Session], session: Session, feeds: FeedServer, settings: Settings,
) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    body = rss([(n, base + timedelta(hours=n)) for n in range(300)])
    source = new_source(session, "rss", feeds.put("/news.xml", body))
    capped = with_sources(settings, max_feed_entries=200, max_items_per_collect=20)

    (result,) = collect(factory, capped, now=base + timedelta(days=30)).results

    assert {item.title for item in items_of(factory, source)} == {
        f"News {n}" for n in range(280, 300)
    }
    assert left_out(result) == [
        f"{source.describe()}: kept the newest 20 of 300 entries (280 left out: "
        "sources.max_items_per_collect = 20)"
    ]


# --- data.police.uk -----------------------------------------------------------------------


def test_a_neighbourhood_with_more_events_than_the_cap_keeps_its_priorities_and_the_soonest(
    factory: sessionmaker[Session], session: Session, feeds: FeedServer, settings: Settings,
) -> None:
    now = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
    local = now.astimezone(ZoneInfo(settings.scheduler.timezone))  # the API's zoneless times
    events = [
        {"title": f"Beat surgery {n}", "type": "meeting", "description": "Drop in.",
         "address": "Market Hall", "start_date": f"{local + timedelta(hours=n):%Y-%m-%dT%H:%M}",
         "end_date": None, "contact_details": {}}
        for n in range(1, 601)
    ]
    random.Random(15).shuffle(events)
    priorities = [{"issue": "<p>Speeding on Orchard Way.</p>", "issue-date": "2026-05-20T00:00:00",
                   "action": None, "action-date": None}]
    feeds.put("/api/testforce/NB01/events", json.dumps(events), content_type="application/json")
    feeds.put("/api/testforce/NB01/priorities", json.dumps(priorities),
              content_type="application/json")
    source = new_source(session, "policeuk", "testforce/NB01")
    police = with_sources(settings, policeuk_base_url=feeds.url("/api"))

    (result,) = collect(factory, police, now=now).results

    items = items_of(factory, source)
    assert result.added == len(items) == 500
    assert [item.kind for item in items].count(ItemKind.ADVICE) == 1
    sessions = {item.title for item in items if item.kind == ItemKind.SESSION}
    assert sessions == {f"Beat surgery {n}" for n in range(1, 500)}
    assert left_out(result) == [
        f"{source.describe()}: kept the first 500 of 601 items (101 left out: "
        "sources.max_items_per_collect = 500)"
    ]


# --- alerts collect -----------------------------------------------------------------------


def test_alerts_collect_names_the_source_and_what_it_left_out(
    tmp_path: Path, settings: Settings, feeds: FeedServer,
) -> None:
    config = tmp_path / "alerts.toml"
    config.write_text(f'[database]\nurl = "{settings.database.url}"\n'
                      f'[mail]\nmaildir = "{tmp_path / "outbox"}"\n')
    url = feeds.put("/sessions.ics", calendar(drop_in(stamp(now_utc()), "FREQ=SECONDLY")))
    weekly = feeds.put("/weekly.ics", calendar(drop_in(stamp(now_utc() + timedelta(days=1)),
                                                         "FREQ=WEEKLY")))
    runner = CliRunner()

    def alerts(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(cli, ["--config", str(config), *args])
        return result.exit_code, result.stdout, result.stderr

    assert alerts("init")[0] == 0
    assert alerts("wards", "add", "RIV", "Riverside", "--team-email", "riv@police.example")[0] == 0
    for each in (url, weekly):
        assert alerts("sources", "add", "--ward", "RIV", "--kind", "ics", each)[0] == 0

    code, out, err = alerts("collect")

    assert code == 0
    assert f"(ics {url}): 100 new, 0 updated" in out
    assert f"(ics {weekly}): 6 new, 0 updated" in out
    (line,) = err.strip().splitlines()  # nothing about the weekly calendar
    assert line.startswith("left out: source ")
    assert line.endswith(f"(ics {url}): kept 100 occurrences of 'Drop-in' (more left out: "
                         "sources.max_occurrences_per_event = 100)")
