"""The policeuk source: parsing events and priorities, the rate limiter, and collecting
from a loopback stand-in for data.police.uk into the database and a digest."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.sources.collect import collect
from alerts.sources.items import Item, ItemKind
from alerts.sources.policeuk import (
    BURST,
    RATE_PER_SECOND,
    TokenBucket,
    collect_policeuk,
    parse_events,
    parse_priorities,
)
from alerts.sources.registry import Source, SourceError, add_source
from alerts.usecases.digest_rounds import preview_digest
from tests.factories import make_ward
from tests.servers import FeedServer

LONDON = "Europe/London"
# Before every sample event below, so that none of them is over yet.
NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)

SUMMER_SURGERY: dict[str, Any] = {
    "title": "Beat surgery at the market hall",
    "type": "meeting",
    "description": "<p>Drop in and tell us what worries you about your street.</p>",
    "address": "Market Hall, Bridge Street",
    "start_date": "2026-07-14T10:00:00",
    "end_date": "2026-07-14T11:30:00",
    "contact_details": {},
}
WINTER_WALK: dict[str, Any] = {
    "title": "Evening walkabout on the Brookfield estate",
    "type": "patrol",
    "description": "Walk the estate with your PCSOs and point out what needs fixing.",
    "address": "Brookfield community centre",
    "start_date": "2026-12-03T18:00:00",
    "end_date": "2026-12-03T19:00:00",
    "contact_details": {"email": "nb01@testforce.police.example"},
}
PRIORITIES: list[dict[str, Any]] = [
    {
        "issue": "<p>Speeding on Orchard Way during the school run.</p>",
        "issue-date": "2026-05-20T00:00:00",
        "action": "<p>We are running speed checks with the community speed watch group.</p>",
        "action-date": "2026-05-27T00:00:00",
    },
    {
        "issue": "<p>Bikes taken from gardens and sheds around the allotments.</p>",
        "issue-date": "2026-05-25T00:00:00",
        "action": None,
        "action-date": None,
    },
]

RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel>
  <title>Brookfield ward team</title>
  <item>
    <title>New PCSO joins the team</title>
    <guid>brookfield-new-pcso</guid>
    <description>&lt;p&gt;Say hello when you see her around.&lt;/p&gt;</description>
  </item>
</channel></rss>
"""


def as_json(value: object) -> bytes:
    return json.dumps(value).encode()


def event(**changes: Any) -> dict[str, Any]:
    return {**SUMMER_SURGERY, **changes}


# --- events -------------------------------------------------------------------------------


def test_event_times_are_london_local_times_in_summer_time_and_in_winter() -> None:
    summer, winter = parse_events(as_json([WINTER_WALK, SUMMER_SURGERY]), now=NOW,
                                  timezone=LONDON)

    assert summer.title == "Beat surgery at the market hall"
    # British Summer Time is an hour ahead of UTC; in December London is on GMT.
    assert summer.starts_at == datetime(2026, 7, 14, 9, 0, tzinfo=UTC)
    assert summer.ends_at == datetime(2026, 7, 14, 10, 30, tzinfo=UTC)
    assert winter.starts_at == datetime(2026, 12, 3, 18, 0, tzinfo=UTC)
    assert winter.ends_at == datetime(2026, 12, 3, 19, 0, tzinfo=UTC)
    assert (summer.kind, winter.kind) == (ItemKind.SESSION, ItemKind.SESSION)
    assert summer.location == "Market Hall, Bridge Street"
    assert winter.location == "Brookfield community centre"


def test_an_event_body_is_sanitised_and_credits_the_open_government_licence() -> None:
    hostile = event(description='<p onclick="steal()">Tea and biscuits.</p>'
                                "<script>alert('x')</script>")
    plain = event(title="Coffee with your PCSO", description="Bring a question.\n\nOr two.")

    first, second = parse_events(as_json([hostile, plain]), now=NOW, timezone=LONDON)

    assert "<script" not in first.body_html and "steal" not in first.body_html
    assert "Tea and biscuits." in first.body_html
    assert "<p>Bring a question.</p>" in second.body_html
    for item in (first, second):
        assert "data.police.uk" in item.body_html
        assert "Open Government Licence v3.0" in item.body_html


def test_an_event_with_no_description_still_credits_the_licence() -> None:
    (item,) = parse_events(as_json([event(description=None)]), now=NOW, timezone=LONDON)

    assert item.body_html.startswith("<p>Source: data.police.uk")


def test_events_that_are_over_or_have_no_start_are_left_out() -> None:
    events = [
        event(title="Last month's surgery", start_date="2026-05-01T10:00:00",
              end_date="2026-05-01T11:00:00"),
        event(title="Already under way", start_date="2026-06-01T08:30:00",
              end_date="2026-06-01T12:00:00"),
        event(title="Date to be confirmed", start_date=None, end_date=None),
        event(title="Also to be confirmed", start_date=""),
        event(title="No end given", start_date="2026-06-02T10:00:00", end_date=None),
    ]

    items = parse_events(as_json(events), now=NOW, timezone=LONDON)

    assert [item.title for item in items] == ["Already under way", "No end given"]
    assert items[1].ends_at is None


def test_an_event_keeps_its_guid_across_collections_and_differs_by_place_and_time() -> None:
    again = parse_events(as_json([SUMMER_SURGERY]), now=NOW, timezone=LONDON)
    elsewhere = parse_events(as_json([event(address="Library, High Street")]), now=NOW,
                             timezone=LONDON)
    later = parse_events(as_json([event(start_date="2026-07-21T10:00:00",
                                        end_date="2026-07-21T11:30:00")]), now=NOW,
                         timezone=LONDON)
    (first,) = parse_events(as_json([SUMMER_SURGERY]), now=NOW, timezone=LONDON)

    assert first.guid.startswith("policeuk-event:")
    assert again[0].guid == first.guid
    assert first.guid not in (elsewhere[0].guid, later[0].guid)


def test_an_untitled_event_is_named_after_its_type() -> None:
    (item,) = parse_events(as_json([event(title=None)]), now=NOW, timezone=LONDON)

    assert item.title == "Meeting"


# --- priorities ---------------------------------------------------------------------------


def test_priorities_become_advice_with_what_the_team_is_doing() -> None:
    speeding, bikes = parse_priorities(as_json(PRIORITIES), timezone=LONDON)

    assert speeding.kind == bikes.kind == ItemKind.ADVICE
    assert speeding.title == (
        "Neighbourhood priority: Speeding on Orchard Way during the school run."
    )
    assert "<p>Speeding on Orchard Way during the school run.</p>" in speeding.body_html
    assert "What we are doing:" in speeding.body_html
    assert "community speed watch group" in speeding.body_html
    # Priorities stay in force for months: no publication date, so no digest age limit
    # hides them; the date they were set is told in the text (a BST date here).
    assert speeding.published_at is None and bikes.published_at is None
    assert "Set as a priority on 20 May 2026." in speeding.body_html
    assert "What we are doing" not in bikes.body_html
    for item in (speeding, bikes):
        assert item.guid.startswith("policeuk-priority:")
        assert "Open Government Licence v3.0" in item.body_html
        assert item.starts_at is None


def test_priority_html_is_sanitised_and_a_long_issue_makes_a_short_title() -> None:
    long_issue = (
        "<p><script>steal()</script>Groups gathering after dark near the recreation ground, "
        "with <strong>fireworks</strong> let off towards houses and parked cars on "
        "Willow Crescent and the surrounding roads.</p>"
    )
    entry = {"issue": long_issue, "issue-date": "2026-01-10T00:00:00",
             "action": '<a href="javascript:steal()">Extra patrols</a> on Friday nights.',
             "action-date": None}

    (item,) = parse_priorities(as_json([entry]))

    assert "<script" not in item.body_html and "steal" not in item.body_html
    assert "<strong>fireworks</strong>" in item.body_html
    assert "Extra patrols on Friday nights." in item.body_html  # the dead link unwrapped
    assert item.title.startswith("Neighbourhood priority: Groups gathering after dark")
    assert item.title.endswith("…")
    assert "<" not in item.title
    assert len(item.title) <= len("Neighbourhood priority: ") + 80
    assert "Set as a priority on 10 January 2026." in item.body_html


def test_a_priority_keeps_its_guid_when_the_action_is_added_later() -> None:
    (before,) = parse_priorities(as_json([PRIORITIES[1]]))
    (after,) = parse_priorities(as_json([{**PRIORITIES[1], "action": "<p>Bike marking.</p>",
                                          "action-date": "2026-05-30T00:00:00"}]))

    assert before.guid == after.guid
    assert "Bike marking." in after.body_html


def test_a_priority_with_no_issue_text_is_left_out() -> None:
    empty = {"issue": "<p> </p>", "issue-date": "2026-05-01T00:00:00", "action": None,
             "action-date": None}

    assert parse_priorities(as_json([empty, PRIORITIES[0]]))[0].title.startswith(
        "Neighbourhood priority: Speeding"
    )
    assert len(parse_priorities(as_json([empty]))) == 0


# --- malformed answers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html><body>Service unavailable</body></html>", "it is an HTML page"),
        (b'{"not": "a list"}', "it is a JSON object, not a list"),
        (b"", "it is empty"),
        (b"[{]", "it is not JSON"),
        (b"\xff\xfe[]", "it is not JSON"),
        (b"[3]", "event 1 is a JSON number, not an object"),
        (as_json([{"title": ["a", "list"], "start_date": "2026-07-01T10:00:00"}]),
         "event 1's title is a JSON array, not text"),
        (as_json([SUMMER_SURGERY, event(start_date="next Tuesday")]),
         "event 2's start_date 'next Tuesday' is not a date"),
    ],
)
def test_an_answer_that_is_not_the_events_list_is_refused(body: bytes, reason: str) -> None:
    with pytest.raises(SourceError) as raised:
        parse_events(body, now=NOW, timezone=LONDON)

    message = str(raised.value)
    assert message.startswith("the response is not the data.police.uk events list: ")
    assert reason in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<!DOCTYPE html><html></html>", "it is an HTML page"),
        (b'"priorities"', "it is a JSON string, not a list"),
        (as_json([None]), "priority 1 is a JSON null, not an object"),
        (as_json([{"issue": 42}]), "priority 1's issue is a JSON number, not text"),
        (as_json([{**PRIORITIES[0], "action-date": "soon"}]), "action-date 'soon'"),
    ],
)
def test_an_answer_that_is_not_the_priorities_list_is_refused(body: bytes, reason: str) -> None:
    with pytest.raises(SourceError) as raised:
        parse_priorities(body)

    message = str(raised.value)
    assert message.startswith("the response is not the data.police.uk priorities list: ")
    assert reason in message


# --- adding the source --------------------------------------------------------------------


def test_a_policeuk_source_is_written_force_slash_neighbourhood(session: Session) -> None:
    ward = make_ward(session)

    source = add_source(session, ward.code, "policeuk", " testforce/NB01 ")

    assert (source.kind, source.url) == ("policeuk", "testforce/NB01")
    assert source.describe() == f"source {source.id} (policeuk testforce/NB01)"
    with pytest.raises(SourceError, match="already has"):
        add_source(session, ward.code, "policeuk", "testforce/NB01")


@pytest.mark.parametrize(
    "value",
    ["testforce", "testforce/", "/NB01", "testforce/NB01/events", "test force/NB01",
     "https://data.police.uk/api/testforce/NB01", "testforce/NB01?x=1", "../NB01", ""],
)
def test_a_policeuk_source_that_is_not_force_slash_neighbourhood_is_refused(
    session: Session, value: str
) -> None:
    ward = make_ward(session)

    with pytest.raises(SourceError, match="policeuk sources are written FORCE/NEIGHBOURHOOD, "
                                          "such as leicestershire/NC04"):
        add_source(session, ward.code, "policeuk", value)


# --- the rate limiter ---------------------------------------------------------------------


class FakeTime:
    """A clock that only moves when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_the_limiter_lets_a_burst_of_30_through_then_paces_at_15_a_second() -> None:
    fake = FakeTime()
    limiter = TokenBucket(RATE_PER_SECOND, BURST, clock=fake.clock, sleep=fake.sleep)

    waits = [limiter.acquire() for _ in range(40)]

    assert (RATE_PER_SECOND, BURST) == (15.0, 30)
    assert waits[:30] == [0.0] * 30
    assert len(fake.slept) == 10
    assert sum(fake.slept) == pytest.approx((40 - 30) / 15)
    assert all(wait == pytest.approx(1 / 15) for wait in waits[30:])


def test_the_limiter_refills_while_idle_but_never_beyond_its_burst() -> None:
    fake = FakeTime()
    limiter = TokenBucket(15, 30, clock=fake.clock, sleep=fake.sleep)
    for _ in range(30):
        limiter.acquire()

    fake.now += 1.0  # a quiet second earns 15 requests
    assert [limiter.acquire() for _ in range(15)] == [0.0] * 15
    assert limiter.acquire() > 0

    fake.now += 3600.0  # an idle hour still allows only one burst
    fake.slept.clear()
    for _ in range(31):
        limiter.acquire()
    assert len(fake.slept) == 1


def test_the_limiter_hands_out_each_token_once_across_threads() -> None:
    # The clock stands still, so the waits depend only on how many tokens were taken before:
    # every thread interleaving must give the waits 1/15, 2/15, ... (40 - 30)/15 once each.
    slept: list[float] = []
    limiter = TokenBucket(15, 30, clock=lambda: 0.0, sleep=slept.append)
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for _ in range(5):
            limiter.acquire()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(slept) == pytest.approx([n / 15 for n in range(1, 11)])


def test_every_request_to_data_police_uk_passes_the_limiter(feeds: FeedServer) -> None:
    feeds.put("/api/testforce/NB01/events", as_json([SUMMER_SURGERY]),
              content_type="application/json")
    feeds.put("/api/testforce/NB01/priorities", as_json(PRIORITIES),
              content_type="application/json")
    fake = FakeTime()
    one_at_a_time = TokenBucket(15, 1, clock=fake.clock, sleep=fake.sleep)

    with httpx.Client() as client:
        items = collect_policeuk(client, feeds.url("/api/"), "testforce/NB01", now=NOW,
                                 timezone=LONDON, limiter=one_at_a_time)

    assert len(items) == 3
    assert fake.slept == [pytest.approx(1 / 15)]
    assert [path for path, _ in feeds.requests] == [
        "/api/testforce/NB01/events", "/api/testforce/NB01/priorities"
    ]


# --- collecting into the database ---------------------------------------------------------


@pytest.fixture
def police_settings(settings: Settings, feeds: FeedServer) -> Settings:
    """Settings that send data.police.uk requests to the loopback server."""
    return dataclasses.replace(
        settings,
        sources=dataclasses.replace(settings.sources, policeuk_base_url=feeds.url("/api")),
    )


def serve_neighbourhood(
    feeds: FeedServer,
    events: Sequence[dict[str, Any]] | bytes = (SUMMER_SURGERY, WINTER_WALK),
    priorities: Sequence[dict[str, Any]] | bytes = tuple(PRIORITIES),
    neighbourhood: str = "testforce/NB01",
) -> None:
    """Serve a neighbourhood's two lists (JSON of the given entries, or the bytes as given)."""
    for name, value in (("events", events), ("priorities", priorities)):
        body = value if isinstance(value, bytes) else as_json(list(value))
        feeds.put(f"/api/{neighbourhood}/{name}", body, content_type="application/json")


def new_source(session: Session, ward_code: str, kind: str, url: str) -> Source:
    source = add_source(session, ward_code, kind, url)
    session.commit()
    return source


def items_of(factory: sessionmaker[Session], source: Source) -> list[Item]:
    with factory() as fresh:
        return list(fresh.scalars(
            select(Item).where(Item.source_id == source.id).order_by(Item.id)
        ))


def test_a_neighbourhood_is_collected_as_sessions_and_priorities(
    factory: sessionmaker[Session], session: Session, feeds: FeedServer,
    police_settings: Settings,
) -> None:
    serve_neighbourhood(feeds)
    ward = make_ward(session)
    source = new_source(session, ward.code, "policeuk", "testforce/NB01")

    (result,) = collect(factory, police_settings, now=NOW).results

    assert result.error is None
    assert result.added == 4
    items = items_of(factory, source)
    sessions = [item for item in items if item.kind == ItemKind.SESSION]
    advice = [item for item in items if item.kind == ItemKind.ADVICE]
    assert [item.title for item in sessions] == [
        "Beat surgery at the market hall", "Evening walkabout on the Brookfield estate"
    ]
    assert sessions[0].starts_at == datetime(2026, 7, 14, 9, 0, tzinfo=UTC)
    assert len(advice) == 2
    assert all("Open Government Licence" in item.body_html for item in items)
    with factory() as fresh:
        stored = fresh.get(Source, source.id)
        assert stored is not None
        assert stored.last_ok_at == NOW
        assert stored.last_error is None


def test_collecting_a_neighbourhood_twice_stores_each_item_once(
    factory: sessionmaker[Session], session: Session, feeds: FeedServer,
    police_settings: Settings,
) -> None:
    serve_neighbourhood(feeds)
    source = new_source(session, make_ward(session).code, "policeuk", "testforce/NB01")

    first = collect(factory, police_settings, now=NOW)
    second = collect(factory, police_settings, now=NOW + timedelta(minutes=15))

    assert (first.added, second.added) == (4, 0)
    assert (second.results[0].updated, second.results[0].withdrawn) == (0, 0)
    assert len(items_of(factory, source)) == 4


def test_an_event_that_vanishes_from_the_api_is_withdrawn(
    factory: sessionmaker[Session], session: Session, feeds: FeedServer,
    police_settings: Settings,
) -> None:
    serve_neighbourhood(feeds)
    source = new_source(session, make_ward(session).code, "policeuk", "testforce/NB01")
    collect(factory, police_settings, now=NOW)

    serve_neighbourhood(feeds, events=[SUMMER_SURGERY], priorities=PRIORITIES[:1])
    (result,) = collect(factory, police_settings, now=NOW + timedelta(minutes=15)).results

    # A priority that is dropped is simply no longer current: only sessions are withdrawn.
    assert result.withdrawn == 1
    withdrawn = [item.title for item in items_of(factory, source) if item.withdrawn_at]
    assert withdrawn == ["Evening walkabout on the Brookfield estate"]


def broken_neighbourhood(breakage: str, feeds: FeedServer) -> None:
    if breakage == "no such neighbourhood":
        return  # the loopback server answers 404 for paths it does not know
    if breakage == "rate limited":
        serve_neighbourhood(feeds)
        feeds.put("/api/testforce/NB01/events", '{"error": "slow down"}', status=429,
                  content_type="application/json")
    elif breakage == "rate limited on the second request":
        serve_neighbourhood(feeds)
        feeds.put("/api/testforce/NB01/priorities", "", status=429, content_type="text/plain")
    elif breakage == "an html page":
        serve_neighbourhood(feeds, events=b"<html><body>Down for maintenance</body></html>")
    else:
        assert breakage == "an object"
        serve_neighbourhood(feeds, priorities=b'{"not": "a list"}')


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        ("no such neighbourhood", "data.police.uk has no neighbourhood testforce/NB01 "
                                  "(HTTP 404); check the force and neighbourhood ids"),
        ("rate limited", "data.police.uk is rate-limiting us (HTTP 429); the next "
                         "collection will try again"),
        ("rate limited on the second request", "data.police.uk is rate-limiting us (HTTP 429)"),
        ("an html page", "the response is not the data.police.uk events list: "
                         "it is an HTML page"),
        ("an object", "the response is not the data.police.uk priorities list: "
                      "it is a JSON object, not a list"),
    ],
)
def test_a_broken_neighbourhood_gets_a_one_line_error_and_the_feed_beside_it_is_collected(
    factory: sessionmaker[Session], session: Session, feeds: FeedServer,
    police_settings: Settings, breakage: str, reason: str,
) -> None:
    broken_neighbourhood(breakage, feeds)
    ward = make_ward(session)
    police = new_source(session, ward.code, "policeuk", "testforce/NB01")
    feed = new_source(session, ward.code, "rss", feeds.put("/brookfield.xml", RSS))

    report = collect(factory, police_settings, now=NOW)

    (error,) = report.errors
    assert error.startswith(f"{police.describe()}: {reason}")
    assert "\n" not in error
    # Nothing is kept from a half-answered neighbourhood.
    assert items_of(factory, police) == []
    assert [item.title for item in items_of(factory, feed)] == ["New PCSO joins the team"]
    with factory() as fresh:
        stored = fresh.get(Source, police.id)
        assert stored is not None
        assert (stored.last_error, stored.last_ok_at) == (error, None)


def test_a_later_failure_keeps_the_sessions_already_collected(
    factory: sessionmaker[Session], session: Session, feeds: FeedServer,
    police_settings: Settings,
) -> None:
    serve_neighbourhood(feeds)
    source = new_source(session, make_ward(session).code, "policeuk", "testforce/NB01")
    collect(factory, police_settings, now=NOW)

    feeds.put("/api/testforce/NB01/priorities", "", status=429, content_type="text/plain")
    (result,) = collect(factory, police_settings, now=NOW + timedelta(minutes=15)).results

    assert result.error is not None and "HTTP 429" in result.error
    assert [item.withdrawn_at for item in items_of(factory, source)] == [None] * 4


def test_a_collected_neighbourhood_appears_in_the_ward_digest(
    factory: sessionmaker[Session], session: Session, feeds: FeedServer,
    police_settings: Settings,
) -> None:
    serve_neighbourhood(feeds)
    ward = make_ward(session)
    new_source(session, ward.code, "policeuk", "testforce/NB01")
    collect(factory, police_settings, now=NOW)

    with factory() as fresh:
        rendered = preview_digest(fresh, ward.code, police_settings, now=NOW)

    assert rendered is not None
    for title in ("Beat surgery at the market hall",
                  "Evening walkabout on the Brookfield estate",
                  "Neighbourhood priority: Speeding on Orchard Way during the school run.",
                  "Neighbourhood priority: Bikes taken from gardens and sheds around the "
                  "allotments."):
        assert title in rendered.html
    assert "Open Government Licence v3.0" in rendered.html
    assert "Open Government Licence v3.0" in rendered.text
