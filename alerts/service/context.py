"""Where scheduled jobs find the running service, and the count of jobs at work.

The job store pickles a job as a reference to a module-level function and its plain
arguments, so a job cannot carry the session factory, the settings or the bus; it finds
them here. `alerts run` installs the context when it starts and clears it when it stops.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.core.events import EventBus


class JobTracker:
    """Counts the jobs doing work; once told to stop, lets no new one start.

    Jobs run in worker threads, so the count is kept under a lock. A job the scheduler
    handed to the thread pool just before the stop finds the door shut and does nothing,
    so once the count reaches zero no job can touch the database any more.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._accepting = True

    @property
    def running(self) -> int:
        with self._lock:
            return self._running

    @contextmanager
    def working(self) -> Iterator[bool]:
        """Yield True if the job may do its work (and count it meanwhile), else False."""
        with self._lock:
            admitted = self._accepting
            if admitted:
                self._running += 1
        try:
            yield admitted
        finally:
            if admitted:
                with self._lock:
                    self._running -= 1

    def stop_accepting(self) -> None:
        with self._lock:
            self._accepting = False

    async def wait_idle(self, give_up: asyncio.Event, poll: float = 0.05) -> bool:
        """Wait until no job is at work (True), or until `give_up` is set (False)."""
        while self.running:
            if give_up.is_set():
                return False
            await asyncio.sleep(poll)
        return True


@dataclass(frozen=True)
class ServiceContext:
    settings: Settings
    factory: sessionmaker[Session]
    bus: EventBus
    scheduler: Any
    jobs: JobTracker


_current: ServiceContext | None = None


def install(context: ServiceContext) -> None:
    global _current
    _current = context


def clear() -> None:
    global _current
    _current = None


def current() -> ServiceContext | None:
    """The running service's context; None outside `alerts run` (or after it stopped)."""
    return _current
