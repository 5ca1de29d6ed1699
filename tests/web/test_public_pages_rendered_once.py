"""The public pages do their per-request work once (issue 19): a ward's archive, feeds and the
ward list are rendered again only when what they show changes; the item bodies they show are
sanitised once, not at every render; `/healthz` reads the waiting part of the outbox, not every
row ever sent; the unsubscribe page reads a resident's wards in one query however many they
follow; a SQLite engine keeps as many connections as the web's worker threads use."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import jinja2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

import alerts.sources.sanitise as sanitise
import alerts.web.open_feeds as open_feeds
from alerts.core.config import Settings
from alerts.core.db import make_engine
from alerts.delivery.outbox import Delivery, DeliveryStatus
from alerts.sources.items import Item
from alerts.web.app import create_app
from subscriptions.base import utcnow
from subscriptions.links import Purpose
from subscriptions.wards import find_ward
from tests.factories import make_sent_message, make_subscriber, make_ward, signed
from tests.usecases.test_open_feeds import publish


@pytest.fixture
def client(factory: sessionmaker[Session], settings: Settings) -> TestClient:
    with factory.begin() as session:
        riv = make_ward(session, "RIV", "Riverside")
        make_ward(session, "HIL", "Hillcrest")
        publish(session, riv, "Bikes marked at the library", at=utcnow() - timedelta(days=2))
    return TestClient(create_app(factory, settings=settings))


def renders_of(monkeypatch: pytest.MonkeyPatch, name: str) -> list[str]:
    """The names of the templates rendered from now on, `name` among them."""
    rendered: list[str] = []
    original = jinja2.Template.render

    def counting(self: jinja2.Template, *args: Any, **kwargs: Any) -> str:
        if self.name == name:
            rendered.append(name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(jinja2.Template, "render", counting)
    return rendered


def counted(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    calls: list[int] = []
    original: Callable[..., Any] = getattr(owner, name)

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counting)
    return calls


def test_an_unchanged_archive_is_rendered_once_and_any_change_renders_it_again(
        client: TestClient, factory: sessionmaker[Session],
        monkeypatch: pytest.MonkeyPatch) -> None:
    rendered = renders_of(monkeypatch, "web/ward_archive.html")
    first = client.get("/wards/RIV/")
    again = client.get("/wards/RIV/")
    assert again.content == first.content and again.headers["etag"] == first.headers["etag"]
    assert len(rendered) == 1
    # The other language is its own page.
    welsh = client.get("/wards/RIV/?lang=cy")
    assert welsh.headers["content-language"] == "cy" and len(rendered) == 2
    # A new post shows at once: the kept page is not what the ward publishes any more.
    with factory.begin() as session:
        riv = find_ward(session, "RIV")
        assert riv is not None
        publish(session, riv, "Speed watch results", at=utcnow() - timedelta(minutes=1))
    changed = client.get("/wards/RIV/")
    assert b"Speed watch results" in changed.content and len(rendered) == 3
    assert changed.headers["etag"] != first.headers["etag"]
    # A withdrawn post is gone at once too.
    with factory.begin() as session:
        for item in session.query(Item).filter(Item.title == "Speed watch results"):
            item.withdrawn_at = utcnow()
    assert b"Speed watch results" not in client.get("/wards/RIV/").content


def test_an_unchanged_feed_and_ward_list_are_made_once(
        client: TestClient, factory: sessionmaker[Session],
        monkeypatch: pytest.MonkeyPatch) -> None:
    atoms = counted(monkeypatch, open_feeds, "atom_feed")
    lists = renders_of(monkeypatch, "web/wards.html")
    for _ in range(3):
        assert client.get("/wards/RIV/feed.atom").status_code == 200
        assert client.get("/wards/").status_code == 200
    assert len(atoms) == 1 and len(lists) == 1
    with factory.begin() as session:
        make_ward(session, "MIL", "Millbrook")
    assert b"Millbrook" in client.get("/wards/").content and len(lists) == 2


def test_a_stored_body_is_sanitised_once_however_often_it_is_shown(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cleans = counted(monkeypatch, sanitise.nh3, "clean")
    body = f'<p onclick="x()">News {uuid.uuid4()}</p><script>bad()</script>'
    assert sanitise.sanitise_html(body) == sanitise.sanitise_html(body)
    assert "onclick" not in sanitise.sanitise_html(body)
    assert "bad()" not in sanitise.sanitise_html(body)
    assert len(cleans) == 1


def test_healthz_reads_the_waiting_outbox_not_every_row_sent(
        factory: sessionmaker[Session], settings: Settings, engine: Engine) -> None:
    with factory.begin() as session:
        riv = make_ward(session, "RIV", "Riverside")
        residents = [make_subscriber(session, riv) for _ in range(3)]
        make_sent_message(session, riv, residents)
        queued = session.query(Delivery).first()
        assert queued is not None
        queued.status = DeliveryStatus.QUEUED
        queued.next_attempt_at = utcnow() - timedelta(seconds=1)
    statements: list[str] = []
    event.listen(Engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_: statements.append(statement))
    report = TestClient(create_app(factory, settings=settings)).get("/healthz").json()
    assert report["outbox"]["queued"] == 1 and report["outbox"]["due"] == 1
    assert report["outbox"]["failed"] == 0 and report["outbox"]["sending"] == 0
    assert statements and not any("sent_at" in statement for statement in statements)


def test_a_sqlite_engine_keeps_a_connection_for_each_busy_worker_thread(
        tmp_path: Any) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'alerts.db'}")
    try:
        assert engine.pool.size() >= 20  # type: ignore[attr-defined]
    finally:
        engine.dispose()


def test_the_unsubscribe_page_reads_a_residents_wards_at_once_however_many(
        factory: sessionmaker[Session], settings: Settings, engine: Engine) -> None:
    with factory.begin() as session:
        wards = [make_ward(session, code, name) for code, name in
                 (("RIV", "Riverside"), ("HIL", "Hillcrest"), ("MIL", "Millbrook"),
                  ("OAK", "Oakfield"))]
        one = make_subscriber(session, wards[0], "one@home.example")
        many = [make_subscriber(session, ward, "many@home.example") for ward in wards]
        links = [signed(session, settings.web.secret_key, Purpose.UNSUBSCRIBE, s.id)
                 for s in (one, many[0])]
    client = TestClient(create_app(factory, settings=settings))
    counts = []
    for link in links:
        statements: list[str] = []

        def count(*args: Any, kept: list[str] = statements) -> None:
            kept.append(args[2])

        event.listen(Engine, "before_cursor_execute", count)
        page = client.get(f"/unsubscribe/{link}")
        event.remove(Engine, "before_cursor_execute", count)
        assert page.status_code == 200
        counts.append(len(statements))
    assert b"Hillcrest" in page.content and b"Oakfield" in page.content
    assert counts[0] == counts[1]
