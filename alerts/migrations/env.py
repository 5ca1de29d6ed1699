"""Alembic environment: runs on the engine that `alerts.core.db.migrate` hands over."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Engine, create_engine

from alerts.core.db import server_default_comparison
from alerts.core.scheduler_store import JOB_TABLE
from alerts.migrations.schema import metadata

config = context.config

# Tables that live in the database but belong to a library, not to these migrations.
FOREIGN_TABLES = frozenset({JOB_TABLE})


def include_object(obj: Any, name: str | None, type_: str, reflected: bool,
                   compare_to: Any) -> bool:
    """Leave APScheduler's job table alone: autogenerate would otherwise drop it."""
    return not (type_ == "table" and name in FOREIGN_TABLES)


def _engine() -> Engine:
    engine = config.attributes.get("engine")
    if isinstance(engine, Engine):
        return engine
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no engine or sqlalchemy.url given to the migrations")
    return create_engine(url)


def run_migrations_online() -> None:
    engine = _engine()
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Rebuilding a table (batch mode) drops the old one, which with foreign keys on
            # would cascade into every table that refers to it. Off for the migrations (it
            # must be set outside a transaction), checked and back on after.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        try:
            context.configure(
                connection=connection,
                target_metadata=metadata,
                render_as_batch=sqlite,
                compare_type=True,
                compare_server_default=server_default_comparison(connection.dialect.name),
                include_object=include_object,
            )
            with context.begin_transaction():
                context.run_migrations()
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(f"the migration left broken references: {broken[:5]}")
            connection.commit()
        finally:
            if sqlite:
                connection.rollback()
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


run_migrations_online()
