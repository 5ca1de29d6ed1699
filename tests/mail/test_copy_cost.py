"""The work of one resident's copy at delivery, counted rather than timed: a digest of many
items carries a yes and a no link per item in each of its two parts, and each of those links
is signed once a copy, the text and HTML parts sharing it."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from alerts.core.config import Settings, load_settings
from alerts.mail import vote_links
from alerts.mail.marks import PREFERENCES_MARK, UNSUBSCRIBE_MARK
from alerts.mail.mime import Outgoing, personalise_email, prepare_message
from alerts.mail.vote_links import read_vote

NOW = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)
SECRET = "test-secret-key-for-tests"
ITEMS = range(101, 113)
VOTE_URL = re.compile(rb"https://alerts\.example\.org/useful/([A-Za-z0-9._-]+)")


def a_settings() -> Settings:
    base = load_settings(environ={})
    return dataclasses.replace(base, web=dataclasses.replace(
        base.web, secret_key=SECRET, base_url="https://alerts.example.org"))


def a_digest() -> Outgoing:
    """Twelve items, each with its yes and no marks in the text and in the HTML."""
    text = "".join(f"Item {n}\nUseful? Yes: __ALERTS_USEFUL_{n}_yes__\n"
                   f"No: __ALERTS_USEFUL_{n}_no__\n\n" for n in ITEMS)
    html = "".join(f"<p>Item {n}</p><p><a href='__ALERTS_USEFUL_{n}_yes__'>Yes</a> "
                   f"<a href='__ALERTS_USEFUL_{n}_no__'>No</a></p>" for n in ITEMS)
    return Outgoing(delivery_id=41, message_id=7, kind="digest", subject="This week",
                    html=html + f"<a href='{UNSUBSCRIBE_MARK}'>Leave</a>",
                    text=text + f"Change: {PREFERENCES_MARK}\n", calendar=None,
                    ward_code="RIV", ward_name="Riverside", recipient_email="ash@home.example",
                    recipient_name="Ash", subscription_id=93, created_at=NOW,
                    delivery_nonce="d" * 32, subscription_nonce="s" * 32,
                    message_nonce="m" * 32)


@pytest.fixture
def seals(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Every seal a vote link is signed with, counted by what it seals."""
    counted: Counter[str] = Counter()
    real: Callable[..., str] = getattr(vote_links, "seal")  # noqa: B009

    def counting(*args: Any) -> str:
        counted[args[-1]] += 1
        return real(*args)

    monkeypatch.setattr(vote_links, "seal", counting)
    return counted


def test_each_vote_link_of_a_copy_is_signed_once_for_both_parts(seals: Counter[str]) -> None:
    settings, outgoing = a_settings(), a_digest()
    _, data = personalise_email(prepare_message(outgoing, settings), outgoing, settings,
                                now=NOW)
    assert len(seals) == 2 * len(ITEMS)  # a yes and a no per item
    assert set(seals.values()) == {1}, "a link signed again for the second part"
    tokens = VOTE_URL.findall(data.replace(b"=\r\n", b"").replace(b"=3D", b"="))
    assert len(tokens) == 4 * len(ITEMS)  # each link in the text and in the HTML
    assert len(set(tokens)) == 2 * len(ITEMS)
    ballots = [read_vote(SECRET, token.decode(), lambda _: "m" * 32) for token in tokens]
    assert all(ballots)


def test_each_link_of_a_copy_is_encoded_once_for_both_parts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from alerts.mail import mime

    settings, outgoing = a_settings(), a_digest()
    prepared = prepare_message(outgoing, settings)
    encoded: Counter[str] = Counter()
    real: Callable[[str], bytes] = getattr(mime, "_quoted_printable")  # noqa: B009

    def counting(text: str) -> bytes:
        encoded[text] += 1
        return real(text)

    monkeypatch.setattr(mime, "_quoted_printable", counting)
    _, data = personalise_email(prepared, outgoing, settings, now=NOW)
    links = [text for text in encoded if text.startswith("https://")]
    assert len(links) == 2 * len(ITEMS) + 2  # the votes, unsubscribe and preferences
    assert set(encoded.values()) == {1}, "a link encoded again for the second part"
    tokens = VOTE_URL.findall(data.replace(b"=\r\n", b"").replace(b"=3D", b"="))
    assert len(tokens) == 4 * len(ITEMS)
