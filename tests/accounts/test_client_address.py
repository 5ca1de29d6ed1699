"""Which network address the sign-in throttle counts, through the server `alerts web` and
`alerts run` use (uvicorn on loopback): the connecting peer, whatever X-Forwarded-For says,
unless that peer is one of `web.trusted_proxies`."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from alerts.accounts import signin
from alerts.accounts.users import Role, add_user
from alerts.core.config import ConfigError, Settings, load_settings
from alerts.service.webserver import address, listen, make_server
from alerts.web.app import create_app
from tests.factories import make_ward
from tests.processes import wait_for

PASSWORD = "correct horse battery staple"
OFFICER = "pc.bloggs@police.example"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
LIMIT = 3  # wrong passwords from one network address before it is locked (30 in service)


@pytest.fixture(autouse=True)
def small_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signin, "ADDRESS_LIMIT", LIMIT)  # each try costs an argon2 hash


@contextmanager
def served(factory: sessionmaker[Session], settings: Settings) -> Iterator[httpx.Client]:
    """The app as the service serves it (its socket, its uvicorn config), in a thread."""
    with factory.begin() as session:
        make_ward(session, "RIV")
        add_user(session, OFFICER, Role.OFFICER, ward_codes=["RIV"], password=PASSWORD)
    sock = listen("127.0.0.1", 0)
    server = make_server(create_app(factory, settings=settings))
    thread = threading.Thread(target=asyncio.run, args=(server.serve(sockets=[sock]),),
                              daemon=True)
    thread.start()
    wait_for(lambda: server.started, what="the web server")
    try:
        with httpx.Client(base_url=address(sock)) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def sign_in(client: httpx.Client, email: str, password: str, forwarded_for: str) -> int:
    client.cookies.clear()  # a browser of its own each time: no session, a new CSRF cookie
    token = CSRF.search(client.get("/staff/sign-in").text)
    assert token is not None
    return client.post("/staff/sign-in", headers={"X-Forwarded-For": forwarded_for},
                       data={"email": email, "password": password,
                             "csrf_token": token.group(1)}).status_code


def test_a_forwarded_for_header_from_an_untrusted_peer_changes_nothing(
        factory: sessionmaker[Session], settings: Settings) -> None:
    with served(factory, settings) as client:
        # A stranger naming a new "client" on every try is still one network address.
        for n in range(LIMIT):
            assert sign_in(client, f"guess{n}@police.example", "wrong",
                           forwarded_for=f"203.0.113.{n}") == 400
        assert sign_in(client, OFFICER, PASSWORD, forwarded_for="198.51.100.7") == 429


def test_a_listed_proxy_names_the_client_it_forwards_for(
        factory: sessionmaker[Session], settings: Settings) -> None:
    behind_proxy = dataclasses.replace(settings, web=dataclasses.replace(
        settings.web, trusted_proxies=("127.0.0.1", "::1")))
    with served(factory, behind_proxy) as client:
        for n in range(LIMIT):
            assert sign_in(client, f"guess{n}@police.example", "wrong",
                           forwarded_for="203.0.113.9") == 400
        assert sign_in(client, OFFICER, PASSWORD, forwarded_for="203.0.113.9") == 429
        # Another client behind the same proxy is not locked out; nor is one that put a
        # locked address at the front of its own header (the proxy appends the real one).
        assert sign_in(client, OFFICER, PASSWORD, forwarded_for="198.51.100.7") == 303
        assert sign_in(client, OFFICER, PASSWORD,
                       forwarded_for="203.0.113.9, 198.51.100.8") == 303


def test_trusted_proxies_are_addresses_or_networks() -> None:
    assert load_settings(environ={}).web.trusted_proxies == ()
    assert load_settings(environ={"ALERTS_WEB_TRUSTED_PROXIES": "10.0.0.0/8, ::1"}
                         ).web.trusted_proxies == ("10.0.0.0/8", "::1")
    for bad in ("*", "proxy.example", "10.0.0.1/8"):
        with pytest.raises(ConfigError, match=r"web\.trusted_proxies"):
            load_settings(environ={"ALERTS_WEB_TRUSTED_PROXIES": bad})
