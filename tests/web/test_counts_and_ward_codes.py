"""The figures staff read agree with what is sent, and ward codes are names people type.

The officer's "it goes now to N" is the number the urgent alert is queued for; an address
that bounced hard is counted apart ("not receiving"), on the ward page, the overview and the
schemes list, never as a subscriber mail reaches; a ward's public pages and feeds answer a
code in any case with a permanent redirect to the code as stored, and staff pages and the
subscribe form take it; the ward page and the digest preview say when the next digest goes.
On both stores.
"""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from subscriptions.suppression import SuppressionReason, suppress
from subscriptions.wards import find_ward
from tests.factories import make_subscriber
from tests.web.test_officers import ALERT, client, csrf_of, post, sign_in, world
from tests.web.test_residents import sign_up, subscriptions_of

__all__ = ["client", "world"]  # the fixtures, shared with the officers' page tests

BOUNCED = "gone@home.example"


def bounce_one_of_three(factory: sessionmaker[Session]) -> None:
    """RIV has Ann (from the world) and two more confirmed residents; one of them bounced."""
    with factory.begin() as session:
        riv = find_ward(session, "RIV")
        assert riv is not None
        make_subscriber(session, riv, "dee@home.example")
        make_subscriber(session, riv, BOUNCED)
        suppress(session, BOUNCED, SuppressionReason.HARD_BOUNCE, "550 no such user")


def test_the_number_an_urgent_alert_is_said_to_go_to_is_the_number_it_is_queued_for(
        factory: sessionmaker[Session], client: TestClient) -> None:
    bounce_one_of_three(factory)
    assert sign_in(client).url.path == "/staff/"
    form = "/staff/wards/RIV/post"
    asked = post(client, form, {**ALERT, "action": "preview", "confirm": ""},
                 form_page=f"{form}?kind=alert")
    assert "It goes now to 2 confirmed subscribers" in asked.text
    sent = client.post(form, data={"csrf_token": csrf_of(asked.text), **ALERT})
    assert "queued for 2 subscribers" in sent.text


def test_a_hard_bounced_address_is_counted_apart_not_as_a_subscriber(
        factory: sessionmaker[Session], client: TestClient) -> None:
    bounce_one_of_three(factory)
    assert sign_in(client).url.path == "/staff/"
    for page in (client.get("/staff/wards/RIV/"), client.get("/staff/")):
        text = re.sub(r"\s+", " ", page.text)
        assert "<strong>2</strong> subscribers" in text
        assert "<strong>1</strong> not receiving" in text
    form = client.get("/staff/wards/RIV/post?kind=alert")
    assert "goes at once to all 2 confirmed subscribers" in form.text


def test_a_ward_code_in_another_case_is_redirected_to_the_code_as_stored(
        client: TestClient) -> None:
    for path in ("/wards/riv/", "/wards/Riv/feed.atom", "/wards/riv/sessions.ics",
                 "/wards/riv/items.json"):
        moved = client.get(path, follow_redirects=False)
        assert moved.status_code == 301, path
        assert moved.headers["location"] == path.replace(path.split("/")[2], "RIV"), path
        assert client.get(path).status_code == 200, path
    assert client.get("/wards/nope/").status_code == 404


def test_staff_pages_serve_a_ward_code_in_another_case(client: TestClient) -> None:
    assert sign_in(client).url.path == "/staff/"
    page = client.get("/staff/wards/riv/")
    assert page.status_code == 200 and "Riverside" in page.text
    assert client.get("/staff/wards/hil/").status_code == 403


def test_the_ward_page_and_the_digest_preview_say_when_the_next_digest_goes(
        factory: sessionmaker[Session], client: TestClient) -> None:
    with factory.begin() as session:
        riv = find_ward(session, "RIV")
        assert riv is not None
        riv.digest_cron = "30 9 * * mon"  # Mondays at 09:30, London time
    assert sign_in(client).url.path == "/staff/"
    for path in ("/staff/wards/RIV/", "/staff/wards/RIV/digest"):
        text = re.sub(r"\s+", " ", client.get(path).text)
        found = re.search(r"<strong>(Mon \d{1,2} \w{3} \d{4}, 09:30)</strong> next digest"
                          if path.endswith("/") else
                          r"next digest goes on <strong>(Mon \d{1,2} \w{3} \d{4}, 09:30)"
                          r"</strong>", text)
        assert found, path


def test_the_subscribe_form_takes_a_ward_code_in_another_case(
        factory: sessionmaker[Session], client: TestClient) -> None:
    with factory() as session:
        riv = find_ward(session, "RIV")
        assert riv is not None
    status, _ = sign_up(client, "eve@home.example", "riv")
    assert status == 200
    assert [(s.ward_id, s.status) for s in subscriptions_of(factory, "eve@home.example")] \
        == [(riv.id, "pending")]
    # Ann's confirmed subscription to RIV is not made pending again by "riv".
    sign_up(client, "ann@home.example", "riv")
    assert [s.status for s in subscriptions_of(factory, "ann@home.example")] == ["confirmed"]
