"""A ward's open feeds (alerts.usecases.open_feeds): which items they hold, and the Atom,
iCalendar and JSON built from them — parsed back with feedparser and icalendar — with no
resident's address (nor the team's) anywhere in them.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import feedparser
from icalendar import Calendar
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import ForceSettings
from alerts.digests.compose import DigestItem
from alerts.digests.invites import sessions_calendar
from alerts.sources.items import CollectedItem, Item, ItemKind, store_items
from alerts.sources.officer import officer_item
from alerts.sources.policeuk import ATTRIBUTION_HTML, LICENCE_URL
from alerts.sources.registry import add_source, officer_source
from alerts.usecases.open_feeds import (
    ATTRIBUTION_TEXT,
    FeedUrls,
    WardFeed,
    atom_feed,
    ics_calendar,
    json_document,
    list_public_wards,
    load_ward_feed,
)
from subscriptions.wards import Ward
from tests.factories import make_subscriber, make_ward

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
FORCE = ForceSettings(ward_team="{ward} Neighbourhood Policing Team")
BASE = "https://alerts.example.org"
ZONE = ZoneInfo("Europe/London")
RESIDENTS = ("ann@home.example", "bob.resident@home.example", "cy@elsewhere.example")


def publish(session: Session, ward: Ward, title: str, *, at: datetime,
            kind: ItemKind = ItemKind.POST, body: str = "Some news.",
            starts: datetime | None = None, ends: datetime | None = None,
            location: str | None = None) -> int:
    """An officer's item, stored as `alerts post` stores it; returns its id."""
    item = officer_item(title=title, body=body, kind=kind, starts=starts, ends=ends,
                        location=location, now=at)
    return store_items(session, officer_source(session, ward), [item]).new_item_ids[0]


@dataclasses.dataclass
class World:
    withdrawn: int
    policeuk: int


def build_world(factory: sessionmaker[Session]) -> World:
    """Riverside (RIV) with posts, advice, sessions coming and over, a withdrawn post, an old
    post and a data.police.uk priority; Hillcrest (HIL) with a post of its own; residents of
    both."""
    with factory.begin() as session:
        riv, hil = make_ward(session, "RIV", "Riverside"), make_ward(session, "HIL", "Hillcrest")
        make_subscriber(session, riv, RESIDENTS[0], name="Ann Example")
        make_subscriber(session, riv, RESIDENTS[1], confirmed=False)
        make_subscriber(session, hil, RESIDENTS[2])
        publish(session, riv, "Bikes marked at the library", at=NOW - timedelta(days=3),
                body="<p>We marked <strong>40</strong> bikes.</p><script>alert(1)</script>")
        publish(session, riv, "Lock your shed", kind=ItemKind.ADVICE,
                at=NOW - timedelta(days=2), body="Sheds are a target this month.")
        publish(session, riv, "Street surgery", kind=ItemKind.SESSION,
                at=NOW - timedelta(days=1), starts=NOW + timedelta(days=5),
                ends=NOW + timedelta(days=5, hours=1), location="Mill Lane library")
        publish(session, riv, "Last week's surgery", kind=ItemKind.SESSION,
                at=NOW - timedelta(days=20), starts=NOW - timedelta(days=10),
                ends=NOW - timedelta(days=10, hours=-1), location="Market square")
        publish(session, riv, "An old post", at=NOW - timedelta(days=200))
        withdrawn = publish(session, riv, "Cancelled surgery", kind=ItemKind.SESSION,
                            at=NOW - timedelta(hours=5), starts=NOW + timedelta(days=3))
        session.get_one(Item, withdrawn).withdrawn_at = NOW - timedelta(hours=4)
        source = add_source(session, "RIV", "policeuk", "metropolitan/E05000123")
        policeuk = store_items(session, source, [CollectedItem(
            guid="priority:1", kind=ItemKind.ADVICE, title="Neighbourhood priority: ASB",
            body_html=f"<p>Anti-social behaviour near the park.</p>\n{ATTRIBUTION_HTML}",
            published_at=NOW - timedelta(days=4))]).new_item_ids[0]
        publish(session, hil, "Hillcrest news", at=NOW - timedelta(hours=1))
    return World(withdrawn, policeuk)


def riverside(factory: sessionmaker[Session]) -> WardFeed:
    with factory() as session:
        feed = load_ward_feed(session, "RIV", now=NOW, force=FORCE)
    assert feed is not None
    return feed


def urls() -> FeedUrls:
    return FeedUrls.for_ward(BASE, "RIV")


def test_a_ward_feed_holds_its_live_recent_news_newest_first_and_sessions_apart(
        factory: sessionmaker[Session]) -> None:
    world = build_world(factory)
    feed = riverside(factory)
    # Sessions are not news: a coming one is listed once, apart; one that is over, nowhere.
    assert [item.title for item in feed.items] == [
        "Lock your shed", "Bikes marked at the library", "Neighbourhood priority: ASB"]
    assert world.withdrawn not in {item.id for item in (*feed.items, *feed.sessions)}
    assert [item.title for item in feed.sessions] == ["Street surgery"]
    assert [item.title for item in feed.series] == ["Street surgery"]
    assert [item.title for item in feed.entries] == [
        "Street surgery", "Lock your shed", "Bikes marked at the library",
        "Neighbourhood priority: ASB"]
    assert feed.team_name == "Riverside Neighbourhood Policing Team"
    # The withdrawal is the newest change, so that caches notice it.
    assert feed.updated == NOW - timedelta(hours=4)
    assert [item.from_policeuk for item in feed.items] == [False, False, True]
    assert "<script>" not in feed.items[1].body_html
    assert feed.items[1].text.startswith("We marked 40 bikes.")


def test_the_feed_is_bounded_and_an_unknown_ward_has_none(
        factory: sessionmaker[Session]) -> None:
    build_world(factory)
    with factory() as session:
        assert load_ward_feed(session, "NOPE", now=NOW, force=FORCE) is None
        short = load_ward_feed(session, "RIV", now=NOW, force=FORCE, max_items=2)
        assert short is not None
        assert [item.title for item in short.items] == [
            "Lock your shed", "Bikes marked at the library"]
        assert [ward.code for ward in list_public_wards(session)] == ["HIL", "RIV"]


def test_an_empty_ward_still_has_valid_feeds(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        make_ward(session, "EMP", "Empty Fields")
    with factory() as session:
        feed = load_ward_feed(session, "EMP", now=NOW, force=FORCE)
    assert feed is not None and not feed.items and not feed.sessions
    addresses = FeedUrls.for_ward(BASE, "EMP")
    parsed = feedparser.parse(atom_feed(feed, addresses, zone=ZONE))
    assert parsed.bozo == 0 and parsed.entries == []
    assert Calendar.from_ical(ics_calendar(feed, uid_domain="alerts.example.org")).walk(
        "VEVENT") == []
    assert json.loads(json_document(feed, addresses))["items"] == []


def test_the_atom_feed_validates_with_its_entries_newest_first(
        factory: sessionmaker[Session]) -> None:
    world = build_world(factory)
    feed = riverside(factory)
    atom = atom_feed(feed, urls(), zone=ZONE)
    parsed = feedparser.parse(atom)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.id == f"{BASE}/wards/RIV/"
    assert parsed.feed.title == "Riverside: neighbourhood news"
    assert parsed.feed.author_detail.name == "Riverside Neighbourhood Policing Team"
    assert "email" not in parsed.feed.author_detail
    assert {link.rel: link.href for link in parsed.feed.links} == {
        "alternate": f"{BASE}/wards/RIV/", "self": f"{BASE}/wards/RIV/feed.atom"}
    assert [entry.title for entry in parsed.entries] == [item.title for item in feed.entries]
    assert "Hillcrest news" not in {entry.title for entry in parsed.entries}
    assert "Cancelled surgery" not in {entry.title for entry in parsed.entries}
    first = parsed.entries[0]
    assert first.id == f"{BASE}/wards/RIV/#item-{feed.entries[0].id}"
    assert first.updated_parsed[:6] == (NOW - timedelta(days=1)).timetuple()[:6]
    assert "Mill Lane library" in first.content[0].value
    stamps = [entry.updated_parsed for entry in parsed.entries]
    assert stamps == sorted(stamps, reverse=True)
    priority = next(e for e in parsed.entries if e.id.endswith(f"#item-{world.policeuk}"))
    assert priority.rights == ATTRIBUTION_TEXT
    # The same data gives the same bytes: the ETag is stable.
    assert atom_feed(riverside(factory), urls(), zone=ZONE) == atom


def test_the_calendar_holds_the_coming_sessions_with_the_digests_uids(
        factory: sessionmaker[Session]) -> None:
    build_world(factory)
    feed = riverside(factory)
    data = ics_calendar(feed, uid_domain="alerts.example.org")
    events = Calendar.from_ical(data).walk("VEVENT")
    assert [str(event["SUMMARY"]) for event in events] == ["Street surgery"]
    assert str(events[0]["LOCATION"]) == "Mill Lane library"
    assert events[0].decoded("DTSTART") == NOW + timedelta(days=5)
    session = feed.sessions[0]
    digest = sessions_calendar([DigestItem(
        id=session.id, kind=session.kind, title=session.title, body_html=session.body_html,
        link=None, published_at=session.published_at, starts_at=session.starts_at,
        ends_at=session.ends_at, location=session.location)],
        ward_name="Riverside", uid_domain="alerts.example.org", now=NOW)
    assert digest is not None
    assert events[0]["UID"] == Calendar.from_ical(digest).walk("VEVENT")[0]["UID"]


def test_the_json_document_has_its_documented_shape(factory: sessionmaker[Session]) -> None:
    world = build_world(factory)
    feed = riverside(factory)
    document = json.loads(json_document(feed, urls()))
    assert document["version"] == 1
    assert document["ward"] == {
        "code": "RIV", "name": "Riverside", "team": "Riverside Neighbourhood Policing Team",
        "url": f"{BASE}/wards/RIV/", "atom": f"{BASE}/wards/RIV/feed.atom",
        "ics": f"{BASE}/wards/RIV/sessions.ics", "json": f"{BASE}/wards/RIV/items.json"}
    assert document["updated"] == "2026-05-01T05:00:00Z"
    assert [item["title"] for item in document["items"]] == [i.title for i in feed.entries]
    session = document["items"][0]
    assert set(session) == {"id", "url", "kind", "urgent", "title", "text", "html", "link",
                            "published", "starts", "ends", "location", "dates", "attribution"}
    assert session["dates"] == [{"starts": "2026-05-06T09:00:00Z", "ends": "2026-05-06T10:00:00Z"}]
    assert session["urgent"] is False
    assert session["kind"] == "session"
    assert session["starts"] == "2026-05-06T09:00:00Z"
    assert session["ends"] == "2026-05-06T10:00:00Z"
    assert session["location"] == "Mill Lane library"
    assert session["published"] == "2026-04-30T09:00:00Z"
    assert session["attribution"] is None
    bikes = document["items"][2]
    assert bikes["html"] == feed.items[1].body_html and "<script>" not in bikes["html"]
    assert bikes["text"].startswith("We marked 40 bikes.")
    assert bikes["starts"] is None and bikes["location"] is None and bikes["dates"] == []
    priority = next(item for item in document["items"] if item["id"] == world.policeuk)
    assert priority["attribution"] == {"text": ATTRIBUTION_TEXT,
                                       "licence": "Open Government Licence v3.0",
                                       "licence_url": LICENCE_URL}
    assert [item["title"] for item in document["sessions"]] == ["Street surgery"]


def test_no_output_names_a_resident_or_the_team_address(
        factory: sessionmaker[Session]) -> None:
    build_world(factory)
    feed = riverside(factory)
    outputs = {
        "atom": atom_feed(feed, urls(), zone=ZONE),
        "ics": ics_calendar(feed, uid_domain="alerts.example.org"),
        "json": json_document(feed, urls()),
    }
    for name, data in outputs.items():
        lowered = data.lower()
        for address in (*RESIDENTS, "team-riv@police.example", "team-hil@police.example"):
            assert address.encode() not in lowered, f"{address} is in the {name}"
        assert b"ann example" not in lowered
        assert b"@home.example" not in lowered
