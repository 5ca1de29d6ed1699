"""Where the pages' reads run (issue 19): on SQLite, on the event loop through a connection of
the loop's own; on PostgreSQL, in a worker thread through the shared pool. Writes always go to
a worker thread."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.core.db import session_factory
from alerts.web.app import create_app
from subscriptions.links import Purpose
from subscriptions.wards import Ward
from tests.factories import make_subscriber, make_ward, signed


@pytest.fixture
def links(factory: sessionmaker[Session], settings: Settings) -> dict[str, str]:
    with factory.begin() as session:
        riv = make_ward(session, "RIV", "Riverside")
        resident = make_subscriber(session, riv, "resident@home.example")
        secret = settings.web.secret_key
        return {purpose.value: f"/{purpose.value}/{signed(session, secret, purpose, resident.id)}"
                for purpose in (Purpose.UNSUBSCRIBE, Purpose.PREFERENCES)}


GETS = ("/subscribe", "/wards/", "/wards/RIV/", "/wards/RIV/feed.atom")


def test_a_page_that_only_reads_runs_on_the_loop_on_sqlite_and_in_a_thread_on_postgresql(
        factory: sessionmaker[Session], settings: Settings, engine: Engine,
        links: dict[str, str], hops: list[object]) -> None:
    client = TestClient(create_app(factory, settings=settings))
    for path in (*GETS, links["unsubscribe"], links["preferences"]):
        hops.clear()
        assert client.get(path).status_code == 200, path
        assert len(hops) == (0 if engine.dialect.name == "sqlite" else 1), path


def test_a_page_that_writes_still_runs_in_a_worker_thread(
        factory: sessionmaker[Session], settings: Settings, links: dict[str, str],
        hops: list[object]) -> None:
    client = TestClient(create_app(factory, settings=settings))
    left = client.post(links["unsubscribe"], data={"List-Unsubscribe": "One-Click"})
    assert left.status_code == 200 and len(hops) == 1


@pytest.mark.stores("sqlite")
def test_with_every_pooled_connection_taken_by_writers_a_reading_page_still_answers(
        settings: Settings, engine: Engine, links: dict[str, str]) -> None:
    """A read on the loop never waits for the shared pool: were it to, a pool emptied by
    slow writers in worker threads would stall the loop and every request on it."""
    small = create_engine(settings.database.url, pool_size=1, max_overflow=0,
                          pool_timeout=0.2)
    try:
        client = TestClient(create_app(session_factory(small), settings=settings),
                            raise_server_exceptions=False)
        with small.connect():  # the pool's one connection, held as a slow writer would
            answers = {path: client.get(path).status_code
                       for path in (*GETS, links["unsubscribe"], links["preferences"])}
        assert answers == dict.fromkeys(answers, 200)
    finally:
        small.dispose()


def test_a_read_on_the_loop_sees_what_was_committed_just_before(
        factory: sessionmaker[Session], settings: Settings, links: dict[str, str]) -> None:
    """Each read is a transaction of its own: no page shows an older snapshot."""
    client = TestClient(create_app(factory, settings=settings))
    assert b"Hillcrest" not in client.get("/wards/").content
    with factory.begin() as session:
        session.add(Ward(code="HIL", name="Hillcrest", team_email="hil@police.example"))
    assert b"Hillcrest" in client.get("/wards/").content
    assert b"Hillcrest" in client.get("/subscribe").content
