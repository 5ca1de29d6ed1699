"""data.police.uk: a neighbourhood's events and priorities as Items, fetched politely.

Owns the reading of the two neighbourhood endpoints (`/{force}/{neighbourhood}/events` and
`/priorities`; the parsers are pure), the process-wide rate limiter that every request to
data.police.uk passes through, and the one-line errors its answers turn into. Every item
says, in its body, that the data is under the Open Government Licence.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from alerts.core.errors import AlertsError
from alerts.sources.fetch import HTTPStatusError, fetch
from alerts.sources.items import CollectedItem, ItemKind
from alerts.sources.registry import SourceError, split_force_neighbourhood
from alerts.sources.sanitise import as_safe_html, html_to_text

LICENCE_URL = "https://www.nationalarchives.gov.uk/doc/open-government-licence/version/3/"
ATTRIBUTION_HTML = (
    f'<p>Source: data.police.uk, <a href="{LICENCE_URL}">Open Government Licence v3.0</a>.</p>'
)
# The zone of the API's zoneless local times (the collector passes the configured one).
API_TIMEZONE = "Europe/London"
PRIORITY_PREFIX = "Neighbourhood priority: "
MAX_PRIORITY_TITLE = 80
# Column sizes of the items table (a longer value would fail the insert on PostgreSQL).
MAX_TEXT = 500

# data.police.uk allows 15 requests a second with bursts of 30, then answers HTTP 429.
RATE_PER_SECOND = 15.0
BURST = 30


class TokenBucket:
    """A thread-safe token bucket: `acquire` takes a token, sleeping until one is due.

    A caller that finds the bucket empty reserves a future token (the count goes below zero)
    and sleeps outside the lock, so concurrent callers wait side by side, each for its turn.
    """

    def __init__(
        self,
        rate: float,
        capacity: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("a token bucket needs a positive rate and a capacity of at least 1")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(capacity)
        self._updated = clock()

    def acquire(self) -> float:
        """Take one token; return how long this call slept for it (0.0 when one was free)."""
        with self._lock:
            now = self._clock()
            elapsed = max(0.0, now - self._updated)
            self._tokens = min(float(self.capacity), self._tokens + elapsed * self.rate)
            self._updated = now
            self._tokens -= 1.0
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


LIMITER = TokenBucket(RATE_PER_SECOND, BURST)


def collect_policeuk(
    client: httpx.Client,
    base_url: str,
    force_neighbourhood: str,
    *,
    now: datetime,
    timezone: str,
    limiter: TokenBucket = LIMITER,
) -> list[CollectedItem]:
    """The neighbourhood's priorities, then its coming events soonest first (the order in
    which the collect's `sources.max_items_per_collect` keeps them); SourceError if either
    list fails.

    Both lists are fetched before anything is returned: half a neighbourhood would make the
    store withdraw every session that is merely missing from a failed answer.
    """
    force, neighbourhood = split_force_neighbourhood(force_neighbourhood)
    base = f"{base_url.rstrip('/')}/{force}/{neighbourhood}"
    events = _get(client, f"{base}/events", force_neighbourhood, limiter)
    priorities = _get(client, f"{base}/priorities", force_neighbourhood, limiter)
    return [
        *parse_priorities(priorities, timezone=timezone),
        *parse_events(events, now=now, timezone=timezone),
    ]


def _get(client: httpx.Client, url: str, force_neighbourhood: str, limiter: TokenBucket) -> bytes:
    limiter.acquire()
    try:
        return fetch(client, url, etag=None, last_modified=None).content
    except HTTPStatusError as exc:
        if exc.status == 404:
            raise SourceError(
                f"data.police.uk has no neighbourhood {force_neighbourhood} (HTTP 404); "
                "check the force and neighbourhood ids"
            ) from None
        if exc.status == 429:
            raise SourceError(
                "data.police.uk is rate-limiting us (HTTP 429); the next collection will try "
                "again"
            ) from None
        raise


def parse_events(content: bytes, *, now: datetime, timezone: str) -> list[CollectedItem]:
    """The events that are not over yet, as contact sessions, soonest first.

    Times are local with no zone and are read in `timezone`; an event with no start is left
    out. Raises SourceError when the bytes are not the events list.
    """
    zone = ZoneInfo(timezone)
    entries = _json_list(content, "events")
    sessions: list[CollectedItem] = []
    for number, entry in enumerate(entries, start=1):
        session = _event(entry, number, zone, now)
        if session is not None:
            sessions.append(session)
    return sorted(sessions, key=lambda item: (item.starts_at or now, item.guid))


def parse_priorities(content: bytes, *, timezone: str = API_TIMEZONE) -> list[CollectedItem]:
    """The neighbourhood's priorities as advice items; SourceError when not the list.

    Each is published when it was last acted on (or raised, when no action is recorded).
    """
    zone = ZoneInfo(timezone)
    entries = _json_list(content, "priorities")
    items = [_priority(entry, number, zone) for number, entry in enumerate(entries, start=1)]
    return [item for item in items if item is not None]


class _Malformed(AlertsError):
    """An entry does not have the documented shape; the message says how."""

    http_status = 502


def _json_list(content: bytes, what: str) -> list[Any]:
    try:
        data = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(_not_the_list(what, _why_not_json(content, exc))) from None
    if not isinstance(data, list):
        raise SourceError(_not_the_list(what, f"it is a JSON {_json_type(data)}, not a list"))
    return data


def _not_the_list(what: str, reason: str) -> str:
    return f"the response is not the data.police.uk {what} list: {reason}"


def _why_not_json(content: bytes, exc: Exception) -> str:
    head = content.lstrip()[:200].lower()
    if not head:
        return "it is empty"
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return "it is an HTML page"
    if isinstance(exc, json.JSONDecodeError):
        return f"it is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    return "it is not JSON (not UTF-8 text)"


def _json_type(value: object) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else type(value).__name__


def _event(entry: object, number: int, zone: tzinfo, now: datetime) -> CollectedItem | None:
    try:
        fields = _object(entry, f"event {number}")
        start_text = _string(fields, "start_date", f"event {number}")
        if not start_text:
            return None
        starts = _local_time(start_text, "start_date", zone, f"event {number}")
        end_text = _string(fields, "end_date", f"event {number}")
        ends = _local_time(end_text, "end_date", zone, f"event {number}") if end_text else None
        title = _line(_string(fields, "title", f"event {number}"))
        kind = _line(_string(fields, "type", f"event {number}"))
        description = _string(fields, "description", f"event {number}")
        address = _line(_string(fields, "address", f"event {number}"))
    except _Malformed as exc:
        raise SourceError(_not_the_list("events", str(exc))) from None
    if ends is not None and ends <= starts:
        ends = None
    if (ends or starts) <= now:
        return None  # already over
    key = f"{title}\n{starts.isoformat()}\n{address}"
    return CollectedItem(
        guid="policeuk-event:" + hashlib.sha256(key.encode()).hexdigest()[:32],
        kind=ItemKind.SESSION,
        title=_cut(title or kind.capitalize() or "Neighbourhood event", MAX_TEXT),
        body_html=_with_attribution(as_safe_html(description)),
        starts_at=starts,
        ends_at=ends,
        location=_cut(address, MAX_TEXT) or None,
    )


def _priority(entry: object, number: int, zone: tzinfo) -> CollectedItem | None:
    where = f"priority {number}"
    try:
        fields = _object(entry, where)
        issue = _string(fields, "issue", where)
        issue_date = _string(fields, "issue-date", where)
        action = _string(fields, "action", where)
        action_date = _string(fields, "action-date", where)
        issued = _local_time(issue_date, "issue-date", zone, where) if issue_date else None
        if action_date:  # checked so that a malformed date is reported, though not shown
            _local_time(action_date, "action-date", zone, where)
    except _Malformed as exc:
        raise SourceError(_not_the_list("priorities", str(exc))) from None
    issue_html = as_safe_html(issue)
    issue_text = _line(html_to_text(issue_html))
    if not issue_text:
        return None  # nothing a resident could read
    parts = [issue_html]
    if issued is not None:
        local = issued.astimezone(zone)
        parts.append(f"<p>Set as a priority on {local.day} {local:%B %Y}.</p>")
    action_html = as_safe_html(action)
    if action_html:
        parts += ["<p><strong>What we are doing:</strong></p>", action_html]
    key = f"{issue_text}\n{issue_date}"
    return CollectedItem(
        guid="policeuk-priority:" + hashlib.sha256(key.encode()).hexdigest()[:32],
        kind=ItemKind.ADVICE,
        title=PRIORITY_PREFIX + _cut(issue_text, MAX_PRIORITY_TITLE),
        body_html=_with_attribution("\n".join(parts)),
        # The API lists only priorities in force, however long ago they were set: the
        # digest's age limit for feed archives must not hide them, so no publication date.
        published_at=None,
    )


def _object(entry: object, where: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise _Malformed(f"{where} is a JSON {_json_type(entry)}, not an object")
    return entry


def _string(fields: dict[str, Any], key: str, where: str) -> str:
    """The text of `key`; a missing or null value is the empty string."""
    value = fields.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Malformed(f"{where}'s {key} is a JSON {_json_type(value)}, not text")
    return value


def _local_time(text: str, key: str, zone: tzinfo, where: str) -> datetime:
    """An aware UTC time from the API's zoneless local time, read in `zone`."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise _Malformed(f"{where}'s {key} {_cut(text, 40)!r} is not a date") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def _line(text: str) -> str:
    return " ".join(text.split())


def _cut(text: str, limit: int) -> str:
    """`text` in at most `limit` characters, cut at a word where it can be."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:.-") + "…"


def _with_attribution(body_html: str) -> str:
    return f"{body_html}\n{ATTRIBUTION_HTML}" if body_html else ATTRIBUTION_HTML
