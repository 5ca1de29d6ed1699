"""The sessions calendar is valid RFC 5545 even with no session: a calendar holds at least
one component (`icalbody = calprops component`, `component = 1*(...)`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from icalendar import Calendar

from alerts.digests.compose import DigestItem
from alerts.digests.invites import calendar_of, sessions_calendar
from alerts.sources.items import ItemKind

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def session(starts_at: datetime | None) -> DigestItem:
    return DigestItem(id=7, kind=ItemKind.SESSION, title="Street surgery", body_html="",
                      link=None, published_at=NOW, starts_at=starts_at, ends_at=None,
                      location="Library")


def parsed(data: bytes) -> Calendar:
    calendar = Calendar.from_ical(data)
    assert isinstance(calendar, Calendar)
    assert str(calendar["VERSION"]) == "2.0"
    assert str(calendar["PRODID"]) == "-//Neighbourhood Alerts//Contact sessions//EN"
    return calendar


def test_a_calendar_with_no_session_still_holds_one_component_and_no_event() -> None:
    for sessions in ([], [session(None)]):
        calendar = parsed(calendar_of(sessions, ward_name="Riverside",
                                      uid_domain="alerts.example", now=NOW))
        assert [c.name for c in calendar.subcomponents] == ["VTIMEZONE"]
        zone = calendar.subcomponents[0]
        assert str(zone["TZID"]) == "UTC"
        assert [c.name for c in zone.subcomponents] == ["STANDARD"]
        assert zone.subcomponents[0].decoded("TZOFFSETTO") == timedelta(0)


def test_a_calendar_with_sessions_holds_their_events_and_no_timezone() -> None:
    calendar = parsed(calendar_of([session(NOW + timedelta(days=3))], ward_name="Riverside",
                                  uid_domain="alerts.example", now=NOW))
    assert [c.name for c in calendar.subcomponents] == ["VEVENT"]


def test_a_digest_attaches_no_calendar_when_no_session_has_a_start() -> None:
    assert sessions_calendar([], ward_name="Riverside", uid_domain="alerts.example",
                             now=NOW) is None
    assert sessions_calendar([session(None)], ward_name="Riverside",
                             uid_domain="alerts.example", now=NOW) is None
