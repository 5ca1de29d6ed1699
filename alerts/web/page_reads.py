"""Where the pages' database reads run: on the event loop itself when the database is a
SQLite file, in a worker thread when it is PostgreSQL.

A read from SQLite reads a local file the OS keeps in memory: the statement a link page
needs costs 60-300 µs. Handing it to a worker thread and taking the answer back, as FastAPI
does for a plain `def` handler, cost 150-190 µs more, and a page that waits for a thread
waits behind every other request's hop (bench/web.py: the bare page in a thread runs at 0.38
of the same page on the loop). On PostgreSQL a read waits on the network, and the loop must
stay free for other requests meanwhile: there it goes to a worker thread as before.

Reads on the loop go through an engine of their own that keeps one connection per thread,
never one from the shared pool: with the pool's connections all taken by writers in worker
threads, a checkout would stall the loop, and with it every request and the delivery loop of
`alerts run`. Each read is a transaction of its own, ended before the next, so no page sees
an old snapshot; in WAL mode a reader neither waits for a writer nor holds one up, and
`LOOP_BUSY_SECONDS` bounds the rare wait there is (SQLite recovering its WAL index).

Only reads: a write may wait for SQLite's lock (up to `database.busy_timeout_seconds`), so
every handler that writes stays a plain `def`, run in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from alerts.core.db import make_engine, session_factory

T = TypeVar("T")
LOOP_BUSY_SECONDS = 1.0


class PageReads:
    """Runs a page's read, given a session to read with, where it costs least."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory
        engine = factory.kw["bind"]
        assert isinstance(engine, Engine)
        database = engine.url.database
        self.on_loop = (engine.dialect.name == "sqlite" and bool(database)
                        and database != ":memory:")
        self._loop_factory: sessionmaker[Session] | None = None
        if self.on_loop:
            self._loop_factory = session_factory(make_engine(
                engine.url.render_as_string(hide_password=False),
                busy_timeout=LOOP_BUSY_SECONDS, one_per_thread=True))

    async def __call__(self, read: Callable[[Session], T]) -> T:
        """`read`'s answer on a session of its own, run on the loop on SQLite, else in a
        worker thread."""
        if self._loop_factory is not None:
            return _in_session(self._loop_factory, read)
        return await run_in_threadpool(_in_session, self._factory, read)


def _in_session(factory: sessionmaker[Session], read: Callable[[Session], T]) -> T:
    with factory() as session:
        return read(session)
