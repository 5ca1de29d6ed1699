"""The migrations: they build the schema the models describe, on SQLite and on PostgreSQL."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from alerts.db import (
    current_revision,
    head_revision,
    make_engine,
    migrate,
    server_default_comparison,
)
from alerts.schema import metadata
from alerts.service.scheduler import JOB_TABLE


def test_init_migrates_an_empty_database_to_the_newest_schema(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert {"wards", "sources", "items", "subscribers", "subscriptions", "messages",
            "message_items", "deliveries", "subscription_progress"} <= tables


def test_migrating_twice_changes_nothing(engine: Engine) -> None:
    before, after = migrate(engine)
    assert before == after == head_revision()


def test_the_migrations_build_the_schema_the_models_describe(engine: Engine) -> None:
    def ours(obj: object, name: str | None, type_: str, reflected: bool,
             compare_to: object) -> bool:
        return not (type_ == "table" and name == JOB_TABLE)

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "compare_type": True, "compare_server_default": server_default_comparison(engine.dialect.name),
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
