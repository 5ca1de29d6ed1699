"""Serving the web app with uvicorn inside the service's own event loop.

The service owns SIGINT and SIGTERM, so uvicorn must not install handlers of its own; the
listening socket is bound before anything starts, so a port already in use is a one-line
error rather than a half-started service.

uvicorn's fast path (the `uvicorn[standard]` extras): its "auto" HTTP parser is httptools
when installed, and `run_loop` runs the service's loop on uvloop when installed (uvicorn
would only choose it in `uvicorn.run`, which the service does not use); bench/web.py
measures both against pure h11 on asyncio's own loop.
"""

from __future__ import annotations

import asyncio
import importlib
import socket
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI

from alerts.core.errors import AlertsError

T = TypeVar("T")


class ServiceError(AlertsError):
    """The service cannot start as configured; the message says why."""


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its host."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def listen(host: str, port: int) -> socket.socket:
    """Bind the web port now, or say plainly why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # Made as TCP by name (socket.create_server leaves the protocol 0): asyncio turns Nagle's
    # algorithm off (TCP_NODELAY) only on sockets that say IPPROTO_TCP, and with it on, each
    # answer on a kept-alive connection waited ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if family == socket.AF_INET6:  # as socket.create_server: IPv6 alone
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ServiceError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when it is installed, else None (asyncio's own)."""
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the fastest loop installed; signal handlers stay the caller's
    (they are added on the running loop, whichever it is)."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)


def make_server(app: FastAPI) -> EmbeddedServer:
    config = uvicorn.Config(
        app,
        lifespan="off",
        # The app decides who the client is (web.trusted_proxies, alerts/web/app.py);
        # uvicorn's own default would believe X-Forwarded-For from any loopback peer.
        proxy_headers=False,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    return EmbeddedServer(config)


def address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
