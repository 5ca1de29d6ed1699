"""What every page pays before its own work is paid once where it can be (issue 19): the front
door and its two statements depend only on the settings and the page's language, so each is
rendered once per language and then served as those bytes (an address with a query of its own
is rendered afresh, so its switch link keeps it); the pages that read nothing (those, the
my-data form, the favicons) answer on the event loop, with no hop to a worker thread and no
database connection; with no `web.trusted_proxies` no proxy middleware sits on the call, since
it would change nothing; FastAPI's OpenTelemetry hooks, which the product never feeds (it has
`/metrics`), do not ask for a tracer provider at every request; `/healthz` probes the database
with its outbox read, not a `SELECT 1` before it; a browser's Accept-Language is negotiated once
per distinct header, not at every page. Counted, never timed; what the pages say and
set stays as it was (test_front_door, test_my_data, test_client_address, test_service)."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import opentelemetry.trace
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import Pool
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

import alerts.core.translations as translations
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



def test_the_pages_that_read_nothing_take_no_thread_and_no_connection(
    factory: sessionmaker[Session], settings: Settings, hops: list[object],
) -> None:
    client = TestClient(create_app(factory, settings=settings))
    connections: list[object] = []
    engine = factory.kw["bind"]
    assert isinstance(engine, Engine)

    def checkout(*_: object) -> None:
        connections.append(object())

    event.listen(Pool, "checkout", checkout)  # any engine's: reads may have one of their own
    try:
        pages = [client.get(path) for path in ("/", "/privacy", "/accessibility", "/my-data",
                                               "/favicon.ico", "/favicon.svg")]
        assert all(page.status_code == 200 for page in pages)
        assert 'name="csrf_token"' in pages[3].text and "alerts_csrf" in pages[3].cookies
        assert hops == [] and connections == []

        client.get("/subscribe")  # a page that reads the ward list takes a connection,
        assert connections  # and on PostgreSQL (only) a worker thread for its read
        assert len(hops) == (0 if engine.dialect.name == "sqlite" else 1)
    finally:
        event.remove(Pool, "checkout", checkout)


def test_no_request_asks_for_an_opentelemetry_provider(
    factory: sessionmaker[Session], settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = TestClient(create_app(factory, settings=settings))
    asked: list[object] = []
    original = opentelemetry.trace.get_tracer_provider

    def get_tracer_provider() -> Any:
        asked.append(object())
        return original()

    monkeypatch.setattr(opentelemetry.trace, "get_tracer_provider", get_tracer_provider)

    answers = [client.get(path).status_code for path in ("/", "/healthz", "/no-such-page")]

    assert answers == [200, 200, 404] and asked == []


def test_healthz_probes_the_database_with_its_outbox_read_alone(
    factory: sessionmaker[Session], settings: Settings,
) -> None:
    client = TestClient(create_app(factory, settings=settings))
    client.get("/healthz")
    statements: list[str] = []
    engine = factory.kw["bind"]
    assert isinstance(engine, Engine)

    def executed(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", executed)
    try:
        report = client.get("/healthz")
    finally:
        event.remove(engine, "before_cursor_execute", executed)

    assert report.status_code == 200 and report.json()["database"] == "ok"
    assert len(statements) == 3 and all("deliveries" in s for s in statements)


def test_a_browsers_accept_language_is_negotiated_once_per_header(
    factory: sessionmaker[Session], settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = TestClient(create_app(factory, settings=settings))
    negotiated: list[object] = []
    original = translations.negotiate_locale

    def negotiate(*args: Any, **kwargs: Any) -> Any:
        negotiated.append(object())
        return original(*args, **kwargs)

    monkeypatch.setattr(translations, "negotiate_locale", negotiate)
    unheard = uuid.uuid4().hex[:8]  # headers no earlier request sent, so none is known yet
    welsh = f"cy-GB,cy;q=0.9,en-GB;q=0.3,x-{unheard};q=0.1"
    english = f"en-GB,en;q=0.9,x-{unheard};q=0.1"

    pages = [client.get(path, headers={"Accept-Language": header})
             for header in (welsh, english) for path in ("/", "/privacy", "/my-data")]
    long_header = ",".join(["de;q=0.1"] * 40) + ",cy"
    long_pages = [client.get("/", headers={"Accept-Language": long_header}) for _ in range(2)]

    assert [p.headers["content-language"] for p in pages] == ["cy"] * 3 + ["en-GB"] * 3
    assert [p.headers["content-language"] for p in long_pages] == ["cy", "cy"]
    assert len(negotiated) == 2 + 2  # once per short header; a long one each time
