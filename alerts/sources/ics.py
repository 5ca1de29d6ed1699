"""iCalendar: a calendar's bytes into contact sessions over the coming weeks.

Pure: no I/O. Recurring events are expanded (recurring-ical-events), cancelled events and
occurrences, EXDATEs, private events and sessions already over are left out; every time comes
out as an aware UTC datetime, floating times read in the configured zone.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import recurring_ical_events
from icalendar import Calendar

from alerts.items import CollectedItem, ItemKind
from alerts.sources.registry import SourceError
from alerts.sources.sanitise import as_safe_html, shorten

NOT_PUBLIC = ("PRIVATE", "CONFIDENTIAL")
MAX_GUID = 1000
MAX_TEXT = 500
MAX_LINK = 2000


def parse_calendar(
    content: bytes, *, now: datetime, weeks: int, timezone: str
) -> list[CollectedItem]:
    """The sessions of a calendar that are not over yet and start within `weeks` of `now`."""
    zone = ZoneInfo(timezone)
    try:
        calendar = Calendar.from_ical(content)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise SourceError(_invalid(content, exc)) from None
    if not isinstance(calendar, Calendar) or calendar.name != "VCALENDAR":
        raise SourceError(_invalid(content, "it holds no VCALENDAR"))
    start = now.astimezone(zone)
    try:
        occurrences = list(
            recurring_ical_events.of(calendar).between(start, start + timedelta(weeks=weeks))
        )
        items = [_session(event, zone, now) for event in occurrences]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise SourceError(_invalid(content, exc)) from None
    sessions = [item for item in items if item is not None]
    return sorted(sessions, key=lambda item: (item.starts_at or now, item.guid))


def _invalid(content: bytes, reason: Exception | str) -> str:
    head = content.lstrip()[:200].lower()
    if not head:
        reason = "it is empty"
    elif head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        reason = "it is an HTML page"
    text = " ".join(str(reason).split()) or type(reason).__name__
    text = shorten(text, 200)
    return f"the document is not a valid iCalendar file: {text}"


def _session(event: Any, zone: tzinfo, now: datetime) -> CollectedItem | None:
    if str(event.get("STATUS", "")).upper() == "CANCELLED":
        return None
    if str(event.get("CLASS", "")).upper() in NOT_PUBLIC:
        return None
    starts = _utc(event["DTSTART"].dt, zone)
    ends: datetime | None = None
    if event.get("DTEND") is not None:
        ends = _utc(event["DTEND"].dt, zone)
    elif event.get("DURATION") is not None:
        ends = starts + event["DURATION"].dt
    if (ends or starts) <= now:
        return None  # already over
    if ends is not None and ends <= starts:
        ends = None
    occurrence = event.get("RECURRENCE-ID")
    key = _utc(occurrence.dt, zone) if occurrence is not None else starts
    uid = " ".join(str(event.get("UID", "")).split())
    title = _text(event.get("SUMMARY"))
    if not uid:
        uid = "sha256:" + hashlib.sha256(title.encode()).hexdigest()
    guid = f"{uid}/{key.isoformat()}"
    if len(guid) > MAX_GUID:
        guid = "sha256:" + hashlib.sha256(guid.encode()).hexdigest()
    return CollectedItem(
        guid=guid,
        kind=ItemKind.SESSION,
        title=title or "(untitled)",
        body_html=as_safe_html(str(event.get("DESCRIPTION", ""))),
        link=_link(event.get("URL")),
        published_at=None,
        starts_at=starts,
        ends_at=ends,
        location=_text(event.get("LOCATION")) or None,
    )


def _utc(value: date | datetime, zone: tzinfo) -> datetime:
    """An aware UTC time; a floating time is read in `zone`, a date is its local midnight."""
    if isinstance(value, datetime):
        local = value if value.tzinfo is not None else value.replace(tzinfo=zone)
    else:
        local = datetime.combine(value, time(0), tzinfo=zone)
    return local.astimezone(UTC)


def _text(value: object) -> str:
    text = " ".join(str(value or "").split())
    return shorten(text, MAX_TEXT)


def _link(value: object) -> str | None:
    url = str(value or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > MAX_LINK:
        return None
    return url
