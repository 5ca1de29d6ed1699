"""What every page pays before its own work is paid once where it can be (issue 19): the front
door and its two statements depend only on the settings and the page's language, so each is
rendered once per language and then served as those bytes (an address with a query of its own
is rendered afresh, so its switch link keeps it); with no `web.trusted_proxies` no proxy
middleware sits on the call, since it would change nothing. Counted, never timed; what the pages
say and set stays as it was (test_front_door, test_client_address)."""

from __future__ import annotations

import dataclasses

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from alerts.core.config import Settings
from alerts.core.translations import COOKIE
from alerts.web.app import create_app
from tests.web.test_public_pages_rendered_once import renders_of


def test_the_front_door_and_statements_are_rendered_once_per_language(
    factory: sessionmaker[Session], settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = TestClient(create_app(factory, settings=settings))
    front_doors = renders_of(monkeypatch, "web/front_door.html")
    first = client.get("/")

    english = [client.get("/") for _ in range(4)]
    welsh = [client.get("/", headers={"Accept-Language": "cy"}) for _ in range(3)]
    privacy = [client.get("/privacy").text for _ in range(3)]

    assert len(front_doors) == 2  # English and Welsh, once each
    assert all(r.status_code == 200 and r.text == first.text for r in english)
    assert all(r.text == welsh[0].text for r in welsh) and '<html lang="cy">' in welsh[0].text
    assert all(r.headers["content-language"] == "cy" for r in welsh)
    assert len(set(privacy)) == 1 and "Privacy" in privacy[0]
    assert first.headers["cache-control"] == "no-store"
    assert first.headers["content-security-policy"].startswith("default-src 'none'")


def test_a_page_served_from_its_rendering_still_remembers_a_language_picked_with_the_link(
    factory: sessionmaker[Session], settings: Settings,
) -> None:
    client = TestClient(create_app(factory, settings=settings))
    for _ in range(2):
        client.cookies.clear()
        picked = client.get("/?lang=cy")

        assert '<html lang="cy">' in picked.text
        assert picked.cookies.get(COOKIE) == "cy"
        assert 'href="/?lang=en"' in picked.text
    assert COOKIE not in client.get("/", headers={"Accept-Language": "cy"}).cookies


def test_a_front_door_address_with_a_query_of_its_own_keeps_it_in_its_switch_link(
    factory: sessionmaker[Session], settings: Settings,
) -> None:
    client = TestClient(create_app(factory, settings=settings))
    client.get("/")

    searched = client.get("/?q=Mill")

    assert 'href="/?q=Mill&amp;lang=cy"' in searched.text
    assert 'href="/?lang=cy"' in client.get("/").text


def test_no_proxy_middleware_is_on_the_call_unless_a_proxy_is_trusted(
    factory: sessionmaker[Session], settings: Settings,
) -> None:
    direct = create_app(factory, settings=settings)
    proxied = create_app(factory, settings=dataclasses.replace(
        settings, web=dataclasses.replace(settings.web, trusted_proxies=("127.0.0.1",))))

    assert ProxyHeadersMiddleware not in [m.cls for m in direct.user_middleware]
    assert ProxyHeadersMiddleware in [m.cls for m in proxied.user_middleware]

