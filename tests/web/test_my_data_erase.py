"""Erasing one's data on both stores: the page's "Erase everything" only opens a page that
says what goes, what stays and why, that it cannot be undone and how to come back
(test_subscribe_after_erasure.py); that page's own button erases, and its "No" goes back."""

from __future__ import annotations

import html
import re

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.delivery.sender import deliver_due
from subscriptions.subscribers import Status
from tests.servers import SinkHandler
from tests.web.test_my_data import ask, data_link
from tests.web.test_residents import client_for
from tests.web.test_subscribe_after_erasure import held, mail_to
from tests.web.test_subscribe_after_erasure import riverside as riverside  # a fixture

FORM = re.compile(r'<form method="(get|post)" action="([^"]+)"[^>]*>(.*?)</form>', re.S)
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def press(client: TestClient, page: str, button: str) -> httpx.Response:
    """Submit the form of the page whose button reads `button`, as a browser would."""
    for method, action, inside in FORM.findall(page):
        if f">{button}</button>" in inside:
            fields = dict(HIDDEN.findall(inside))
            if method == "get":
                return client.get(html.unescape(action), params=fields)
            return client.post(html.unescape(action), data=fields)
    raise AssertionError(f"no form with a {button!r} button")


def emailed_data_link(factory: sessionmaker[Session], settings: Settings, sink: SinkHandler,
                      client: TestClient, email: str) -> str:
    ask(client, email)
    deliver_due(factory, settings)
    return data_link(mail_to(sink, email)[-1])


@pytest.mark.usefixtures("riverside")
def test_the_first_click_erases_nothing_and_the_confirmation_page_says_what_goes(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]
) -> None:
    sink, settings = smtp
    client = client_for(factory, settings)
    link = emailed_data_link(factory, settings, sink, client, "jo@home.example")
    manage = client.get(link)
    assert manage.status_code == 200

    asking = press(client, manage.text, "Erase everything")
    assert held(factory, "jo@home.example") == [Status.CONFIRMED], "one click erases nothing"
    assert asking.status_code == 200
    text = asking.text
    assert "<h1>Erase your data?</h1>" in text and "It cannot be undone." in text
    for said in ("Your address and name.", "Your 1 ward subscription and the record of when "
                 "and how you agreed to it.", "The record of the 1 email we have sent",
                 "on our list of addresses we do not write to",
                 "never your address or your words", "You can subscribe again"):
        assert said in text, said
    assert f'<a href="{link}">No, keep my data</a>' in text, "cancel goes back to the page"
    assert client.get(link).status_code == 200

    # A post from the old one-click form (no confirmation in it) only asks too.
    csrf = dict(HIDDEN.findall(text))["csrf_token"]
    again = client.post(f"{link}/erase", data={"csrf_token": csrf})
    assert again.status_code == 200 and "<h1>Erase your data?</h1>" in again.text
    assert held(factory, "jo@home.example") == [Status.CONFIRMED]
    stranger = client_for(factory, settings)  # the confirmation without its CSRF cookie
    refused = stranger.post(f"{link}/erase", data={"csrf_token": csrf, "erase": "everything"})
    assert refused.status_code == 400 and held(factory, "jo@home.example")

    erased = press(client, text, "Yes, erase everything")
    assert erased.status_code == 200 and "<h1>Your data is erased</h1>" in erased.text
    assert 'href="/subscribe">subscribe again</a>' in erased.text
    assert held(factory, "jo@home.example") == []
    assert held(factory, "ann@home.example") == [Status.CONFIRMED]
    assert client.get(f"{link}/erase").status_code == 400, "the link is spent"
    for forged in (link[:-3] + "aaa", "/my-data/nonsense"):
        assert client.get(f"{forged}/erase").status_code == 400


