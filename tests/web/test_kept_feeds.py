"""A ward's archive and feeds served from their kept copy (issue 19): once a ward has not
changed for a while, a request reads its stamp (one indexed query: the ward, its items'
count and newest `changed_at`) and no item row; any change to what it publishes, and time
alone (a session ending, news growing old), shows at once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, event, select, update
from sqlalchemy.orm import Session, sessionmaker

import alerts.usecases.open_feeds as open_feeds
from alerts.core.config import Settings
from alerts.sources.items import CollectedItem, Item, ItemKind, store_items
from alerts.sources.registry import Source, add_source, officer_source
from alerts.web.app import create_app
from subscriptions.base import utcnow
from subscriptions.wards import Ward, find_ward
from tests.factories import make_ward
from tests.usecases.test_open_feeds import publish

PAGES = ("/wards/RIV/", "/wards/RIV/feed.atom", "/wards/RIV/items.json",
         "/wards/RIV/sessions.ics")
# Long enough ago that nothing is within the settling time.
SETTLED = timedelta(minutes=10)


@pytest.fixture
def client(factory: sessionmaker[Session], settings: Settings) -> TestClient:
    with factory.begin() as session:
        riv = make_ward(session, "RIV", "Riverside")
        make_ward(session, "HIL", "Hillcrest")
        now = utcnow()
        publish(session, riv, "Bikes marked at the library", at=now - timedelta(days=2))
        publish(session, riv, "Street surgery", kind=ItemKind.SESSION,
                at=now - timedelta(days=1), starts=now + timedelta(days=3),
                ends=now + timedelta(days=3, hours=1), location="Mill Lane library")
    return TestClient(create_app(factory, settings=settings))


def settle(factory: sessionmaker[Session]) -> None:
    """Every item last changed `SETTLED` ago (named: else the update stamps it now)."""
    with factory.begin() as session:
        session.execute(update(Item).values(changed_at=utcnow() - SETTLED))


@pytest.fixture
def statements() -> Iterator[list[str]]:
    """What the app runs through any engine: its pages' reads have one of their own
    (alerts.web.page_reads)."""
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(args[2])

    event.listen(Engine, "before_cursor_execute", count)
    yield seen
    event.remove(Engine, "before_cursor_execute", count)


@pytest.fixture
def no_settling(monkeypatch: pytest.MonkeyPatch) -> None:
    """A change is trusted at once: what the stamp alone decides is shown (`raising=False`:
    so that the tests run, and fail, on a tree without kept copies too)."""
    monkeypatch.setattr(open_feeds, "SETTLE", timedelta(0), raising=False)


@pytest.mark.usefixtures("no_settling")
@pytest.mark.parametrize("path", PAGES)
def test_an_unchanged_ward_is_served_from_its_kept_copy_reading_one_statement_and_no_item(
        client: TestClient, statements: list[str], path: str) -> None:
    first = client.get(path)
    assert first.status_code == 200 and b"Street surgery" in first.content
    statements.clear()
    again = client.get(path)
    assert again.content == first.content and again.headers["etag"] == first.headers["etag"]
    assert len(statements) == 1, statements
    assert not any("body_html" in statement for statement in statements)


def test_a_change_in_the_settling_time_is_read_afresh_even_if_it_moves_no_stamp(
        client: TestClient, factory: sessionmaker[Session]) -> None:
    """A transaction that began first (or ran on a host whose clock is behind) may commit
    an older changed_at after a newer one was read: while the ward's newest change is
    younger than SETTLE, each request reads the rows."""
    settle(factory)
    assert b"Bikes marked" in client.get("/wards/RIV/").content
    with factory.begin() as session:
        session.execute(update(Item).where(Item.title == "Street surgery")
                        .values(changed_at=utcnow()))
    assert b"Bikes marked" in client.get("/wards/RIV/").content
    with factory.begin() as session:  # an edit committed late, stamped before the newest
        session.execute(update(Item).where(Item.title == "Bikes marked at the library")
                        .values(title="Bikes marked at the school",
                                changed_at=utcnow() - timedelta(seconds=5)))
    for path in PAGES[:3]:
        assert b"Bikes marked at the school" in client.get(path).content, path


@pytest.mark.usefixtures("no_settling")
def test_every_change_to_what_a_ward_publishes_shows_at_once(
        client: TestClient, factory: sessionmaker[Session]) -> None:
    def shown() -> list[bytes]:
        return [client.get(path).content for path in PAGES]

    def collect(session: Session, *items: CollectedItem) -> None:
        ward = find_ward(session, "RIV")
        assert ward is not None
        store_items(session, officer_source(session, ward), items)

    before = shown()
    with factory.begin() as session:  # re-collected with a new title
        (guid,) = session.scalars(select_guid("Bikes marked at the library"))
        collect(session, CollectedItem(guid, ItemKind.POST, "Bikes marked at the school",
                                       "Some news."))
    assert all(b"Bikes marked at the school" in page for page in shown()[:3])
    with factory.begin() as session:  # withdrawn by the collector: gone from every output
        surgery = session.scalars(select_guid("Street surgery")).one()
        session.execute(update(Item).where(Item.guid == surgery).values(withdrawn_at=utcnow()))
    assert not any(b"Street surgery" in page for page in shown())
    with factory.begin() as session:  # an urgent alert
        ward = find_ward(session, "RIV")
        assert ward is not None
        publish(session, ward, "Gas leak on Mill Lane", kind=ItemKind.ALERT, at=utcnow())
    assert all(b"Gas leak on Mill Lane" in page for page in shown()[:3])
    with factory.begin() as session:  # the ward renamed
        session.execute(update(Ward).where(Ward.code == "RIV").values(name="Riverbank"))
    assert all(b"Riverbank" in page for page in shown())
    with factory.begin() as session:  # a source and its items removed
        ward = find_ward(session, "RIV")
        assert ward is not None
        feed = add_source(session, "RIV", "rss", "https://example.org/riv.rss")
        store_items(session, feed, [CollectedItem("g1", ItemKind.POST, "Fete on the green")])
    assert b"Fete on the green" in client.get("/wards/RIV/").content
    with factory.begin() as session:
        session.execute(delete(Source).where(Source.url == "https://example.org/riv.rss"))
    assert b"Fete on the green" not in client.get("/wards/RIV/").content
    assert shown() != before


def select_guid(title: str) -> Any:
    return select(Item.guid).where(Item.title == title)


@pytest.mark.usefixtures("no_settling")
def test_time_alone_takes_an_ended_session_and_old_news_off_the_kept_copy(
        client: TestClient, factory: sessionmaker[Session],
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [utcnow()]
    monkeypatch.setattr("alerts.web.open_feeds.utcnow", lambda: clock[0])
    for path in PAGES:
        assert b"Street surgery" in client.get(path).content
    clock[0] += timedelta(days=3, hours=2)  # the surgery has ended
    for path in PAGES:
        assert b"Street surgery" not in client.get(path).content, path
    assert b"Bikes marked" in client.get("/wards/RIV/").content
    clock[0] += open_feeds.MAX_AGE  # the news is older than the archive keeps
    assert b"Bikes marked" not in client.get("/wards/RIV/").content


@pytest.mark.usefixtures("no_settling")
def test_a_change_committed_while_a_copy_is_read_is_not_kept_under_the_stamp_before_it(
        client: TestClient, factory: sessionmaker[Session], engine: Engine) -> None:
    """The stamp and the rows are read by separate statements, each seeing what is committed
    when it runs: an item committed between them, then removed with its source (the count
    and the newest change back as they were), must leave no copy that shows it."""
    done: list[bool] = []

    def commit_between(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not done and "items.body_html" in statement:  # the rows, after the stamp
            done.append(True)
            with factory.begin() as other:
                source = add_source(other, "RIV", "rss", "https://example.org/riv.rss")
                store_items(other, source, [CollectedItem("g1", ItemKind.POST, "Fete")])

    event.listen(Engine, "before_cursor_execute", commit_between)
    try:
        assert b"Fete" in client.get("/wards/RIV/").content
    finally:
        event.remove(Engine, "before_cursor_execute", commit_between)
    with factory.begin() as session:
        session.execute(delete(Source).where(Source.url == "https://example.org/riv.rss"))
    for path in PAGES[:3]:
        assert b"Fete" not in client.get(path).content, path


@pytest.mark.usefixtures("no_settling")
def test_a_ward_with_nothing_published_is_kept_too(
        client: TestClient, statements: list[str]) -> None:
    first = client.get("/wards/HIL/items.json")
    statements.clear()
    assert client.get("/wards/HIL/items.json").content == first.content
    assert len(statements) == 1


def test_a_code_in_another_case_still_moves_for_good(client: TestClient) -> None:
    moved = client.get("/wards/riv/feed.atom", follow_redirects=False)
    assert moved.status_code == 301 and moved.headers["location"] == "/wards/RIV/feed.atom"
