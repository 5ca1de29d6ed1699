"""Which `alerts run` drives the scheduler when several run on one database.

Exactly one process may run the scheduled jobs, or digests would go out twice; every
process delivers and serves the web. On PostgreSQL the leader holds a session-level
advisory lock on a connection it keeps open; the database drops the lock the moment that
process or its connection dies, and a follower that tries again takes over. On SQLite
(one machine) an exclusive `flock` on a file beside the database does the same.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path
from typing import IO, Protocol

from sqlalchemy import Connection, Engine, text

from alerts.core.config import ConfigError

# One number names "the scheduler of this product" among every advisory lock in the cluster.
LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"neighbourhood-alerts:scheduler").digest()[:8], "big", signed=True
)


class Leadership(Protocol):
    def try_acquire(self) -> bool: ...
    def still_held(self) -> bool: ...
    def release(self) -> None: ...


class PostgresLeadership:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.connection: Connection | None = None

    def try_acquire(self) -> bool:
        if self.connection is not None:
            return self.still_held()
        connection = self.engine.connect()
        acquired = bool(connection.scalar(text("SELECT pg_try_advisory_lock(:key)"),
                                          {"key": LOCK_KEY}))
        connection.commit()
        if acquired:
            self.connection = connection
        else:
            connection.close()
        return acquired

    def still_held(self) -> bool:
        if self.connection is None:
            return False
        # A session-level lock lives exactly as long as its connection: while the
        # connection answers, the lock is ours.
        try:
            self.connection.execute(text("SELECT 1"))
            self.connection.commit()
            return True
        except Exception:
            self.connection = None
            return False

    def release(self) -> None:
        if self.connection is not None:
            try:
                self.connection.execute(text("SELECT pg_advisory_unlock(:key)"),
                                        {"key": LOCK_KEY})
                self.connection.commit()
            finally:
                self.connection.close()
                self.connection = None


class FileLeadership:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: IO[bytes] | None = None

    def try_acquire(self) -> bool:
        if self.handle is not None:
            return True
        handle = self.path.open("ab")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n".encode())
        handle.flush()
        self.handle = handle
        return True

    def still_held(self) -> bool:
        return self.handle is not None

    def release(self) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


def leadership_for(engine: Engine) -> Leadership:
    if engine.dialect.name == "postgresql":
        return PostgresLeadership(engine)
    database = engine.url.database or ""
    if not database or database == ":memory:":
        raise ConfigError("database.url: several `alerts run` processes need a database they can "
                          "share (a file or PostgreSQL), not an in-memory one")
    return FileLeadership(Path(database + ".scheduler.lock"))
