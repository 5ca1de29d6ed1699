"""The maildir outbox: the embedded default transport, a folder of .eml files.

Each message is written the maildir way (into `tmp/`, flushed to disk, then linked into
`new/`), so a reader never sees half a file. Files end in `.eml` so that a deployer trying
the product can open one in a mail client; maildir readers do not mind the suffix.

Failure policy: a folder that cannot be created or written when the transport opens raises
`MaildirError` (an OSError) before any row is touched, because that is a configuration
fault for the deployer, not a fact about any recipient. A write that fails later (disk
full, permissions changed under us) is a `TransientFailure`: the row stays queued and no
mail is lost once the deployer fixes the disk; the partial file it began is removed at once.
A file a crashed process left in `tmp/` is removed once it is 36 hours old (the maildir rule
for readers), when the transport opens and at most once an hour.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import mailbox
import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from alerts.core.errors import AlertsError
from alerts.delivery.transport import TransientFailure

log = logging.getLogger(__name__)

# A file in tmp/ this old was left by a writer that died: no write takes 36 hours (maildir(5)).
STALE_TMP_SECONDS = 36 * 3600
SWEEP_EVERY_SECONDS = 3600

class MaildirError(AlertsError, OSError):
    """The outbox folder cannot be used; the message names it and says why."""

    http_status = 503


_sequence = itertools.count(1)


class MaildirTransport:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")
        self._swept_at: float | None = None  # time.monotonic() of the last sweep of tmp/

    async def __aenter__(self) -> Self:
        try:
            mailbox.Maildir(self.path, create=True)
            probe = self.path / "tmp" / f".probe-{os.getpid()}-{next(_sequence)}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise MaildirError(
                exc.errno, f"cannot write the maildir outbox {self.path}: {exc.strerror or exc}"
            ) from exc
        self._sweep_tmp()
        return self

    def _sweep_tmp(self) -> None:
        """Remove the files older than 36 hours from tmp/; at most once an hour."""
        if self._swept_at is not None and \
                time.monotonic() - self._swept_at < SWEEP_EVERY_SECONDS:
            return
        self._swept_at = time.monotonic()
        oldest = time.time() - STALE_TMP_SECONDS
        removed = 0
        with os.scandir(self.path / "tmp") as entries:
            for entry in entries:
                try:
                    if entry.is_file(follow_symlinks=False) and \
                            entry.stat(follow_symlinks=False).st_mtime < oldest:
                        os.unlink(entry.path)
                        removed += 1
                except OSError:  # gone already (another process swept it), or not ours
                    continue
        if removed:
            log.info("removed %d stale file(s) from %s", removed, self.path / "tmp")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None

    async def send(self, envelope_from: str, recipient: str, data: bytes) -> None:
        content = b"Return-Path: <" + envelope_from.encode("ascii") + b">\r\n" + data
        try:
            await asyncio.to_thread(self._write, content)
        except OSError as exc:
            raise TransientFailure(
                f"could not write to the maildir outbox {self.path}: {exc.strerror or exc}"
            ) from exc

    def _write(self, content: bytes) -> Path:
        now = time.time()
        name = (
            f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}Q{next(_sequence)}.{self._host}.eml"
        )
        temporary = self.path / "tmp" / name
        final = self.path / "new" / name
        try:
            with open(temporary, "xb") as file:
                file.write(content)
                file.flush()
                os.fsync(file.fileno())
        except FileExistsError:
            raise  # not a file this write began
        except BaseException:
            temporary.unlink(missing_ok=True)  # a partial file would sit in tmp/ for ever
            raise
        try:
            # link() refuses to overwrite, unlike rename(); some filesystems lack it.
            os.link(temporary, final)
        except (PermissionError, NotImplementedError):
            os.rename(temporary, final)
        finally:
            temporary.unlink(missing_ok=True)
        return final
