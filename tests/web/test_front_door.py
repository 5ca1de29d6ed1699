"""The front door: `/` says what the service is and who runs it and shows every way in; the
privacy notice and accessibility statement say the configured facts; a favicon is served;
every resident page links to all three."""

from __future__ import annotations

import dataclasses

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.web.app import create_app

FORCE = {"team_name": "Neighbourhood Policing Teams",
         "controller": "The Chief Constable of Wessex Constabulary",
         "contact_email": "privacy@wessex.example",
         "retention": "for as long as you stay subscribed and 30 days after",
         "lawful_basis": "performing a task in the public interest",
         "statement_reviewed": "3 November 2026"}


def served(factory: sessionmaker[Session], settings: Settings, **force: str) -> TestClient:
    named = dataclasses.replace(settings.force, name="Wessex Constabulary", **force)
    return TestClient(create_app(factory, settings=dataclasses.replace(settings, force=named)))


@pytest.fixture
def client(factory: sessionmaker[Session], settings: Settings) -> TestClient:
    """The app for a force that has set only its name."""
    return served(factory, settings)


@pytest.fixture
def configured(factory: sessionmaker[Session], settings: Settings) -> TestClient:
    """The app for a force that has set what its statements say."""
    return served(factory, settings, **FORCE)


def test_the_front_door_names_the_force_and_team_and_shows_every_way_in(
    configured: TestClient,
) -> None:
    response = configured.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "Wessex Constabulary" in page and "Neighbourhood Policing Teams" in page
    assert '<form method="get" action="/subscribe"' in page and 'name="q"' in page
    for link in ('href="/subscribe"', 'href="/wards/"', 'href="/staff/sign-in"',
                 'href="/privacy"', 'href="/accessibility"', 'href="/my-data"'):
        assert link in page, link
    assert "999" in page and "101" in page
    assert "<script" not in page


def test_the_front_door_is_a_page_even_before_the_statements_are_configured(
    client: TestClient,
) -> None:
    response = client.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "Wessex Constabulary" in response.text


def test_the_front_door_search_goes_to_the_subscribe_page(client: TestClient) -> None:
    assert client.get("/subscribe", params={"q": "AB1 2CD"}).status_code == 200


def test_the_front_door_speaks_welsh_when_asked(client: TestClient) -> None:
    response = client.get("/", params={"lang": "cy"})

    assert response.headers["content-language"] == "cy"
    assert '<html lang="cy">' in response.text
    assert "Wessex Constabulary" in response.text
    assert "Find your ward and subscribe" not in response.text


def test_the_privacy_notice_says_the_configured_facts(configured: TestClient) -> None:
    response = configured.get("/privacy")

    assert response.status_code == 200
    page = response.text
    assert "The Chief Constable of Wessex Constabulary" in page
    assert 'href="mailto:privacy@wessex.example"' in page
    assert "for as long as you stay subscribed and 30 days after" in page
    assert "performing a task in the public interest" in page
    assert "3 November 2026" in page
    assert 'href="/my-data"' in page and "ico.org.uk" in page


def test_the_accessibility_statement_has_the_sections_the_regulations_ask_for(
    configured: TestClient,
) -> None:
    response = configured.get("/accessibility")

    assert response.status_code == 200
    page = response.text
    assert "The Chief Constable of Wessex Constabulary" in page
    assert 'href="mailto:privacy@wessex.example"' in page
    assert "3 November 2026" in page
    for words in ("What to do if you cannot use parts of this service",
                  "Reporting accessibility problems", "Enforcement procedure",
                  "Equality and Human Rights Commission",
                  "Equality Commission for Northern Ireland",
                  "(No. 2) Accessibility Regulations 2018", "Compliance status",
                  "Web Content Accessibility Guidelines version 2.2 AA",
                  "Non-accessible content", "What we are doing to improve accessibility",
                  "Preparation of this accessibility statement"):
        assert words in page, words


@pytest.mark.parametrize(("path", "media_type", "start"), [
    ("/favicon.ico", "image/x-icon", b"\x00\x00\x01\x00"),
    ("/favicon.svg", "image/svg+xml", b"<svg"),
])
def test_a_favicon_is_served(client: TestClient, path: str, media_type: str,
                             start: bytes) -> None:
    response = client.get(path)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)
    assert response.content.startswith(start)


@pytest.mark.parametrize("path", ["/subscribe", "/my-data", "/wards/", "/privacy"])
def test_resident_pages_link_to_the_front_door_and_both_statements(
    client: TestClient, path: str,
) -> None:
    page = client.get(path).text

    for link in ('href="/"', 'href="/privacy"', 'href="/accessibility"',
                 'href="/favicon.svg"'):
        assert link in page, link


def test_the_front_door_statements_and_icons_are_answered_without_a_worker_thread(
        client: TestClient, hops: list[object]) -> None:
    """They read nothing and wait on nothing (issue 19): no hop to a worker thread and back."""
    for path in ("/", "/?lang=cy", "/privacy", "/accessibility", "/favicon.ico",
                 "/favicon.svg"):
        assert client.get(path).status_code == 200, path
    assert hops == []
    client.post("/my-data", data={"email": "x"})  # a handler that writes hops: hops are seen
    assert len(hops) == 1
