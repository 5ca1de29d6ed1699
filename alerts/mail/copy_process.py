"""Residents' copies built, and DKIM-signed, in a process of its own beside the sender's loop.

A copy of a digest costs about a millisecond of Python (its 26 signed vote links and every
link mark filled and encoded) and its signature twice that: on the sender's event loop,
which also talks SMTP on every connection, building alone held the loop a millisecond a
message, and the loop ran at a third of a bare SMTP sender's rate (bench/deliver.py
--stages). The process does `personalise_email` (each message prepared once, then kept)
and signs with the signer's keys, and sends back the finished bytes; for staff mail,
already built, it signs and sends back only the DKIM-Signature lines (`Signer.signatures`).
The bytes are the same as building and signing on the loop gives.

The copies that wait go to the process in tasks of up to `CHUNK`, two tasks in flight, so
the process never waits for a round trip; each task carries each of its messages' bodies
once, and every copy its own fields only.

One process per set of settings and keys, started at its first task and kept for the passes
that follow (starting one costs an interpreter and the key's check, about a second on a busy
machine); other settings or changed keys (`load_signer` again after a key file was replaced)
get a process of their own and the old one ends. A process that dies is started again once
for the task that found it gone; if that fails too, the error goes to the caller, which
retries the row later as for any fault of ours. A copy the process cannot build raises
there what building on the loop would (a ValueError for a header that cannot be written).
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime

from alerts.core.config import Settings
from alerts.mail.dkim import Signer, load_signer
from alerts.mail.mime import Outgoing, PreparedMessage, personalise_email, prepare_message

CHUNK = 16  # copies a task: few enough that the first ones start at once
IN_FLIGHT = 2
_KEPT = 64  # prepared messages the process keeps

# In the process: what its first task made from the settings.
_settings: Settings | None = None
_signer: Signer | None = None
_prepared: dict[tuple[int, str], PreparedMessage] = {}


def _start(settings: Settings) -> None:
    global _settings, _signer
    _settings = settings
    _signer = load_signer(settings.dkim)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_end_with, args=(parent,), daemon=True).start()


def _end_with(parent: multiprocessing.process.BaseProcess) -> None:
    """In the process: end when the sender that started it is gone. A sender killed (kill -9)
    cannot tell it, and its pool's pipe stays open in the process itself, so it would wait
    for work for ever."""
    parent.join()
    os._exit(0)


@dataclasses.dataclass(frozen=True)
class _Task:
    sign: list[bytes]  # staff mail: its bytes, for the signature lines alone
    build: list[tuple[Outgoing, datetime]]  # residents' copies, bodies left out
    bodies: dict[int, Outgoing]  # each message's bodies, once a task


def _built(outgoing: Outgoing, now: datetime) -> tuple[str, bytes]:
    assert _settings is not None
    key = outgoing.message_id, outgoing.message_nonce
    prepared = _prepared.get(key)
    if prepared is None:
        while len(_prepared) >= _KEPT:
            del _prepared[next(iter(_prepared))]
        prepared = _prepared[key] = prepare_message(outgoing, _settings)
    envelope_from, data = personalise_email(prepared, outgoing, _settings, now=now)
    return envelope_from, data if _signer is None else _signer.sign(data)


def _work(task: _Task) -> tuple[list[bytes], list[tuple[str, bytes] | Exception]]:
    if _settings is None:
        raise RuntimeError("the copy process has no settings")
    if task.sign and _signer is None:
        raise RuntimeError("the copy process has no DKIM keys to sign with")
    signatures = [] if _signer is None else [_signer.signatures(data) for data in task.sign]
    built: list[tuple[str, bytes] | Exception] = []
    for stripped, now in task.build:
        message = task.bodies[stripped.message_id]
        outgoing = dataclasses.replace(stripped, html=message.html, text=message.text,
                                       calendar=message.calendar)
        try:
            built.append(_built(outgoing, now))
        except ValueError as exc:  # what no retry mends: the caller fails the row
            built.append(ValueError(str(exc)))
        except Exception as exc:  # sent back as plain text: any exception pickles
            built.append(RuntimeError(f"{type(exc).__name__}: {exc}"))
    return signatures, built


@dataclasses.dataclass
class _Job:
    done: asyncio.Future[bytes] | asyncio.Future[tuple[str, bytes]]
    data: bytes = b""
    outgoing: Outgoing | None = None
    now: datetime | None = None


class CopyProcess:
    """Builds and signs for one set of settings in a child process; `build` and `sign` are
    awaited from the event loop."""

    def __init__(self, settings: Settings, signer: Signer | None) -> None:
        self.settings = settings
        self.signer = signer
        self._pool = self._new_pool()
        self._waiting: list[_Job] = []
        self._in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn: a fresh interpreter, nothing inherited from a process with threads running.
        return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start, initargs=(self.settings,))

    async def build(self, outgoing: Outgoing, now: datetime) -> tuple[str, bytes]:
        """(envelope sender, bytes) of a resident's copy, as `personalise_email` gives it,
        signed when the settings have a signer."""
        done: asyncio.Future[tuple[str, bytes]] = self._join().create_future()
        self._queue(_Job(done, outgoing=outgoing, now=now))
        return await done

    async def sign(self, data: bytes) -> bytes:
        """`data` with its DKIM-Signature headers prepended, as `Signer.sign` gives it."""
        if self.signer is None:
            raise ValueError("no DKIM keys to sign with")
        done: asyncio.Future[bytes] = self._join().create_future()
        self._queue(_Job(done, data=data))
        return await done

    def _join(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # Each pass of `deliver_due` may run a loop of its own; one that ended mid-batch
            # left its copies here, which nobody awaits now, and its tasks will not finish.
            self._loop, self._waiting, self._in_flight = loop, [], 0
        return loop

    def _queue(self, job: _Job) -> None:
        self._waiting.append(job)
        self._submit()

    def _submit(self) -> None:
        while self._waiting and self._in_flight < IN_FLIGHT:
            jobs, self._waiting = self._waiting[:CHUNK], self._waiting[CHUNK:]
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._run(jobs))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, jobs: list[_Job]) -> None:
        signing = [job for job in jobs if job.outgoing is None]
        building = [job for job in jobs if job.outgoing is not None]
        bodies: dict[int, Outgoing] = {}
        copies: list[tuple[Outgoing, datetime]] = []
        for job in building:
            assert job.outgoing is not None and job.now is not None
            bodies.setdefault(job.outgoing.message_id, job.outgoing)
            copies.append((dataclasses.replace(job.outgoing, html="", text="", calendar=None),
                           job.now))
        task = _Task([job.data for job in signing], copies, bodies)
        try:
            signatures, built = await self._done(task)
            for job, headers in zip(signing, signatures, strict=True):
                if not job.done.done():  # its send was cancelled meanwhile
                    job.done.set_result(headers + job.data)  # type: ignore[arg-type]
            for job, result in zip(building, built, strict=True):
                if job.done.done():
                    continue
                if isinstance(result, Exception):
                    job.done.set_exception(result)
                else:
                    job.done.set_result(result)  # type: ignore[arg-type]
        except asyncio.CancelledError:  # the loop ends: its copies are awaited no more
            self._finished(more=False)
            raise
        except Exception as exc:  # every copy of the task gets the error: none waits on
            for job in jobs:
                if not job.done.done():
                    job.done.set_exception(exc)
        self._finished(more=True)

    def _finished(self, *, more: bool) -> None:
        if asyncio.get_running_loop() is self._loop:  # not a task of a loop gone before
            self._in_flight -= 1
            if more:
                self._submit()

    async def _done(self, task: _Task) -> tuple[list[bytes], list[tuple[str, bytes] | Exception]]:
        pool = self._pool
        try:
            return await asyncio.wrap_future(self._send(pool, task))
        except BrokenProcessPool:
            if self._pool is pool:  # the other task in flight may have started one already
                pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
            return await asyncio.wrap_future(self._send(self._pool, task))

    @staticmethod
    def _send(pool: ProcessPoolExecutor, task: _Task
              ) -> Future[tuple[list[bytes], list[tuple[str, bytes] | Exception]]]:
        return pool.submit(_work, task)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


_running: list[CopyProcess] = []  # at most one: a process works for one set of settings
_lock = threading.Lock()


def copy_process(settings: Settings, signer: Signer | None) -> CopyProcess:
    """The process that builds and signs for `settings` (and `signer`, made from them by
    `load_signer`, or None): the one already running for these while the keys are unchanged,
    else a new one (the old one ends)."""
    with _lock:
        if _running and _running[0].signer == signer and _running[0].settings == settings:
            return _running[0]
        while _running:
            _running.pop().close()
        _running.append(CopyProcess(settings, signer))
        return _running[0]
