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
