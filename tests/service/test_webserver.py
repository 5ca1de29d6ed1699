"""The web port: every connection it accepts sends each answer at once (Nagle's algorithm
off), so a kept-alive connection's next answer never waits for the client's delayed ACK."""

from __future__ import annotations

import asyncio
import socket

import pytest

from alerts.service.webserver import ServiceError, listen


async def nodelay_of_an_accepted_connection(sock: socket.socket) -> int:
    """TCP_NODELAY on the server side of one connection, as the service's loop serves it."""
    loop = asyncio.get_running_loop()
    accepted: asyncio.Future[int] = loop.create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            peer = transport.get_extra_info("socket")
            accepted.set_result(peer.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await loop.create_server(Probe, sock=sock)
    try:
        host, port = sock.getsockname()[:2]
        _, writer = await asyncio.open_connection(host, port)
        value = await asyncio.wait_for(accepted, 5)
        writer.close()
        return value
    finally:
        server.close()


def test_connections_to_the_web_port_answer_without_waiting_for_an_ack() -> None:
    sock = listen("127.0.0.1", 0)
    assert asyncio.run(nodelay_of_an_accepted_connection(sock)) != 0


def test_a_port_in_use_is_a_one_line_error() -> None:
    with listen("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ServiceError, match=f"cannot listen on 127.0.0.1:{port}"):
            listen("127.0.0.1", port)
