"""The migrations: they build the schema the models describe, on SQLite and on PostgreSQL."""

import ast
import base64
import hashlib
import hmac
from pathlib import Path
from types import SimpleNamespace

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from sqlalchemy.orm import Session

from alerts.core import db
from alerts.core.db import (
    MIGRATIONS,
    _revision_lines,
    current_revision,
    head_revision,
    make_engine,
    migrate,
    server_default_comparison,
)
from alerts.core.scheduler_store import JOB_TABLE
from alerts.migrations.schema import metadata
from subscriptions.links import LEGACY_NONCE, Purpose, nonces_in, verify_reference
from subscriptions.subscribers import Subscription


def test_init_migrates_an_empty_database_to_the_newest_schema(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert {"wards", "sources", "items", "subscribers", "subscriptions", "messages",
            "message_items", "deliveries", "subscription_progress"} <= tables


@pytest.mark.empty_database
def test_the_schema_check_reads_the_revisions_alembic_reads(database_url: str) -> None:
    """Every command checks the schema without loading alembic or running the migration
    scripts; it finds what alembic finds, empty, part-way and up to date."""
    engine = make_engine(database_url)
    try:
        assert head_revision() == ScriptDirectory(str(MIGRATIONS)).get_current_head()
        for revision in (None, "0010", "head"):
            if revision is not None:
                migrate(engine, revision)
            with engine.connect() as connection:
                alembic_says = MigrationContext.configure(connection).get_current_revision()
            assert current_revision(engine) == alembic_says
        assert alembic_says == head_revision()
    finally:
        engine.dispose()


def test_the_schema_check_parses_no_migration_script(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command checks the schema: it reads each script's revision lines, not the
    script's syntax tree (parsing all of them was 15 ms of every command's start)."""
    alembic_says = ScriptDirectory(str(MIGRATIONS)).get_current_head()

    def no_script(source: str, *args: object, mode: str = "exec", **kwargs: object) -> object:
        assert mode != "exec", "a migration script was parsed"
        return ast.parse(source, *args, mode=mode, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(db, "ast", SimpleNamespace(**{**vars(ast), "parse": no_script}))
    assert head_revision() == alembic_says


def test_a_revision_written_over_several_lines_is_still_read(tmp_path: Path) -> None:
    script = tmp_path / "0099_merge.py"
    script.write_text('"""Merge."""\nrevision: str = "0099"\ndown_revision = (\n'
                      '    "0097",\n    "0098",\n)\n', encoding="utf-8")
    assert _revision_lines(script) == {"revision": "0099", "down_revision": ("0097", "0098")}


def test_migrating_twice_changes_nothing(engine: Engine) -> None:
    before, after = migrate(engine)
    assert before == after == head_revision()


def test_the_migrations_build_the_schema_the_models_describe(engine: Engine) -> None:
    def ours(obj: object, name: str | None, type_: str, reflected: bool,
             compare_to: object) -> bool:
        return not (type_ == "table" and name == JOB_TABLE)

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "compare_type": True,
            "compare_server_default": server_default_comparison(engine.dialect.name),
            "include_object": ours})
        assert compare_metadata(context, metadata) == []


@pytest.mark.stores("sqlite")
def test_sqlite_runs_in_wal_mode(engine: Engine) -> None:
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


@pytest.mark.stores("postgresql")
def test_a_plain_postgresql_url_is_served_by_psycopg(database_url: str) -> None:
    engine = make_engine(database_url.replace("postgresql+psycopg://", "postgresql://"))
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar() == 1
        assert engine.dialect.driver == "psycopg"
    finally:
        engine.dispose()


@pytest.mark.empty_database
def test_migrating_a_database_with_rows_keeps_them_gives_each_a_nonce_and_never_reuses_ids(
    database_url: str,
) -> None:
    """0011 on a database that holds data: every row and reference kept (rebuilding a table
    on SQLite must not cascade into the tables that refer to it), a random nonce per row,
    and the next id after the highest ever given, even once that row is deleted."""
    engine = make_engine(database_url)
    try:
        migrate(engine, "0010")
        now = "2026-12-01 10:00:00+00:00"
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO wards (id, code, name, team_email, created_at) "
                "VALUES (1, 'RIV', 'Riverside', 'riv@police.example', :now)"), {"now": now})
            for ident in (1, 2, 3):
                connection.execute(text(
                    "INSERT INTO subscribers (id, email, name, created_at) "
                    "VALUES (:id, :email, '', :now)"),
                    {"id": ident, "email": f"r{ident}@home.example", "now": now})
                connection.execute(text(
                    "INSERT INTO subscriptions (id, subscriber_id, ward_id, frequency, status, "
                    "consent_at, consent_method, consent_source, consent_wording, "
                    "consent_prior_declared, created_at) VALUES (:id, :id, 1, 'weekly', "
                    "'confirmed', :now, 'import', '', 'v1', true, :now)"),
                    {"id": ident, "now": now})
            connection.execute(text(
                "INSERT INTO messages (id, ward_id, kind, subject, html, text, created_at) "
                "VALUES (1, 1, 'digest', 'News', '', '', :now)"), {"now": now})
            for ident in (1, 2, 3):
                connection.execute(text(
                    "INSERT INTO deliveries (id, message_id, subscriber_id, status, attempts, "
                    "next_attempt_at, created_at) VALUES (:id, 1, :id, 'sent', 1, :now, :now)"),
                    {"id": ident, "now": now})
            connection.execute(text(
                "INSERT INTO users (id, email, name, role, session_version, created_at) "
                "VALUES (1, 'pc@police.example', '', 'admin', 1, :now)"), {"now": now})
        migrate(engine)
        with engine.begin() as connection:
            nonces = connection.execute(text("SELECT nonce FROM subscribers")).scalars().all()
            assert len(set(nonces)) == 3 and all(len(n) == 32 for n in nonces)
            for table in ("messages", "users"):
                assert connection.execute(text(f"SELECT nonce FROM {table}")).scalar()
            # Rows named in mail already sent keep the links and addresses in it working.
            for table in ("subscriptions", "deliveries"):
                nonces = connection.execute(text(f"SELECT nonce FROM {table}")).scalars().all()
                assert nonces == [LEGACY_NONCE] * 3, f"{table} kept every row"
            sent_before = "2-" + base64.b32encode(hmac.new(
                b"secret", b"unsubscribe:2", hashlib.sha256).digest()[:12]).decode().rstrip(
                "=").lower()  # an unsubscribe token as the product signed it before 0011
            with Session(connection) as session:
                assert verify_reference("secret", Purpose.UNSUBSCRIBE, sent_before,
                                        nonces_in(session, Subscription)) == 2
            connection.execute(text("DELETE FROM deliveries WHERE id = 3"))
            connection.execute(text("DELETE FROM subscribers WHERE id = 3"))
            new_id = connection.execute(text(
                "INSERT INTO subscribers (email, name, created_at, nonce) "
                "VALUES ('new@home.example', '', :now, 'n') RETURNING id"), {"now": now}).scalar()
            assert new_id == 4, "the id of a deleted row is not given again"
            if engine.dialect.name == "sqlite":
                assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
                assert connection.exec_driver_sql("PRAGMA foreign_key_check").all() == []
            assert connection.execute(text(
                "SELECT count(*) FROM subscriptions WHERE subscriber_id = 3")).scalar() == 0, \
                "deleting a subscriber still cascades: the foreign keys are back on"
    finally:
        engine.dispose()
