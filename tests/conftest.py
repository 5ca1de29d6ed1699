"""Fixtures shared by every test package: settings, a migrated database, loopback servers.

Every test that uses the database (through `settings`, `engine`, `factory` or `session`)
runs once per store: `test_x[sqlite]` on a file in its temporary folder, `test_x[postgresql]`
on a database of its own in a throw-away PostgreSQL cluster that the first such test
starts. ALERTS_TEST_STORES (a comma list, default "sqlite,postgresql") chooses the stores;
`@pytest.mark.stores("sqlite")` limits a test that only means something on some of them.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack, closing
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings, load_settings
from alerts.core.db import make_engine, migrate, session_factory
from tests.imap import dovecot  # noqa: F401  (session fixture, found by name)
from tests.postgres import Cluster, PostgresUnavailable, postgres_cluster
from tests.servers import FeedServer, SinkHandler, feed_server, smtp_sink

STORES = ("sqlite", "postgresql")
STORES_VARIABLE = "ALERTS_TEST_STORES"
selected_stores = pytest.StashKey[tuple[str, ...]]()


def _store_names(names: tuple[str, ...] | list[str], where: str) -> tuple[str, ...]:
    unknown = [name for name in names if name not in STORES]
    if unknown or not names:
        raise pytest.UsageError(f"{where}: stores are {', '.join(STORES)}, not {unknown or '[]'}")
    return tuple(dict.fromkeys(names))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "stores(*names): run this test only on these stores (sqlite, postgresql)")
    config.addinivalue_line(
        "markers", "empty_database: the test's database has no schema (not even `alerts init`'s)")
    raw = os.environ.get(STORES_VARIABLE, ",".join(STORES))
    config.stash[selected_stores] = _store_names(
        [name.strip() for name in raw.split(",") if name.strip()], STORES_VARIABLE)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("stores")
    allowed = _store_names(marker.args, metafunc.definition.nodeid) if marker else STORES
    stores = [name for name in metafunc.config.stash[selected_stores] if name in allowed]
    if stores:
        metafunc.parametrize("store", stores, indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect (not skip) a test limited to stores that this run does not test."""
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        unplaced = ("store" in getattr(item, "fixturenames", ())
                    and (callspec is None or "store" not in callspec.params))
        (dropped if unplaced else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """The run's PostgreSQL cluster, started when the first PostgreSQL test needs it."""
    with ExitStack() as stack:
        yield _start_cluster(stack)


def _start_cluster(stack: ExitStack) -> Cluster:
    try:
        return stack.enter_context(postgres_cluster())
    except PostgresUnavailable as error:
        reason = str(error)
    # Outside the except block, so that the report is this one line and not a chain.
    pytest.fail(f"the PostgreSQL tests cannot run: {reason}", pytrace=False)


@pytest.fixture
def store(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


class SchemaTemplates:
    """A database per store migrated once a run, which each test's database copies: running
    every migration for every test (SQLite rebuilds tables in some) costs more than most
    tests do."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._sqlite: Path | None = None
        self._postgres: str | None = None

    def copy_sqlite(self, to: Path) -> None:
        if self._sqlite is None:
            template = self.folder / "template.db"
            engine = make_engine(f"sqlite:///{template}")
            migrate(engine)
            engine.dispose()
            self._sqlite = template
        # The backup API copies the pages whatever is still in the WAL file.
        with closing(sqlite3.connect(self._sqlite)) as source, \
                closing(sqlite3.connect(to)) as target:
            source.backup(target)

    def postgres(self, cluster: Cluster) -> str:
        if self._postgres is None:
            name = cluster.create_database()
            engine = make_engine(cluster.url(name))
            migrate(engine)
            engine.dispose()  # a template must have no connections when it is copied
            self._postgres = name
        return self._postgres


@pytest.fixture(scope="session")
def schema_templates(tmp_path_factory: pytest.TempPathFactory) -> SchemaTemplates:
    return SchemaTemplates(tmp_path_factory.mktemp("schema-templates"))


@pytest.fixture
def database_url(store: str, tmp_path: Path, request: pytest.FixtureRequest,
                 schema_templates: SchemaTemplates) -> Iterator[str]:
    """A database of this test's own on `store`, migrated to the newest schema; empty, with
    no schema at all, for a test marked `empty_database`."""
    empty = request.node.get_closest_marker("empty_database") is not None
    if store == "sqlite":
        path = tmp_path / "alerts.db"
        if not empty:
            schema_templates.copy_sqlite(path)
        yield f"sqlite:///{path}"
        return
    cluster: Cluster = request.getfixturevalue("postgres")
    name = cluster.create_database("template0" if empty else schema_templates.postgres(cluster))
    try:
        yield cluster.url(name)
    finally:
        cluster.drop_database(name)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    base = load_settings(environ={})
    return dataclasses.replace(
        base,
        database=dataclasses.replace(base.database, url=database_url),
        mail=dataclasses.replace(base.mail, maildir=str(tmp_path / "outbox")),
        web=dataclasses.replace(base.web, secret_key="test-secret-key-for-tests",
                                base_url="https://alerts.example.org"),
        inbound=dataclasses.replace(base.inbound, held_dir=str(tmp_path / "held")),
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
