"""DKIM signing in a process of its own, beside the sender's event loop.

Half of signing a digest is Python (dkimpy's header parse and folding, the relaxed body),
which on a thread holds the sender's GIL: the loop that builds the copies and talks SMTP
waited for it, so a signing thread could not use the machine's second core. The signing
process takes the message's bytes and sends back only its DKIM-Signature lines
(`Signer.signatures`), which the sender prepends: the same bytes `Signer.sign` gives.

One process per signer, started at the first signature and kept for the passes that follow
(starting one costs an interpreter and the key's check, about a second on a busy machine);
a signer made from changed keys (`load_signer` again after a key file was replaced) or other
settings gets a process of its own and the old one ends. A process that dies is started
again once for the signature that found it gone; if that fails too, the error goes to the
caller, which retries the row later as for any fault of ours.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from alerts.core.config import DkimSettings
from alerts.mail.dkim import Signer, load_signer

# In the signing process: the signer its first task made (its own copy of the keys).
_signer: Signer | None = None


def _start(settings: DkimSettings) -> None:
    global _signer
    _signer = load_signer(settings)


def _signatures(messages: list[bytes]) -> list[bytes]:
    if _signer is None:
        raise RuntimeError("the signing process has no signer")
    return [_signer.signatures(data) for data in messages]


class SigningProcess:
    """Signs for one signer in a child process; `sign` is awaited from the event loop. The
    messages that wait while the process works go to it together, as one task: a task's
    round trip (the executor's threads, two pipes) costs more than one signature when the
    machine is busy, and the sender has up to `mail.concurrency` copies waiting."""

    def __init__(self, signer: Signer, settings: DkimSettings) -> None:
        self.signer = signer
        self.settings = settings
        self._pool = self._new_pool()
        self._waiting: list[tuple[bytes, asyncio.Future[bytes]]] = []
        self._driver: asyncio.Task[None] | None = None

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn: a fresh interpreter, nothing inherited from a process with threads running.
        return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start, initargs=(self.settings,))

    async def sign(self, data: bytes) -> bytes:
        """`data` with its DKIM-Signature headers prepended, as `Signer.sign` gives it."""
        loop = asyncio.get_running_loop()
        signed: asyncio.Future[bytes] = loop.create_future()
        if self._driver is None or self._driver.done() or self._driver.get_loop() is not loop:
            # None running in this loop (each pass of `deliver_due` runs a loop of its own;
            # one that ended mid-batch left its own copies here, which nobody awaits now).
            self._waiting = [(d, f) for d, f in self._waiting if f.get_loop() is loop]
            self._driver = loop.create_task(self._drive())
        self._waiting.append((data, signed))
        return await signed

    async def _drive(self) -> None:
        """Send what waits to the process, batch after batch, until nothing waits."""
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                added = await self._run([data for data, _ in batch])
            except Exception as exc:
                for _, signed in batch:
                    if not signed.done():
                        signed.set_exception(exc)
                continue
            for (data, signed), headers in zip(batch, added, strict=True):
                if not signed.done():  # its send was cancelled meanwhile
                    signed.set_result(headers + data)

    async def _run(self, messages: list[bytes]) -> list[bytes]:
        try:
            return await asyncio.wrap_future(self._pool.submit(_signatures, messages))
        except BrokenProcessPool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return await asyncio.wrap_future(self._pool.submit(_signatures, messages))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


_running: list[SigningProcess] = []  # at most one: a process signs with one set of keys
_lock = threading.Lock()


def signing_process(signer: Signer, settings: DkimSettings) -> SigningProcess:
    """The process that signs for `signer` (made from `settings` by `load_signer`): the one
    already running for these settings while their keys are unchanged, else a new one (the
    old one ends)."""
    with _lock:
        if _running and _running[0].signer == signer and _running[0].settings == settings:
            return _running[0]
        while _running:
            _running.pop().close()
        _running.append(SigningProcess(signer, settings))
        return _running[0]
