"""Several web processes on one listening socket (`web.workers`, `alerts web --workers N`).

With more than one worker the process that `alerts run` or `alerts web` started (the parent)
binds the port as always, then starts `web.workers` web-only child processes that serve
from that same socket (the kernel hands each new connection to one of them), and serves no
page itself. The scheduler, the delivery loop and the LMTP server stay in the parent alone,
so no job runs twice and there is still one sender per process. The children are started
fresh (multiprocessing's "spawn": no database connection or event loop is inherited), each
with its own engine and event bus.

What a page queues wakes the parent's delivery loop at once, as in one process: a child
writes one byte to a pipe the parent watches (`WakePipe`). For `alerts run`, the parent
tells the children whether it drives the scheduler (`leading`, a shared byte), so that
`/healthz` answers alike from every child.

Stopping: SIGTERM or SIGINT to the parent stops the children (each gets SIGTERM, lets the
requests in hand finish, and exits 0), then the parent exits; a second signal is passed on
to them, which stops them at once. Children ignore SIGINT (Ctrl-C reaches the whole process
group: the parent decides), and stop by themselves if the parent dies (kill -9), so none is
left behind. A child that dies on its own is logged and replaced; one that dies within
`STARTUP_SECONDS` of starting would only die again, so the parent then stops with an error
(exit 1) naming its exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from alerts.service.webserver import ServiceError

log = logging.getLogger("alerts.service")

# A child that dies sooner than this after starting is not restarted: the service stops.
STARTUP_SECONDS = 10.0

# How long the children get to finish their requests after SIGTERM before they are killed
# (uvicorn's own graceful shutdown is 5 s; see webserver.make_server).
STOP_SECONDS = 10.0

# How often the parent looks at its children and refreshes `leading`.
WATCH_SECONDS = 0.25


class WakePipe:
    """Children say "mail was queued" by writing a byte; the parent's loop reads them all
    and wakes the delivery loop once. A full pipe already holds a wake, so a write that
    would block is dropped."""

    def __init__(self, context: Any) -> None:
        self.reader, self.writer = context.Pipe(duplex=False)
        os.set_blocking(self.reader.fileno(), False)

    def watch(self, wake: Callable[[], None]) -> None:
        def drain() -> None:
            with contextlib.suppress(BlockingIOError):
                while os.read(self.reader.fileno(), 4096):
                    pass
            wake()

        asyncio.get_running_loop().add_reader(self.reader.fileno(), drain)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.reader.fileno())
        self.reader.close()
        self.writer.close()


def waker(writer: Connection) -> Callable[[], None]:
    """In a child: the function that wakes the parent's delivery loop; safe from any
    thread (the pipe does not block)."""
    fd = writer.fileno()
    os.set_blocking(fd, False)

    def wake() -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(fd, b"!")

    return wake


def watch_parent(on_gone: Callable[[], None]) -> None:
    """In a child: call `on_gone` on the running loop when the parent process ends."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    loop = asyncio.get_running_loop()
    sentinel = parent.sentinel

    def gone() -> None:
        loop.remove_reader(sentinel)
        log.warning("web process %d: the parent process has gone; stopping", os.getpid())
        on_gone()

    loop.add_reader(sentinel, gone)


@dataclass
class _Child:
    process: BaseProcess
    started: float = field(default_factory=time.monotonic)


class WebProcesses:
    """`count` children running `target(settings, sock, wake_writer, leading, *args)`."""

    def __init__(self, count: int, target: Callable[..., None], settings: Any,
                 sock: socket.socket, *, leading: Callable[[], bool] | None = None,
                 args: tuple[Any, ...] = ()) -> None:
        self.count = count
        self._context = multiprocessing.get_context("spawn")
        self._target = target
        self._settings = settings
        self._sock = sock
        self._args = args
        self._leading = leading
        # One byte in shared memory, written by the parent alone: no lock needed.
        self._flag: Any = self._context.RawValue("b", 0) if leading is not None else None
        self.pipe = WakePipe(self._context)
        self._children: list[_Child] = []
        self._stopping = False

    def start(self, wake: Callable[[], None]) -> None:
        """Start the children; `wake` is called (on this loop) when one queued mail."""
        self._refresh()
        self.pipe.watch(wake)
        self._children = [self._spawn() for _ in range(self.count)]

    @property
    def pids(self) -> list[int]:
        return [child.process.pid for child in self._children if child.process.pid]

    def _spawn(self) -> _Child:
        process = self._context.Process(
            target=self._target, name="alerts-web",
            args=(self._settings, self._sock, self.pipe.writer, self._flag, *self._args))
        process.start()
        return _Child(process)

    def _refresh(self) -> None:
        if self._flag is not None and self._leading is not None:
            self._flag.value = 1 if self._leading() else 0

    async def watch(self) -> None:
        """Keep `count` children running until `stop`; raise ServiceError when one dies
        straight after starting."""
        while not self._stopping:
            await asyncio.sleep(WATCH_SECONDS)
            self._refresh()
            for index, child in enumerate(self._children):
                if self._stopping or child.process.is_alive():
                    continue
                code = child.process.exitcode
                lived = time.monotonic() - child.started
                if lived < STARTUP_SECONDS:
                    raise ServiceError(
                        f"a web process (pid {child.process.pid}) ended {lived:.1f} s after "
                        f"it started, exit code {code}; see the lines above")
                self._children[index] = self._spawn()
                log.error("web process %d ended (exit code %s); started web process %d in "
                          "its place", child.process.pid, code,
                          self._children[index].process.pid)

    async def stop(self, forced: asyncio.Event) -> None:
        """SIGTERM to every child, and wait for them; `forced` passes a second SIGTERM on
        (they stop at once); past STOP_SECONDS a child is killed."""
        self._stopping = True
        self._signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        passed_on = False
        while any(child.process.is_alive() for child in self._children):
            if forced.is_set() and not passed_on:
                self._signal(signal.SIGTERM)
                passed_on = True
            if time.monotonic() > deadline:
                log.warning("web processes still running after %g s: killed", STOP_SECONDS)
                self._signal(signal.SIGKILL)
                break
            await asyncio.sleep(0.05)
        for child in self._children:
            await asyncio.to_thread(child.process.join, 5)
            if child.process.exitcode not in (0, None):
                log.warning("web process %d stopped with exit code %s", child.process.pid,
                            child.process.exitcode)
        self.pipe.close()

    def _signal(self, sig: signal.Signals) -> None:
        for child in self._children:
            if child.process.is_alive() and child.process.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.process.pid, sig)
