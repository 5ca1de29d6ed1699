"""An officer's urgent alert goes out by email at once and stays on the public record: the
ward's archive page, its Atom feed and its items.json show it, marked urgent, with the time
it was sent, in order among the ward's news, on every ward it was posted to, and a cached
copy of any of them is no longer current once it is posted."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import feedparser
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from alerts.accounts.users import Role, add_user
from alerts.core.config import Settings
from alerts.usecases.posting import post_urgent
from alerts.web.app import create_app
from subscriptions.base import utcnow
from tests.factories import make_subscriber, make_ward
from tests.usecases.test_open_feeds import publish
from tests.web.test_officers import OFFICER, PASSWORD, csrf_of, post, sign_in

RESIDENT = "ann@home.example"
TITLE = "Gas leak: Mill Lane closed"
BODY = "Avoid Mill Lane tonight while the gas board works."
OUTPUTS = ("/wards/{}/", "/wards/{}/feed.atom", "/wards/{}/items.json")


@pytest.fixture
def client(factory: sessionmaker[Session], settings: Settings) -> TestClient:
    now = utcnow()
    with factory.begin() as session:
        riv = make_ward(session, "RIV", "Riverside")
        hil = make_ward(session, "HIL", "Hillcrest")
        make_ward(session, "MKT", "Market")
        make_subscriber(session, riv, RESIDENT, name="Ann Example")
        make_subscriber(session, hil, "cy@home.example")
        publish(session, riv, "Bikes marked at the library", at=now - timedelta(days=2))
        publish(session, riv, "Lock your shed", at=now - timedelta(minutes=30))
    return TestClient(create_app(factory, settings=settings))


def post_alert(factory: sessionmaker[Session], settings: Settings, *codes: str,
               at: datetime) -> None:
    """As `alerts post --urgent` and the officers' page do: the same posting service."""
    for code in codes:
        with factory.begin() as session:
            post_urgent(session, settings, ward_code=code, title=TITLE, body=BODY, now=at)


def test_the_archive_page_shows_an_urgent_alert_marked_urgent_with_its_time_in_order(
        client: TestClient, factory: sessionmaker[Session], settings: Settings) -> None:
    sent = utcnow() - timedelta(hours=1)
    post_alert(factory, settings, "RIV", at=sent)

    page = client.get("/wards/RIV/").text

    assert TITLE in page and BODY in page
    assert 'class="item urgent"' in page and ">Urgent</span>" in page
    local = sent.astimezone(ZoneInfo(settings.scheduler.timezone))
    assert f'datetime="{sent.isoformat()}"' in page
    assert f"at {local:%H:%M}</time>" in page
    # Newest first among the ward's news: after the post of half an hour ago.
    assert page.index("Lock your shed") < page.index(TITLE) < page.index("Bikes marked")
    assert RESIDENT not in page and "Ann Example" not in page


def test_the_atom_feed_has_an_urgent_alert_as_an_entry_marked_urgent_in_order(
        client: TestClient, factory: sessionmaker[Session], settings: Settings) -> None:
    sent = utcnow() - timedelta(hours=1)
    post_alert(factory, settings, "RIV", at=sent)

    response = client.get("/wards/RIV/feed.atom")
    atom = feedparser.parse(response.content)

    assert atom.bozo == 0
    assert [entry.title for entry in atom.entries] == [
        "Lock your shed", f"Urgent: {TITLE}", "Bikes marked at the library"]
    alert = atom.entries[1]
    assert alert.published_parsed[:6] == sent.timetuple()[:6]
    assert {tag.term for tag in alert.tags} == {"alert"}
    assert "Urgent police alert" in alert.content[0].value and BODY in alert.content[0].value
    assert RESIDENT.encode() not in response.content


def test_items_json_has_an_urgent_alert_marked_urgent_with_its_time_in_order(
        client: TestClient, factory: sessionmaker[Session], settings: Settings) -> None:
    sent = utcnow() - timedelta(hours=1)
    post_alert(factory, settings, "RIV", at=sent)

    response = client.get("/wards/RIV/items.json")
    items = json.loads(response.content)["items"]

    assert [item["title"] for item in items] == [
        "Lock your shed", TITLE, "Bikes marked at the library"]
    alert = items[1]
    assert alert["kind"] == "alert" and alert["urgent"] is True
    assert [item["urgent"] for item in items] == [False, True, False]
    assert alert["published"] == sent.astimezone(ZoneInfo("UTC")).isoformat().replace(
        "+00:00", "Z")
    assert alert["text"] == BODY
    assert RESIDENT.encode() not in response.content


@pytest.mark.parametrize("output", OUTPUTS)
def test_posting_an_urgent_alert_makes_a_cached_copy_stale(
        client: TestClient, factory: sessionmaker[Session], settings: Settings,
        output: str) -> None:
    path = output.format("RIV")
    etag = client.get(path).headers["etag"]
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 304

    post_alert(factory, settings, "RIV", at=utcnow())

    fresh = client.get(path, headers={"If-None-Match": etag})
    assert fresh.status_code == 200 and fresh.headers["etag"] != etag
    assert TITLE.encode() in fresh.content
    again = client.get(path, headers={"If-None-Match": fresh.headers["etag"]})
    assert again.status_code == 304


@pytest.mark.parametrize("output", OUTPUTS)
def test_an_alert_posted_to_several_wards_shows_on_each_of_their_pages_only(
        client: TestClient, factory: sessionmaker[Session], settings: Settings,
        output: str) -> None:
    post_alert(factory, settings, "RIV", "HIL", at=utcnow() - timedelta(minutes=5))

    for code in ("RIV", "HIL"):
        assert TITLE.encode() in client.get(output.format(code)).content, code
    assert TITLE.encode() not in client.get(output.format("MKT")).content


def test_an_alert_sent_from_the_officers_page_is_on_the_archive_and_the_page_says_it_will_be(
        client: TestClient, factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        add_user(session, OFFICER, Role.OFFICER, ward_codes=["RIV"], password=PASSWORD)
    sign_in(client)
    form = "/staff/wards/RIV/post"
    alert = {"ward": "RIV", "kind": "alert", "title": TITLE, "body": BODY,
             "action": "publish", "confirm": "send"}
    confirm = post(client, form, {**alert, "action": "preview", "confirm": ""},
                   form_page=f"{form}?kind=alert")
    assert "stays on the ward's public page and in its feeds" in confirm.text
    assert TITLE not in client.get("/wards/RIV/").text

    client.post(form, data={"csrf_token": csrf_of(confirm.text), **alert})

    assert 'class="item urgent"' in client.get("/wards/RIV/").text
    assert f"Urgent: {TITLE}" in client.get("/wards/RIV/feed.atom").text
