"""Serving the web app with uvicorn inside the service's own event loop.

The service owns SIGINT and SIGTERM, so uvicorn must not install handlers of its own; the
listening socket is bound before anything starts, so a port already in use is a one-line
error rather than a half-started service.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from alerts.core.errors import AlertsError


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
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise ServiceError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


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
