"""Migration 0018 (issue 19): every item stored before gets a `changed_at`, the moment of
its withdrawal or else of its collection, and keeps everything that refers to it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from alerts.core.db import make_engine, migrate
from alerts.sources.items import Item


@pytest.mark.empty_database
def test_items_stored_before_are_stamped_with_their_withdrawal_or_collection(
        database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine, "0017")
        collected = "2026-11-01 10:00:00+00:00"
        withdrawn = "2026-11-20 08:30:00+00:00"
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO wards (id, code, name, team_email, created_at) "
                "VALUES (1, 'RIV', 'Riverside', 'riv@police.example', :at)"),
                {"at": collected})
            connection.execute(text(
                "INSERT INTO sources (id, ward_id, kind, url, created_at) "
                "VALUES (1, 1, 'rss', 'https://example.org/riv.rss', :at)"), {"at": collected})
            for ident, gone in ((1, None), (2, withdrawn)):
                connection.execute(text(
                    "INSERT INTO items (id, source_id, guid, kind, title, body_html, "
                    "collected_at, withdrawn_at) VALUES (:id, 1, :guid, 'post', 'News', '', "
                    ":at, :gone)"), {"id": ident, "guid": f"g{ident}", "at": collected,
                                     "gone": gone})
        migrate(engine)
        with Session(engine) as session:
            stamps = dict(session.execute(select(Item.id, Item.changed_at)).all())
        assert stamps == {1: datetime(2026, 11, 1, 10, 0, tzinfo=UTC),
                          2: datetime(2026, 11, 20, 8, 30, tzinfo=UTC)}
    finally:
        engine.dispose()
