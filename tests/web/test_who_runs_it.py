"""Every resident page says who runs it: the masthead names the force's teams and the force,
the footer links the privacy notice, and 999, 101 and Crimestoppers are tap-to-call links,
in English and in Welsh."""

from __future__ import annotations

import dataclasses
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.web.app import create_app

PAGES = ["/subscribe", "/my-data", "/wards/", "/privacy", "/"]


@pytest.fixture
def client(factory: sessionmaker[Session], settings: Settings) -> TestClient:
    force = dataclasses.replace(settings.force, name="Wessex Constabulary",
                                team_name="Neighbourhood Policing Teams")
    return TestClient(create_app(factory, settings=dataclasses.replace(settings, force=force)))


def masthead(page: str) -> str:
    match = re.search(r'<header class="site">(.*?)</header>', page, re.DOTALL)
    assert match, "no masthead"
    return re.sub(r"<[^>]+>", " ", match.group(1))


@pytest.mark.parametrize("path", PAGES)
def test_the_masthead_of_every_resident_page_names_the_team_and_the_force(
    client: TestClient, path: str,
) -> None:
    response = client.get(path)

    assert response.status_code == 200
    top = masthead(response.text)
    assert "Neighbourhood Policing Teams" in top and "Wessex Constabulary" in top
    assert 'href="/privacy"' in response.text


@pytest.mark.parametrize("lang", ["en", "cy"])
@pytest.mark.parametrize("path", PAGES)
def test_999_101_and_crimestoppers_are_tap_to_call_links(client: TestClient, path: str,
                                                         lang: str) -> None:
    page = client.get(path, params={"lang": lang}).text

    calls = re.findall(r'<a href="tel:([^"]*)"[^>]*>([^<]*)</a>', page)
    assert ("999", "999") in calls
    assert ("101", "101") in calls
    assert ("0800555111", "0800 555 111") in calls


def test_a_welsh_page_names_the_team_and_the_force_in_welsh(client: TestClient) -> None:
    top = masthead(client.get("/subscribe", params={"lang": "cy"}).text)
    assert "Newyddion drwy e-bost gan Neighbourhood Policing Teams, Wessex Constabulary" in top
