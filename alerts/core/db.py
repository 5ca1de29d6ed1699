"""The database: engine and sessions from `database.url`, and migrations to the latest schema.

SQLite (the embedded default) runs in WAL mode with foreign keys on and a busy timeout
(`database.busy_timeout_seconds`: how long a write waits for another process's lock), so
that a sender and a collector can work side by side; PostgreSQL uses the same API.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, Identity, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.core.errors import AlertsError

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


class DatabaseError(AlertsError):
    """The database cannot be used as configured; the message says what to do."""

    http_status = 503


BUSY_TIMEOUT_SECONDS = 30.0


def make_engine(url: str, *, busy_timeout: float = BUSY_TIMEOUT_SECONDS) -> Engine:
    """An engine on `url`; on SQLite a write waits up to `busy_timeout` seconds for a lock
    held by another process, then fails with "database is locked"."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            folder = Path(database).expanduser().resolve().parent
            if not folder.is_dir():
                raise DatabaseError(f"database.url {url!r}: the folder {folder} does not exist")
        engine = create_engine(url, connect_args={"timeout": busy_timeout})
        event.listen(engine, "connect",
                     partial(_sqlite_pragmas, busy_ms=round(busy_timeout * 1000)))
        return engine
    if parsed.drivername == "postgresql":
        # SQLAlchemy's default PostgreSQL driver is psycopg2, which is not installed; psycopg
        # (3) is, so a plain postgresql:// URL means it.
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, *, busy_ms: int) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    cursor.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits when the block ends and rolls back if it raises."""
    with factory() as session, session.begin():
        yield session


def _alembic_config(engine: Engine, settings: Settings | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    # For a migration that builds mail (0014 builds the forwards still waiting).
    config.attributes["settings"] = settings
    return config


def migrate(engine: Engine, revision: str = "head", *,
            settings: Settings | None = None) -> tuple[str | None, str]:
    """Bring the schema to the newest revision (or to `revision`, for tests of a migration);
    return (revision before, revision after). `settings` are those of the service, for a
    migration that builds mail (the defaults without them)."""
    before = current_revision(engine)
    command.upgrade(_alembic_config(engine, settings), revision)
    after = current_revision(engine)
    assert after is not None
    return before, after


def server_default_comparison(dialect: str) -> Any:
    """Alembic's `compare_server_default` option for a store. SQLite has no identity columns
    (AUTOINCREMENT, a table option, keeps its ids from being reused: see base), so there the
    models' Identity is not a difference."""
    if dialect != "sqlite":
        return True

    def compare(_context: MigrationContext, _inspected: Any, _column: Any,
                _inspected_default: Any, metadata_default: Any, _rendered: Any) -> bool | None:
        return False if isinstance(metadata_default, Identity) else None

    return compare


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


def require_current_schema(engine: Engine) -> None:
    """Refuse to work on a database that `alerts init` has not brought up to date."""
    current = current_revision(engine)
    if current != head_revision():
        state = "is empty" if current is None else f"is at revision {current}"
        raise DatabaseError(
            f"the database {engine.url.render_as_string(hide_password=True)} {state}; "
            "run `alerts init` first"
        )
