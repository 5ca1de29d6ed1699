"""The database: engine and sessions from `database.url`, and migrations to the latest schema.

SQLite (the embedded default) runs in WAL mode with foreign keys on and a busy timeout
(`database.busy_timeout_seconds`: how long a write waits for another process's lock), so
that a sender and a collector can work side by side; PostgreSQL uses the same API.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, Identity, create_engine, event, inspect, text
from sqlalchemy.engine import make_url

from alerts.core.config import Settings
from alerts.core.errors import AlertsError

if TYPE_CHECKING:  # alembic loads when a command migrates or checks the schema, the ORM
    # when it opens a session: `alerts --help` needs neither
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy.dialects import postgresql, sqlite
    from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


class DatabaseError(AlertsError):
    """The database cannot be used as configured; the message says what to do."""

    http_status = 503


BUSY_TIMEOUT_SECONDS = 30.0
# SQLite: connections kept open, and opened beyond them at a peak (closed when returned).
POOL_SIZE = 20
POOL_OVERFLOW = 20


def make_engine(url: str, *, busy_timeout: float = BUSY_TIMEOUT_SECONDS,
                one_per_thread: bool = False) -> Engine:
    """An engine on `url`; on SQLite a write waits up to `busy_timeout` seconds for a lock
    held by another process, then fails with "database is locked". With `one_per_thread`
    (SQLite only), each thread keeps one connection of its own, open between uses."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            folder = Path(database).expanduser().resolve().parent
            if not folder.is_dir():
                raise DatabaseError(f"database.url {url!r}: the folder {folder} does not exist")
        # A file's pool as deep as the web's worker threads (40): with SQLAlchemy's 5 + 10,
        # each request beyond 5 at once opened a connection (its pragmas, the schema read
        # again) and closed it afterwards. (In memory, one connection a thread, as before.)
        pool: dict[str, Any] = {} if not database or database == ":memory:" else {
            "pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW}
        if one_per_thread:
            from sqlalchemy.pool import SingletonThreadPool

            pool = {"poolclass": SingletonThreadPool}
        engine = create_engine(url, connect_args={"timeout": busy_timeout}, **pool)
        event.listen(engine, "connect",
                     partial(_sqlite_pragmas, busy_ms=round(busy_timeout * 1000)))
        return engine
    if parsed.drivername == "postgresql":
        # SQLAlchemy's default PostgreSQL driver is psycopg2, which is not installed; psycopg
        # (3) is, so a plain postgresql:// URL means it.
        parsed = parsed.set(drivername="postgresql+psycopg")
    if one_per_thread:
        raise ValueError("one connection a thread is for SQLite files only")
    return create_engine(parsed, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, *, busy_ms: int) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    cursor.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    from sqlalchemy.orm import sessionmaker

    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits when the block ends and rolls back if it raises."""
    with factory() as session, session.begin():
        yield session


def dialect_insert(session: Session, entity: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT in the session's own dialect, for its ON CONFLICT clause. Only the store in
    use loads its dialect: a command on SQLite never loads PostgreSQL's (and its drivers')."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(entity)
    if dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(entity)
    raise NotImplementedError(f"SQLite and PostgreSQL are supported, not {dialect}")


def _alembic_config(engine: Engine, settings: Settings | None = None) -> Config:
    from alembic.config import Config

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
    from alembic import command

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
    """The revision alembic recorded in the database (None when it is empty), read with a
    plain query: checking the schema, as every command does, need not load alembic."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        recorded = connection.execute(text("SELECT version_num FROM alembic_version"))
        versions = sorted(str(version) for version in recorded.scalars())
    return ", ".join(versions) or None


def head_revision() -> str:
    """The newest revision, from the `revision` and `down_revision` lines of the scripts in
    migrations/versions. Alembic finds it by running every script, and one (0014, which
    builds mail) imports much of the product, so a command checking the schema would pay for
    all of it; tests/migrations/test_schema.py holds this to alembic's own answer."""
    revisions: set[str] = set()
    replaced: set[str] = set()
    for script in (MIGRATIONS / "versions").glob("*.py"):
        found = _revision_lines(script)
        if "revision" in found:
            revisions.add(str(found["revision"]))
        down = found.get("down_revision")
        replaced.update((down,) if isinstance(down, str) else down or ())
    heads = revisions - replaced
    if len(heads) != 1:  # branched history: alembic says what is wrong
        from alembic.script import ScriptDirectory

        head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
        assert head is not None
        return head
    return heads.pop()


# A script's `revision` and `down_revision` lines, annotated or not, each value on its line.
_REVISION_LINE = re.compile(r"^(revision|down_revision)[ \t]*(?::[^=\n]*)?=(.*)$", re.MULTILINE)


def _revision_lines(script: Path) -> dict[str, Any]:
    """The values of a migration script's `revision` and `down_revision` lines, unrun: read
    from the lines themselves (parsing every script took a command's start 15 ms), or from
    its syntax tree when a value is not one literal on its line."""
    source = script.read_text(encoding="utf-8")
    found: dict[str, Any] = {}
    for line in _REVISION_LINE.finditer(source):
        try:
            found[line[1]] = ast.literal_eval(line[2].strip())
        except (SyntaxError, ValueError):
            return _revision_statements(source)
    return found


def _revision_statements(source: str) -> dict[str, Any]:
    """The values of the module-level `revision` and `down_revision` statements."""
    found: dict[str, Any] = {}
    for node in ast.parse(source).body:
        target: ast.expr
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
            found[target.id] = ast.literal_eval(value)
    return found


def require_current_schema(engine: Engine) -> None:
    """Refuse to work on a database that `alerts init` has not brought up to date."""
    current = current_revision(engine)
    if current != head_revision():
        state = "is empty" if current is None else f"is at revision {current}"
        raise DatabaseError(
            f"the database {engine.url.render_as_string(hide_password=True)} {state}; "
            "run `alerts init` first"
        )
