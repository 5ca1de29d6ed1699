"""Residents' copies built, and DKIM-signed, in a process of its own beside the sender's loop.

A copy of a digest costs about half a millisecond of Python (its 26 signed vote links and
every link mark filled and encoded) and its signature more than that: on the sender's event
loop, which also talks SMTP on every connection, building alone held the loop a millisecond
a message, and the loop ran at a third of a bare SMTP sender's rate (bench/deliver.py
--stages). The process does `personalise_email` (each message prepared once, then kept)
and signs with the signer's keys, and sends back the finished bytes; for staff mail,
already built, it signs and sends back only the DKIM-Signature lines (`Signer.signatures`).
The bytes are the same as building and signing on the loop gives.

The copies that wait go to the process in tasks of up to `CHUNK`, `IN_FLIGHT` tasks at a
time, so the process never waits for a round trip; each task carries each of its messages'
bodies once, and every copy its own fields only. The two pipes to the process are written
and read by the event loop itself, without blocking (`_Child`): a task's results are about
800 KB, and read by a thread of the sender's (as a ProcessPoolExecutor reads them) each
chunk of the pipe waited for the GIL the busy loop held, up to the interpreter's 5 ms
switch interval a chunk, so a copy waited 70-200 ms and the process sat blocked on a full
pipe (bench/deliver.py --stages: A signed at 0.39 of the ceiling).

One process per set of settings and keys, started at its first task and kept for the passes
that follow (starting one costs an interpreter and the key's check, about a second on a busy
machine); other settings or changed keys (`load_signer` again after a key file was replaced)
get a process of their own and the old one ends. A process ends when its sender is gone
(its task pipe closes, or a thread waiting on the parent sees it end). A process that dies is
started again once for the tasks that found it gone; if that fails too, the error goes to
the caller, which retries the row later as for any fault of ours. A copy the process cannot
build raises there what building on the loop would (a ValueError for a header that cannot
be written).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import multiprocessing
import os
import pickle
import threading
from collections.abc import Callable
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

from alerts.core.config import Settings
from alerts.core.errors import AlertsError
from alerts.mail.dkim import Signer, load_signer
from alerts.mail.mime import Outgoing, PreparedMessage, personalise_email, prepare_message

CHUNK = 16  # copies a task: few enough that the first ones start at once
IN_FLIGHT = 2
_KEPT = 64  # prepared messages the process keeps
_PIPE_BYTES = 1 << 20  # room for a task's results, so the process does not wait on a write
_SIZE = 8  # each frame on a pipe: its length in 8 bytes, then a pickle

# In the process: what it made from the settings when it started.
_settings: Settings | None = None
_signer: Signer | None = None
_prepared: dict[tuple[int, str], PreparedMessage] = {}


class CopyProcessGone(AlertsError, RuntimeError):
    """The copy process ended before it answered (killed, or it could not start); the
    sender retries the row later, as for any fault of ours."""

    http_status = 503


def _serve(settings: Settings, tasks: Connection, results: Connection) -> None:
    """The process: answer each task on `tasks` on `results`, in order, until `tasks`
    closes (the sender closed it, or died)."""
    global _settings, _signer
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_end_with, args=(parent,), daemon=True).start()
    _settings = settings
    _signer = load_signer(settings.dkim)
    with os.fdopen(os.dup(tasks.fileno()), "rb") as reading, \
            os.fdopen(os.dup(results.fileno()), "wb") as writing:
        tasks.close()
        results.close()
        while len(header := reading.read(_SIZE)) == _SIZE:
            size = int.from_bytes(header, "little")
            if len(frame := reading.read(size)) < size:
                break
            number, task = pickle.loads(frame)
            try:
                answer: Any = _work(task)
            except Exception as exc:  # sent back as plain text: any exception pickles
                answer = RuntimeError(f"{type(exc).__name__}: {exc}")
            writing.write(_frame((number, answer)))
            writing.flush()


def _end_with(parent: multiprocessing.process.BaseProcess) -> None:
    """In the process: end when the sender that started it is gone. A sender killed (kill -9)
    cannot tell it; its task pipe closes then too, unless a process it started holds it."""
    parent.join()
    os._exit(0)


def _frame(value: object) -> bytes:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(_SIZE, "little") + data


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


class _Child:
    """One copy process and the two pipes to it, which the event loop writes and reads
    itself, without blocking: frames go out as the task pipe takes them and come back as
    they arrive, whatever loop is running when (`attach`). `answered` gets each answer, in
    order; `gone` is called once, soon after the process has ended."""

    def __init__(self, settings: Settings, answered: Callable[[int, Any], None],
                 gone: Callable[[_Child], None]) -> None:
        self.answered = answered
        self.gone = gone
        # spawn: a fresh interpreter, nothing inherited from a process with threads running.
        context = multiprocessing.get_context("spawn")
        task_reader, self._writing = os.pipe()
        self._reading, result_writer = os.pipe()
        for end in (self._writing, result_writer):
            with contextlib.suppress(AttributeError, OSError):  # Linux only; the default
                import fcntl  # is 64 KB: a task's results would fill it a dozen times
                fcntl.fcntl(end, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        ends = Connection(task_reader, writable=False), Connection(result_writer, readable=False)
        self.process = context.Process(target=_serve, args=(settings, *ends), daemon=True,
                                       name="alerts-copies")
        self.process.start()
        for connection in ends:  # the process's ends: only it holds them now
            connection.close()
        os.set_blocking(self._writing, False)
        os.set_blocking(self._reading, False)
        self._out = bytearray()
        self._in = bytearray()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watching_writes = False
        self.ended = False

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Read (and write what waits) on `loop` from now on."""
        if loop is self._loop or self.ended:
            return
        self._detach()
        self._loop = loop
        loop.add_reader(self._reading, self._read)
        if self._out:
            self._watch_writes()

    def _detach(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._reading)
            self._loop.remove_writer(self._writing)
        self._loop, self._watching_writes = None, False

    def send(self, value: object) -> None:
        self._out += _frame(value)
        if not self._watching_writes:
            self._write()

    def _write(self) -> None:
        try:
            while self._out:
                written = os.write(self._writing, self._out)
                del self._out[:written]
        except BlockingIOError:
            self._watch_writes()
            return
        except OSError:  # the process is gone; its results pipe says so too
            self._end()
            return
        if self._watching_writes and self._loop is not None:
            self._loop.remove_writer(self._writing)
            self._watching_writes = False

    def _watch_writes(self) -> None:
        if not self._watching_writes and self._loop is not None:
            self._loop.add_writer(self._writing, self._write)
            self._watching_writes = True

    def _read(self) -> None:
        ended = False
        while True:
            try:
                chunk = os.read(self._reading, _PIPE_BYTES)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            if not chunk:
                ended = True
                break
            self._in += chunk
        start = 0
        try:
            while len(self._in) - start >= _SIZE:
                size = int.from_bytes(self._in[start:start + _SIZE], "little")
                end = start + _SIZE + size
                if len(self._in) < end:
                    break
                with memoryview(self._in)[start + _SIZE:end] as frame:
                    answer = pickle.loads(frame)
                start = end
                self.answered(*answer)
        finally:
            del self._in[:start]
        if ended:
            self._end()

    def _end(self) -> None:
        if self.ended:
            return
        loop = self._loop
        self.close()
        if loop is not None and not loop.is_closed():
            loop.call_soon(self.gone, self)

    def close(self) -> None:
        """Close the pipes: the process sees its task pipe end, and ends."""
        self._detach()
        for fd in (self._writing, self._reading):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._writing = self._reading = -1
        self.ended = True


@dataclasses.dataclass
class _Job:
    done: asyncio.Future[bytes] | asyncio.Future[tuple[str, bytes]]
    data: bytes = b""
    outgoing: Outgoing | None = None
    now: datetime | None = None


@dataclasses.dataclass
class _Sent:
    jobs: list[_Job]
    task: _Task
    again: bool = False  # sent again to a new process: the first one died


class CopyProcess:
    """Builds and signs for one set of settings in a child process; `build` and `sign` are
    awaited from the event loop."""

    def __init__(self, settings: Settings, signer: Signer | None) -> None:
        self.settings = settings
        self.signer = signer
        self._child: _Child | None = None
        self._waiting: list[_Job] = []
        self._sent: dict[int, _Sent] = {}
        self._numbers = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None

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

    @property
    def pid(self) -> int | None:
        """The running process's id, if one is running."""
        return None if self._child is None or self._child.ended else self._child.process.pid

    def _join(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # Each pass of `deliver_due` may run a loop of its own; one that ended mid-batch
            # left its copies here, which nobody awaits now: their answers are dropped.
            self._loop, self._waiting, self._sent = loop, [], {}
        return loop

    def _queue(self, job: _Job) -> None:
        self._waiting.append(job)
        self._submit()

    def _submit(self) -> None:
        while self._waiting and len(self._sent) < IN_FLIGHT:
            jobs, self._waiting = self._waiting[:CHUNK], self._waiting[CHUNK:]
            self._send(_Sent(jobs, _task(jobs)))

    def _send(self, sent: _Sent) -> None:
        number = next(self._numbers)
        self._sent[number] = sent
        child = self._running()
        child.send((number, sent.task))

    def _running(self) -> _Child:
        assert self._loop is not None
        if self._child is None or self._child.ended:
            self._child = _Child(self.settings, self._answered, self._gone)
        self._child.attach(self._loop)
        return self._child

    def _answered(self, number: int, answer: Any) -> None:
        sent = self._sent.pop(number, None)
        if sent is None:  # a task of a loop gone before
            return
        if isinstance(answer, Exception):  # every copy of the task gets it: none waits on
            _fail(sent.jobs, answer)
        else:
            signatures, built = answer
            signing = [job for job in sent.jobs if job.outgoing is None]
            building = [job for job in sent.jobs if job.outgoing is not None]
            for job, headers in zip(signing, signatures, strict=True):
                if not job.done.done():  # its send was cancelled meanwhile
                    job.done.set_result(headers + job.data)
            for job, result in zip(building, built, strict=True):
                if job.done.done():
                    continue
                if isinstance(result, Exception):
                    job.done.set_exception(result)
                else:
                    job.done.set_result(result)
        self._submit()

    def _gone(self, child: _Child) -> None:
        """The process ended: its tasks go once to a new one; a task it was already the
        second process for fails."""
        if child is not self._child:  # one replaced meanwhile (other settings, a loop...)
            return
        code = child.process.exitcode if not child.process.is_alive() else None
        again = [sent for sent in self._sent.values() if not sent.again]
        for sent in self._sent.values():
            if sent.again:
                _fail(sent.jobs, CopyProcessGone(f"the copy process ended (exit code {code})"))
        self._sent = {}
        if self._loop is None or self._loop.is_closed():
            return
        for sent in again:
            sent.again = True
            self._send(sent)
        self._submit()

    def close(self) -> None:
        if self._child is not None:
            self._child.close()


def _task(jobs: list[_Job]) -> _Task:
    bodies: dict[int, Outgoing] = {}
    copies: list[tuple[Outgoing, datetime]] = []
    for job in jobs:
        if job.outgoing is None:
            continue
        assert job.now is not None
        bodies.setdefault(job.outgoing.message_id, job.outgoing)
        copies.append((dataclasses.replace(job.outgoing, html="", text="", calendar=None),
                       job.now))
    return _Task([job.data for job in jobs if job.outgoing is None], copies, bodies)


def _fail(jobs: list[_Job], error: Exception) -> None:
    for job in jobs:
        if not job.done.done():
            job.done.set_exception(error)


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
