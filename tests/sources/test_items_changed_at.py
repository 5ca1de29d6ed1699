"""`items.changed_at` moves on every write of an item (issue 19): the open feeds' kept copies
are checked against it. Set by the ORM (`default` and `onupdate`), so every write path,
the collectors' and officers' `store_items` and a Core `update(Item)` alike, moves it;
a collection that changes nothing leaves it."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from alerts.core.config import Settings
from alerts.sources.items import CollectedItem, Item, ItemKind, store_items
from alerts.sources.registry import add_source
from alerts.usecases.posting import post_urgent
from subscriptions.base import utcnow
from tests.factories import make_subscriber, make_ward

OLD = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
SOON = utcnow() + timedelta(days=30)
SESSION = CollectedItem("s1", ItemKind.SESSION, "Street surgery", "<p>Drop in.</p>",
                        link="https://example.org/s1", starts_at=SOON,
                        ends_at=SOON + timedelta(hours=1), location="Mill Lane library")
POST = CollectedItem("p1", ItemKind.POST, "Bikes marked", "<p>40 bikes.</p>")


def changed_at(session: Session, guid: str) -> datetime:
    return session.scalars(select(Item.changed_at).where(Item.guid == guid)).one()


def aged(session: Session) -> None:
    """Every item last changed at OLD (named, so the update does not stamp it now)."""
    session.execute(update(Item).values(changed_at=OLD))
    session.expire_all()


def test_an_item_is_stamped_when_stored(session: Session) -> None:
    make_ward(session, "RIV", "Riverside")
    source = add_source(session, "RIV", "ics", "https://example.org/riv.ics")
    before = utcnow()
    store_items(session, source, [SESSION, POST])
    assert before <= changed_at(session, "s1") <= utcnow()
    assert before <= changed_at(session, "p1") <= utcnow()


@pytest.mark.parametrize("change", [
    {"title": "Street surgery moved"}, {"body_html": "<p>Drop in, bring ID.</p>"},
    {"link": "https://example.org/s1b"}, {"starts_at": SOON + timedelta(hours=1)},
    {"ends_at": SOON + timedelta(hours=2)}, {"location": "The school"},
    {"topics": "burglary"}])
def test_every_edit_a_collection_brings_moves_it(session: Session, change: dict[str, object],
                                                  ) -> None:
    make_ward(session, "RIV", "Riverside")
    source = add_source(session, "RIV", "ics", "https://example.org/riv.ics")
    store_items(session, source, [SESSION, POST])
    aged(session)
    result = store_items(session, source, [dataclasses.replace(SESSION, **change), POST])
    assert result.updated == 1
    assert changed_at(session, "s1") > OLD
    assert changed_at(session, "p1") == OLD, "an item that did not change keeps its stamp"


def test_a_collection_that_changes_nothing_leaves_it(session: Session) -> None:
    make_ward(session, "RIV", "Riverside")
    source = add_source(session, "RIV", "ics", "https://example.org/riv.ics")
    store_items(session, source, [SESSION, POST])
    aged(session)
    store_items(session, source, [SESSION, POST], withdraw_missing_after=utcnow())
    assert changed_at(session, "s1") == changed_at(session, "p1") == OLD


def test_a_withdrawal_and_its_undoing_move_it(session: Session) -> None:
    make_ward(session, "RIV", "Riverside")
    source = add_source(session, "RIV", "ics", "https://example.org/riv.ics")
    store_items(session, source, [SESSION, POST])
    aged(session)
    result = store_items(session, source, [POST], withdraw_missing_after=utcnow())
    assert result.withdrawn == 1 and changed_at(session, "s1") > OLD
    aged(session)
    result = store_items(session, source, [SESSION, POST], withdraw_missing_after=utcnow())
    assert result.updated == 1 and changed_at(session, "s1") > OLD


def test_an_officers_urgent_alert_is_stamped(session: Session, settings: Settings) -> None:
    riv = make_ward(session, "RIV", "Riverside")
    make_subscriber(session, riv, "ann@home.example")
    before = utcnow()
    post_urgent(session, settings, ward_code="RIV", title="Gas leak", body="Avoid Mill Lane.",
                now=before)
    stamp = session.scalars(select(Item.changed_at).where(Item.title == "Gas leak")).one()
    assert before <= stamp <= utcnow()


def test_a_core_update_and_an_orm_edit_move_it_too(session: Session) -> None:
    make_ward(session, "RIV", "Riverside")
    source = add_source(session, "RIV", "ics", "https://example.org/riv.ics")
    store_items(session, source, [SESSION, POST])
    aged(session)
    session.execute(update(Item).where(Item.guid == "s1").values(withdrawn_at=utcnow()))
    assert changed_at(session, "s1") > OLD and changed_at(session, "p1") == OLD
    item = session.scalars(select(Item).where(Item.guid == "p1")).one()
    item.title = "Bikes marked at the school"
    session.flush()
    assert changed_at(session, "p1") > OLD
