"""Fixtures shared by every test package: settings, a migrated database, loopback servers."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from alerts.config import Settings, load_settings
from alerts.db import make_engine, migrate, session_factory
from tests.servers import FeedServer, SinkHandler, feed_server, smtp_sink


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    base = load_settings(environ={})
    return dataclasses.replace(
        base,
        database=dataclasses.replace(base.database, url=f"sqlite:///{tmp_path / 'alerts.db'}"),
        mail=dataclasses.replace(base.mail, maildir=str(tmp_path / "outbox")),
        web=dataclasses.replace(base.web, secret_key="test-secret-key-for-tests",
                                base_url="https://alerts.example.org"),
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database.url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


@pytest.fixture
def session(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as session:
        yield session


@pytest.fixture
def feeds() -> Iterator[FeedServer]:
    with feed_server() as server:
        yield server


@pytest.fixture
def smtp(settings: Settings) -> Iterator[tuple[SinkHandler, Settings]]:
    """An aiosmtpd sink on loopback and settings that send to it."""
    with smtp_sink() as (handler, port):
        yield handler, dataclasses.replace(
            settings,
            mail=dataclasses.replace(settings.mail, transport="smtp", smtp_host="127.0.0.1",
                                     smtp_port=port, concurrency=4),
        )


