"""Fixtures the web tests share."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio.to_thread
import pytest


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Every call the app hands to a worker thread (FastAPI's plain `def` handlers, and
    `alerts.web.page_reads` on PostgreSQL), while the test runs."""
    seen: list[object] = []
    original = anyio.to_thread.run_sync

    async def counting(call: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(call)
        return await original(call, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    yield seen
