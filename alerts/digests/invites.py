"""The `.ics` a digest carries so that a resident can put contact sessions in a calendar.

RFC 5545 wants at least one component in a calendar (`icalbody = calprops component`,
`component = 1*(...)`), and some readers refuse one without. So a digest with no session
that has a start attaches no calendar, and the ward's published calendar, which must exist
even with no session to come, then holds one VTIMEZONE (UTC: valid, and ignored by
every calendar application) and no event.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta

from icalendar import Calendar, Event, Timezone, TimezoneStandard

from alerts.digests.compose import DigestItem
from alerts.sources.sanitise import html_to_text


def sessions_calendar(
    sessions: Sequence[DigestItem], *, ward_name: str, uid_domain: str, now: datetime
) -> bytes | None:
    """An iCalendar (METHOD:PUBLISH) with one event per session, or None when none has a
    start (there is nothing to put in a calendar)."""
    if not any(session.starts_at is not None for session in sessions):
        return None
    return calendar_of(sessions, ward_name=ward_name, uid_domain=uid_domain, now=now)


def calendar_of(
    sessions: Sequence[DigestItem], *, ward_name: str, uid_domain: str, now: datetime
) -> bytes:
    """The same calendar, even with no sessions (a subscribed calendar that is empty for now).

    Each event's UID depends on the item only, so a session is the same event whether it came
    in a digest's attachment or from the ward's published `.ics`.
    """
    calendar = Calendar()
    calendar.add("prodid", "-//Neighbourhood Alerts//Contact sessions//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", f"{ward_name} contact sessions")
    for session in sessions:
        if session.starts_at is None:
            continue
        event = Event()
        digest = hashlib.sha256(f"{session.id}".encode()).hexdigest()[:16]
        event.add("uid", f"session-{session.id}-{digest}@{uid_domain}")
        event.add("dtstamp", now)
        event.add("dtstart", session.starts_at)
        if session.ends_at is not None:
            event.add("dtend", session.ends_at)
        event.add("summary", session.title)
        if session.location:
            event.add("location", session.location)
        description = html_to_text(session.body_html)
        if description:
            event.add("description", description)
        if session.link:
            event.add("url", session.link)
        calendar.add_component(event)
    if not calendar.subcomponents:
        calendar.add_component(_utc_zone())
    data: bytes = calendar.to_ical()
    return data


def _utc_zone() -> Timezone:
    """A VTIMEZONE for UTC: the one component of a calendar with no event (RFC 5545 3.6.5)."""
    standard = TimezoneStandard()
    standard.add("dtstart", datetime(1970, 1, 1))
    standard.add("tzoffsetfrom", timedelta(0))
    standard.add("tzoffsetto", timedelta(0))
    standard.add("tzname", "UTC")
    zone = Timezone()
    zone.add("tzid", "UTC")
    zone.add_component(standard)
    return zone
