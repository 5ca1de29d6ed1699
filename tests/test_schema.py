from sqlalchemy import Engine, inspect

from alerts.db import current_revision, head_revision, migrate


def test_init_migrates_an_empty_database_to_the_newest_schema(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert {"wards", "sources", "items", "subscribers", "subscriptions", "messages",
            "message_items", "deliveries"} <= tables


def test_migrating_twice_changes_nothing(engine: Engine) -> None:
    before, after = migrate(engine)
    assert before == after == head_revision()


def test_sqlite_runs_in_wal_mode(engine: Engine) -> None:
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
