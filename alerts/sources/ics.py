"""iCalendar: a calendar's bytes into contact sessions over the coming weeks.

Pure: no I/O. Recurring events are expanded (recurring-ical-events), cancelled events and
occurrences, EXDATEs, private events and sessions already over are left out; every time comes
out as an aware UTC datetime, floating times read in the configured zone.

The expansion is bounded (see alerts/sources/bounds.py): each event's rule is read lazily,
soonest first, starting near the coming weeks rather than at its DTSTART, and reading stops at
`max_occurrences` sessions of that event and once `max_items` sooner sessions are kept, so an
event that repeats every second for ever costs no more than one that repeats weekly.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import recurring_ical_events
from icalendar import Calendar
from recurring_ical_events.selection.name import ComponentsWithName
from recurring_ical_events.series import Series
from recurring_ical_events.util import compare_greater, convert_to_datetime

from alerts.sources.bounds import Bounded, items_note, occurrences_note, unread_note
from alerts.sources.items import CollectedItem, ItemKind
from alerts.sources.registry import SourceError
from alerts.sources.sanitise import as_safe_html, shorten

NOT_PUBLIC = ("PRIVATE", "CONFIDENTIAL")
MAX_GUID = 1000
MAX_TEXT = 500
MAX_LINK = 2000
# Values of one rule read before the coming weeks (a rule that cannot be started near them,
# e.g. a MONTHLY one with BYSECOND from the year 1); past this its occurrences are left out.
MAX_SKIPPED = 100_000
# The step of each frequency whose rule can be started near the coming weeks.
STEPS = {
    "SECONDLY": timedelta(seconds=1),
    "MINUTELY": timedelta(minutes=1),
    "HOURLY": timedelta(hours=1),
    "DAILY": timedelta(days=1),
    "WEEKLY": timedelta(weeks=1),
}


def parse_calendar(
    content: bytes,
    *,
    now: datetime,
    weeks: int,
    timezone: str,
    max_occurrences: int = 100,
    max_items: int = 500,
) -> Bounded:
    """The sessions of a calendar that are not over yet and start within `weeks` of `now`,
    soonest first: at most `max_occurrences` of each event and `max_items` in all."""
    zone = ZoneInfo(timezone)
    try:
        calendar = Calendar.from_ical(content)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise SourceError(_invalid(content, exc)) from None
    if not isinstance(calendar, Calendar) or calendar.name != "VCALENDAR":
        raise SourceError(_invalid(content, "it holds no VCALENDAR"))
    start = now.astimezone(zone)
    stop = start + timedelta(weeks=weeks)
    kept: list[CollectedItem] = []
    capped: list[str] = []  # the titles of events cut at max_occurrences
    unread: list[str] = []  # the titles of events whose rule gave MAX_SKIPPED values too early
    found = 0
    counted = True  # False once an event was cut short because sooner sessions filled the cap
    try:
        query = recurring_ical_events.of(
            calendar, components=[ComponentsWithName("VEVENT", series=_BoundedSeries)]
        )
        latest: datetime | None = None  # of the sessions kept, once more than the cap came
        for series in query.series:
            sessions, more, cut = _sessions(series, start, stop, zone, now, max_occurrences,
                                            latest)
            if getattr(series.recurrence, "truncated", False):
                unread.append(_text(series.recurrence.core.as_component().get("SUMMARY")))
            elif more and sessions:
                capped.append(sessions[0].title)
            counted = counted and not cut
            found += len(sessions)
            kept.extend(sessions)
            if len(kept) >= 2 * max_items:
                kept = _soonest(kept, now)[:max_items]
                latest = kept[-1].starts_at
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, OverflowError) as exc:
        raise SourceError(_invalid(content, exc)) from None
    kept = _soonest(kept, now)
    notes = [occurrences_note(capped, max_occurrences)] if capped else []
    if unread:
        notes.append(unread_note(unread, MAX_SKIPPED))
    if found > max_items or not counted:
        notes.append(items_note(max_items, found if counted else None))
    return Bounded(kept[:max_items], tuple(notes))


def _soonest(sessions: list[CollectedItem], now: datetime) -> list[CollectedItem]:
    return sorted(sessions, key=lambda item: (item.starts_at or now, item.guid))


def _sessions(
    series: Any,
    start: datetime,
    stop: datetime,
    zone: tzinfo,
    now: datetime,
    cap: int,
    latest: datetime | None,
) -> tuple[list[CollectedItem], bool, bool]:
    """(at most `cap` sessions of one event, whether it had more, whether it was cut short
    at `latest`, later than the sessions already kept)."""
    sessions: list[CollectedItem] = []
    # Occurrences that give no session (cancelled, private, over) count too, so that an
    # endless cancelled event is not read to the end of the weeks.
    budget = 2 * cap + len(series.modifications)
    for occurrence in series.between(start, stop):
        budget -= 1
        if budget < 0 or len(sessions) == cap:
            return sessions, True, False
        session = _session(occurrence.as_component(False), zone, now)
        if session is None:
            continue
        if latest is not None and session.starts_at is not None and session.starts_at > latest:
            return sessions, False, True
        sessions.append(session)
    return sessions, False, False


class _BoundedSeries(Series):  # type: ignore[misc]
    """A recurring event whose rule is read lazily, soonest first, from near the span asked."""

    class RecurrenceRules(Series.RecurrenceRules):  # type: ignore[misc]
        truncated = False  # set when MAX_SKIPPED values were read before the span

        def rrule_between(self, span_start: Any, span_stop: Any) -> Iterator[datetime]:
            first = convert_to_datetime(span_start, self.tzinfo)
            last = convert_to_datetime(span_stop, self.tzinfo)
            yield from heapq.merge(*(self._starts(rule, first, last) for rule in self.rrules))

        def _starts(self, rule: Any, first: datetime, last: datetime) -> Iterator[datetime]:
            until = getattr(rule, "until", None)
            skipped = 0
            for value in _started_near(rule, self.start, first):
                if compare_greater(value, last):
                    return
                if until is not None and compare_greater(value, until):
                    return
                if compare_greater(first, value):
                    skipped += 1
                    if skipped > MAX_SKIPPED:
                        self.truncated = True
                        return
                    continue
                yield value


def _started_near(rule: Any, dtstart: datetime, first: datetime) -> Iterable[datetime]:
    """`rule`'s values from shortly before `first` on (from its DTSTART when it cannot be
    started later: MONTHLY and YEARLY rules, or a COUNT with BY parts)."""
    whole: Iterable[datetime] = rule
    text = getattr(rule, "string", None)  # recurring-ical-events keeps each RRULE's text
    if not isinstance(text, str):
        return whole  # the RDATEs (and DTSTART) of the event: no more than the file holds
    parts = dict(
        part.split("=", 1) for part in text.upper().removeprefix("RRULE:").split(";") if "=" in part
    )
    step = STEPS.get(parts.get("FREQ", ""))
    try:
        interval = max(int(parts.get("INTERVAL") or 1), 1)
        count = int(parts["COUNT"]) if "COUNT" in parts else None
    except ValueError:
        return whole
    if step is None or (count is not None and any(key.startswith("BY") for key in parts)):
        return whole
    # dateutil steps in local wall-clock time; so do these (one zone, naive arithmetic).
    begin = dtstart.replace(tzinfo=None)
    target = first.astimezone(dtstart.tzinfo) if first.tzinfo and dtstart.tzinfo else first
    period = step * interval
    periods = (target.replace(tzinfo=None) - begin) // period - 1
    if periods <= 0:
        return whole
    later = (begin + period * periods).replace(tzinfo=dtstart.tzinfo)
    if count is not None and count <= periods:
        return ()  # every occurrence of the COUNT is over
    remaining = {} if count is None else {"count": count - periods}
    started: Iterable[datetime] = rule.replace(dtstart=later, cache=False, **remaining)
    return started


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
