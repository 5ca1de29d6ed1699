"""The wards' open feeds over HTTP (FastAPI's TestClient): content types, caching headers and
304s, the archive page and ward list, 404 for an unknown ward, and no cookie or address."""

from __future__ import annotations

import json
from datetime import timedelta
from email.utils import format_datetime, parsedate_to_datetime

import feedparser
import pytest
from fastapi.testclient import TestClient
from icalendar import Calendar
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.sources.items import ItemKind
from alerts.web.app import create_app
from subscriptions.base import utcnow
from tests.factories import make_subscriber, make_ward
from tests.usecases.test_open_feeds import publish

FEEDS = {
    "/wards/RIV/": "text/html; charset=utf-8",
    "/wards/RIV/feed.atom": "application/atom+xml; charset=utf-8",
    "/wards/RIV/sessions.ics": "text/calendar; charset=utf-8",
    "/wards/RIV/items.json": "application/json",
}
RESIDENT = "ann@home.example"


@pytest.fixture
def client(factory: sessionmaker[Session], settings: Settings) -> TestClient:
    now = utcnow()
    with factory.begin() as session:
        riv, hil = make_ward(session, "RIV", "Riverside"), make_ward(session, "HIL", "Hillcrest")
        make_subscriber(session, riv, RESIDENT)
        publish(session, riv, "Bikes marked at the library", at=now - timedelta(days=2))
        publish(session, riv, "Street surgery", kind=ItemKind.SESSION,
                at=now - timedelta(days=1), starts=now + timedelta(days=4),
                ends=now + timedelta(days=4, hours=1), location="Mill Lane library")
        publish(session, hil, "Hillcrest news", at=now - timedelta(hours=2))
    return TestClient(create_app(factory, settings=settings))


@pytest.mark.parametrize("path", FEEDS)
def test_each_output_is_public_cacheable_and_cookieless(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == FEEDS[path]
    assert response.headers["cache-control"] == "public, max-age=300"
    etag = response.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    modified = parsedate_to_datetime(response.headers["last-modified"])
    assert utcnow() - timedelta(days=1, minutes=5) < modified < utcnow()
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "set-cookie" not in response.headers
    assert RESIDENT.encode() not in response.content
    assert b"team-riv@police.example" not in response.content
    assert b"Hillcrest news" not in response.content
    # The same answer again has the same ETag, and a client holding it gets 304.
    assert client.get(path).headers["etag"] == etag
    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    assert again.headers["cache-control"] == "public, max-age=300"
    assert client.get(path, headers={"If-None-Match": '"other", ' + etag}).status_code == 304
    assert client.get(path, headers={"If-None-Match": '"other"'}).status_code == 200


def test_if_modified_since_is_answered_and_if_none_match_comes_first(
        client: TestClient) -> None:
    path = "/wards/RIV/feed.atom"
    modified = client.get(path).headers["last-modified"]
    assert client.get(path, headers={"If-Modified-Since": modified}).status_code == 304
    earlier = format_datetime(parsedate_to_datetime(modified) - timedelta(seconds=1),
                              usegmt=True)
    assert client.get(path, headers={"If-Modified-Since": earlier}).status_code == 200
    assert client.get(path, headers={"If-Modified-Since": "not a date"}).status_code == 200
    assert client.get(path, headers={"If-Modified-Since": modified,
                                     "If-None-Match": '"other"'}).status_code == 200


def test_the_feeds_parse(client: TestClient) -> None:
    atom = feedparser.parse(client.get("/wards/RIV/feed.atom").content)
    assert atom.bozo == 0
    assert atom.feed.id == "https://alerts.example.org/wards/RIV/"
    assert [entry.title for entry in atom.entries] == ["Street surgery",
                                                       "Bikes marked at the library"]
    events = Calendar.from_ical(client.get("/wards/RIV/sessions.ics").content).walk("VEVENT")
    assert [str(event["SUMMARY"]) for event in events] == ["Street surgery"]
    document = json.loads(client.get("/wards/RIV/items.json").content)
    assert document["ward"]["code"] == "RIV"
    assert [item["title"] for item in document["items"]] == ["Street surgery",
                                                             "Bikes marked at the library"]
    assert client.get("/wards/RIV/items.json").headers["access-control-allow-origin"] == "*"


def test_the_archive_page_links_its_feeds_and_email_sign_up(client: TestClient) -> None:
    page = client.get("/wards/RIV/").text
    assert ('<link rel="alternate" type="application/atom+xml" '
            'title="Riverside: neighbourhood news (Atom)" '
            'href="https://alerts.example.org/wards/RIV/feed.atom">') in page
    assert 'href="https://alerts.example.org/wards/RIV/sessions.ics"' in page
    assert 'href="https://alerts.example.org/wards/RIV/items.json"' in page
    assert 'href="/subscribe?q=Riverside"' in page
    assert 'call <a href="tel:999">999</a>' in page  # the base template's how-to-report text
    assert "<h1>Riverside</h1>" in page
    assert "Bikes marked at the library" in page and "Mill Lane library" in page
    assert "<form" not in page


def test_the_ward_list_links_every_ward(client: TestClient) -> None:
    response = client.get("/wards/")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=300"
    assert "set-cookie" not in response.headers
    assert '<a href="/wards/HIL/">Hillcrest</a>' in response.text
    assert '<a href="/wards/RIV/">Riverside</a>' in response.text
    etag = response.headers["etag"]
    assert client.get("/wards/", headers={"If-None-Match": etag}).status_code == 304


@pytest.mark.parametrize("path", ["/wards/NOPE/", "/wards/NOPE/feed.atom",
                                  "/wards/NOPE/sessions.ics", "/wards/NOPE/items.json"])
def test_an_unknown_ward_is_a_404_page(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert "set-cookie" not in response.headers
    assert "Ward not found" in response.text
    assert '<a href="/wards/RIV/">Riverside</a>' in response.text


def test_the_archive_page_is_in_welsh_for_a_welsh_reader_and_caches_say_so(
        client: TestClient) -> None:
    english = client.get("/wards/RIV/")
    assert english.headers["vary"] == "Accept-Language, Cookie"
    assert english.headers["content-language"] == "en-GB"
    for welsh in (client.get("/wards/RIV/", headers={"Accept-Language": "cy-GB,en;q=0.5"}),
                  client.get("/wards/RIV/?lang=cy")):
        assert welsh.headers["content-language"] == "cy"
        assert '<html lang="cy">' in welsh.text
        assert "999" in welsh.text and "Bikes marked at the library" in welsh.text
        assert welsh.text != english.text
        assert "set-cookie" not in welsh.headers
    assert 'href="/wards/RIV/?lang=cy"' in english.text
