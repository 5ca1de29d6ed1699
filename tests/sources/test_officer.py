"""An officer's own posts, advice and contact sessions: checked before they are stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alerts.sources.items import ItemKind
from alerts.sources.officer import officer_item
from alerts.sources.registry import SourceError

NOW = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


def post(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "title": "Thank you, Riverside",
        "body": "Your calls about the car park helped us make two arrests.",
        "kind": ItemKind.POST,
        "starts": None,
        "ends": None,
        "location": None,
        "now": NOW,
    }
    values.update(changes)
    return values


def session(**changes: Any) -> dict[str, Any]:
    return post(
        title="Meet your team at the Corner Cafe",
        body="Come and tell us what matters on your street.",
        kind=ItemKind.SESSION,
        starts=NOW + timedelta(days=3),
        ends=NOW + timedelta(days=3, hours=2),
        location="Corner Cafe, 4 High Street",
    ) | changes


def test_a_post_becomes_an_item_published_now() -> None:
    item = officer_item(**post())
    assert item.kind == ItemKind.POST
    assert item.title == "Thank you, Riverside"
    assert item.published_at == NOW
    assert item.body_html == "<p>Your calls about the car park helped us make two arrests.</p>"
    assert item.starts_at is None


def test_each_item_gets_a_fresh_officer_guid() -> None:
    first, second = officer_item(**post()), officer_item(**post())
    assert first.guid.startswith("officer:")
    assert second.guid.startswith("officer:")
    assert first.guid != second.guid


def test_an_html_body_is_sanitised() -> None:
    item = officer_item(**post(body='<p onclick="x()">Lock up</p><script>steal()</script>'))
    assert item.body_html == "<p>Lock up</p>"


def test_a_plain_text_body_is_escaped() -> None:
    item = officer_item(**post(body="Bikes < 1 year old & marked\nare rarely taken"))
    assert item.body_html == "<p>Bikes &lt; 1 year old &amp; marked<br>\nare rarely taken</p>"


def test_a_session_keeps_its_times_and_place() -> None:
    item = officer_item(**session())
    assert item.kind == ItemKind.SESSION
    assert item.starts_at == NOW + timedelta(days=3)
    assert item.ends_at == NOW + timedelta(days=3, hours=2)
    assert item.location == "Corner Cafe, 4 High Street"


def test_advice_is_accepted() -> None:
    assert officer_item(**post(kind=ItemKind.ADVICE)).kind == ItemKind.ADVICE


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (post(title="   "), "title is empty"),
        (post(title="Thank you\r\nBcc: everyone@example.org"), "single line"),
        (post(title="Line one\nLine two"), "single line"),
        (post(title="x" * 501), "longer than 500"),
        (session(starts=None, ends=None), "needs a start"),
        (session(ends=NOW + timedelta(days=2)), "end after it starts"),
        (session(starts=NOW - timedelta(minutes=5), ends=NOW + timedelta(hours=1)), "past"),
        (post(kind=ItemKind.ALERT, location="High Street"), "only a session"),
        (post(starts=NOW + timedelta(days=1)), "only a session"),
        (session(starts=datetime(2026, 6, 1, 10, 0), ends=None), "no time zone"),
    ],
)
def test_what_cannot_be_posted_is_refused_with_a_clear_message(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(SourceError, match=message):
        officer_item(**values)
