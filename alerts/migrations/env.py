"""Alembic environment: runs on the engine that `alerts.db.migrate` hands over."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Engine, create_engine

from alerts.schema import metadata
from alerts.service.scheduler import JOB_TABLE

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
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            include_object=include_object,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
