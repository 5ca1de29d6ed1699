"""Real servers on loopback for the tests: an HTTP server for feeds, an SMTP sink (aiosmtpd)."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Resource:
    body: bytes
    status: int = 200
    content_type: str = "application/xml"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FeedServer:
    """Serves `resources` by path; records each request's path and headers."""

    base_url: str
    resources: dict[str, Resource]
    requests: list[tuple[str, dict[str, str]]]

    def url(self, path: str) -> str:
        return self.base_url + path

    def put(self, path: str, body: bytes | str, **kwargs: Any) -> str:
        data = body.encode() if isinstance(body, str) else body
        self.resources[path] = Resource(data, **kwargs)
        return self.url(path)


@contextmanager
def feed_server() -> Iterator[FeedServer]:
    resources: dict[str, Resource] = {}
    requests: list[tuple[str, dict[str, str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append((self.path, dict(self.headers.items())))
            resource = resources.get(self.path)
            if resource is None:
                self.send_response(404)
                self.end_headers()
                return
            etag = resource.headers.get("ETag")
            if etag and self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.end_headers()
                return
            self.send_response(resource.status)
            self.send_header("Content-Type", resource.content_type)
            self.send_header("Content-Length", str(len(resource.body)))
            for name, value in resource.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(resource.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield FeedServer(f"http://127.0.0.1:{server.server_address[1]}", resources, requests)
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool = False  # the message came over TLS (implicit, or after STARTTLS)
    mail_options: list[str] = field(default_factory=list)  # MAIL FROM's (BODY=8BITMIME…)

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class SinkHandler:
    """Accepts every message, unless `reject` maps a recipient to an SMTP reply."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.reject: dict[str, str] = {}
        self.connections = 0

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.reject:
            return self.reject[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        tls = server.transport is not None and bool(server.transport.get_extra_info("ssl_object"))
        self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), data,
                                      tls, list(envelope.mail_options)))
        return "250 Message accepted"


class _SinkController(Controller):
    utf8 = True
    starttls: ssl.SSLContext | None = None

    def factory(self) -> SMTP:
        handler = self.handler
        assert isinstance(handler, SinkHandler)
        handler.connections += 1
        return SMTP(handler, enable_SMTPUTF8=self.utf8, tls_context=self.starttls)

    # aiosmtpd 1.4.6 checks that its server started by connecting to `self.port`, which for
    # port 0 is no port at all; aim the check at the port actually bound.
    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


@contextmanager
def smtp_sink(*, utf8: bool = True, implicit_tls: ssl.SSLContext | None = None,
              starttls: ssl.SSLContext | None = None) -> Iterator[tuple[SinkHandler, int]]:
    """An aiosmtpd server on a free loopback port; yields (handler, port). `implicit_tls`
    serves TLS from the first byte (as on port 465); `starttls` offers the upgrade."""
    handler = SinkHandler()
    controller = _SinkController(handler, hostname="127.0.0.1", port=0,
                                 ssl_context=implicit_tls)
    controller.utf8 = utf8
    controller.starttls = starttls
    controller.start()
    handler.connections = 0  # the start-up check above is not one of the sender's
    try:
        yield handler, controller.port
    finally:
        controller.stop()
