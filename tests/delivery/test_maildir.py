"""The maildir outbox keeps to the maildir rules: nothing half-written stays in tmp/."""

from __future__ import annotations

import asyncio
import errno
import io
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.delivery import maildir
from alerts.delivery.maildir import MaildirTransport
from alerts.delivery.outbox import DeliveryStatus
from alerts.delivery.sender import DeliveryReport, deliver_due
from subscriptions.base import utcnow
from tests.delivery.test_sender import queue, rows

HOUR = 3600


class FullDisk(io.FileIO):
    """A file on a disk that fills up: half the bytes land, then the write fails."""

    def write(self, data: Any) -> int:
        super().write(bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_write_the_full_disk_refuses_leaves_nothing_in_tmp_and_is_sent_later(
        factory: sessionmaker[Session], settings: Settings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    (email,) = queue(factory, 1)
    outbox = Path(settings.mail.maildir)
    # The disk boundary: the transport's own open() hands out files on a full disk.
    monkeypatch.setattr(maildir, "open", FullDisk, raising=False)

    report = deliver_due(factory, settings)

    assert report == DeliveryReport(retried=1)
    assert list((outbox / "tmp").iterdir()) == [] and list((outbox / "new").iterdir()) == []
    row = rows(factory)[email]
    assert (row.status, row.attempts) == (DeliveryStatus.QUEUED, 1)
    assert "No space left on device" in (row.last_error or "")

    monkeypatch.undo()  # the deployer frees some space
    later = deliver_due(factory, settings, now=lambda: utcnow() + timedelta(days=1))

    assert later == DeliveryReport(sent=1)
    assert list((outbox / "tmp").iterdir()) == [] and len(list((outbox / "new").iterdir())) == 1
    assert rows(factory)[email].status == DeliveryStatus.SENT


def aged(path: Path, hours: float) -> Path:
    path.write_bytes(b"Subject: left behind\r\n\r\npartial")
    then = time.time() - hours * HOUR
    os.utime(path, (then, then))
    return path


def names(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir()}


def test_files_left_in_tmp_for_36_hours_are_removed_when_the_outbox_opens(
        tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    for folder in ("tmp", "new", "cur"):
        (outbox / folder).mkdir(parents=True)
    aged(outbox / "tmp" / "crashed-writer.eml", 37)
    aged(outbox / "tmp" / "writing-now.eml", 1)
    aged(outbox / "new" / "unread-for-days.eml", 100)
    transport = MaildirTransport(outbox)

    async def open_and_close() -> None:
        async with transport:
            pass

    asyncio.run(open_and_close())

    assert names(outbox / "tmp") == {"writing-now.eml"}
    assert names(outbox / "new") == {"unread-for-days.eml"}  # a reader's, never swept

    # At most once an hour: opening the same outbox again soon does not look again.
    aged(outbox / "tmp" / "another-crash.eml", 40)
    asyncio.run(open_and_close())
    assert names(outbox / "tmp") == {"writing-now.eml", "another-crash.eml"}
