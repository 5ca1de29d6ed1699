"""The `.ics` a digest carries so that a resident can put contact sessions in a calendar."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from icalendar import Calendar, Event

from alerts.digests.compose import DigestItem
from alerts.sources.sanitise import html_to_text


def sessions_calendar(
    sessions: Sequence[DigestItem], *, ward_name: str, uid_domain: str, now: datetime
) -> bytes | None:
    """An iCalendar (METHOD:PUBLISH) with one event per session, or None when there are none."""
    if not sessions:
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
    data: bytes = calendar.to_ical()
    return data
