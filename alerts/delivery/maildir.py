"""The maildir outbox: the embedded default transport, a folder of .eml files.

Each message is written the maildir way (into `tmp/`, flushed to disk, then linked into
`new/`), so a reader never sees half a file. Files end in `.eml` so that a deployer trying
the product can open one in a mail client; maildir readers do not mind the suffix.

Failure policy: a folder that cannot be created or written when the transport opens raises
`MaildirError` (an OSError) before any row is touched, because that is a configuration
fault for the deployer, not a fact about any recipient. A write that fails later (disk
full, permissions changed under us) is a `TransientFailure`: the row stays queued and no
mail is lost once the deployer fixes the disk.
"""

from __future__ import annotations

import asyncio
import itertools
import mailbox
import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from alerts.delivery.transport import TransientFailure


class MaildirError(OSError):
    """The outbox folder cannot be used; the message names it and says why."""


_sequence = itertools.count(1)


class MaildirTransport:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")

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
        return self

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
        with open(temporary, "xb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        try:
            # link() refuses to overwrite, unlike rename(); some filesystems lack it.
            os.link(temporary, final)
        except (PermissionError, NotImplementedError):
            os.rename(temporary, final)
        finally:
            temporary.unlink(missing_ok=True)
        return final
