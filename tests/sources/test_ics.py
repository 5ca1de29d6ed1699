"""Reading an iCalendar file into contact sessions (pure: bytes and a `now` in, items out)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from alerts.sources.ics import parse_calendar
from alerts.sources.items import CollectedItem, ItemKind
from alerts.sources.registry import SourceError

# A Monday in March, a fortnight before the clocks go forward (29 March 2026).
NOW = datetime(2026, 3, 16, 12, 0, tzinfo=UTC)
ZONE = "Europe/London"


def calendar(*events: str) -> bytes:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Riverside SNT//Sessions//EN"]
    for event in events:
        lines += ["BEGIN:VEVENT", *event.strip().splitlines(), "END:VEVENT"]
    lines.append("END:VCALENDAR")
    return ("\r\n".join(line.strip() for line in lines) + "\r\n").encode()


# "Meet your team" at the library, Thursdays 10:00 to 11:30 local time (floating).
WEEKLY = """
UID:meet-your-team@riverside.snt.example
DTSTART:20260305T100000
DTEND:20260305T113000
RRULE:FREQ=WEEKLY
SUMMARY:Meet your team: Riverside library
LOCATION:Riverside Library, 12 Mill Lane
DESCRIPTION:Drop in for a chat with your ward officers.\\nNo appointment needed.
URL:https://snt.police.example/riverside/sessions
"""


def parse(content: bytes, *, weeks: int = 6, now: datetime = NOW) -> list[CollectedItem]:
    return parse_calendar(content, now=now, weeks=weeks, timezone=ZONE).items


def starts(items: list[CollectedItem]) -> list[str]:
    return [item.starts_at.isoformat() for item in items if item.starts_at is not None]


def test_a_weekly_session_is_expanded_over_the_coming_weeks() -> None:
    items = parse(calendar(WEEKLY))
    assert len(items) == 6  # Thursdays 19 March to 23 April
    assert all(item.kind == ItemKind.SESSION for item in items)
    assert len({item.guid for item in items}) == 6
    assert len(parse(calendar(WEEKLY), weeks=2)) == 2


def test_floating_times_are_local_and_keep_their_hour_across_the_clock_change() -> None:
    items = parse(calendar(WEEKLY), weeks=3)
    assert starts(items) == [
        "2026-03-19T10:00:00+00:00",  # GMT
        "2026-03-26T10:00:00+00:00",
        "2026-04-02T09:00:00+00:00",  # BST: 10:00 local
    ]
    assert items[2].ends_at == datetime(2026, 4, 2, 10, 30, tzinfo=UTC)


def test_each_occurrence_is_known_by_uid_and_start() -> None:
    first = parse(calendar(WEEKLY))[0]
    assert first.guid == "meet-your-team@riverside.snt.example/2026-03-19T10:00:00+00:00"


def test_summary_location_description_and_url_are_read() -> None:
    first = parse(calendar(WEEKLY))[0]
    assert first.title == "Meet your team: Riverside library"
    assert first.location == "Riverside Library, 12 Mill Lane"
    assert first.body_html == (
        "<p>Drop in for a chat with your ward officers.<br>\nNo appointment needed.</p>"
    )
    assert first.link == "https://snt.police.example/riverside/sessions"
    assert first.published_at is None


def test_an_html_description_is_sanitised() -> None:
    event = """
    UID:cafe@riverside.snt.example
    DTSTART:20260320T140000Z
    DTEND:20260320T150000Z
    SUMMARY:Coffee with a copper
    DESCRIPTION:<p>At the <b>Corner Cafe</b></p><script>x()</script>
    """
    (item,) = parse(calendar(event))
    assert item.body_html == "<p>At the <b>Corner Cafe</b></p>"


def test_a_cancelled_event_is_left_out() -> None:
    cancelled = """
    UID:cancelled@riverside.snt.example
    DTSTART:20260318T180000Z
    DTEND:20260318T190000Z
    STATUS:CANCELLED
    SUMMARY:Ward panel meeting
    """
    items = parse(calendar(WEEKLY, cancelled))
    assert "Ward panel meeting" not in [item.title for item in items]
    assert len(items) == 6


def test_a_cancelled_single_occurrence_is_left_out() -> None:
    cancelled_once = """
    UID:meet-your-team@riverside.snt.example
    RECURRENCE-ID:20260402T100000
    DTSTART:20260402T100000
    DTEND:20260402T113000
    STATUS:CANCELLED
    SUMMARY:Meet your team: Riverside library
    """
    items = parse(calendar(WEEKLY, cancelled_once))
    assert len(items) == 5
    assert "2026-04-02T09:00:00+00:00" not in starts(items)


def test_an_excluded_date_is_left_out() -> None:
    items = parse(calendar(WEEKLY + "EXDATE:20260409T100000\n"))
    assert len(items) == 5
    assert "2026-04-09T09:00:00+00:00" not in starts(items)


def test_a_moved_occurrence_keeps_its_guid_and_takes_its_new_time() -> None:
    moved = """
    UID:meet-your-team@riverside.snt.example
    RECURRENCE-ID:20260326T100000
    DTSTART:20260326T140000
    DTEND:20260326T153000
    SUMMARY:Meet your team: Riverside library (afternoon this week)
    """
    items = parse(calendar(WEEKLY, moved), weeks=2)
    assert len(items) == 2
    second = items[1]
    assert second.guid == "meet-your-team@riverside.snt.example/2026-03-26T10:00:00+00:00"
    assert second.starts_at == datetime(2026, 3, 26, 14, 0, tzinfo=UTC)
    assert second.title.endswith("(afternoon this week)")


def test_sessions_already_over_are_left_out_but_one_under_way_is_kept() -> None:
    over = """
    UID:over@riverside.snt.example
    DTSTART:20260316T090000Z
    DTEND:20260316T110000Z
    SUMMARY:Street surgery, finished this morning
    """
    under_way = """
    UID:now@riverside.snt.example
    DTSTART:20260316T113000Z
    DTEND:20260316T130000Z
    SUMMARY:Street surgery, on now
    """
    items = parse(calendar(over, under_way))
    assert [item.title for item in items] == ["Street surgery, on now"]


def test_sessions_beyond_the_window_are_left_out() -> None:
    later = """
    UID:later@riverside.snt.example
    DTSTART:20260601T100000Z
    DTEND:20260601T110000Z
    SUMMARY:Summer fete stall
    """
    assert parse(calendar(later), weeks=6) == []
    assert len(parse(calendar(later), weeks=12)) == 1


def test_an_all_day_event_starts_at_local_midnight() -> None:
    all_day = """
    UID:marking@riverside.snt.example
    DTSTART;VALUE=DATE:20260404
    DTEND;VALUE=DATE:20260405
    SUMMARY:Bike marking day
    """
    (item,) = parse(calendar(all_day))
    assert item.starts_at == datetime(2026, 4, 3, 23, 0, tzinfo=UTC)  # midnight BST
    assert item.ends_at == datetime(2026, 4, 4, 23, 0, tzinfo=UTC)


def test_zoned_and_utc_times_come_out_in_utc() -> None:
    zoned = """
    UID:zoned@riverside.snt.example
    DTSTART;TZID=Europe/London:20260410T183000
    DTEND;TZID=Europe/London:20260410T200000
    SUMMARY:Ward panel
    """
    utc = """
    UID:utc@riverside.snt.example
    DTSTART:20260411T090000Z
    SUMMARY:Speed watch
    """
    panel, watch = parse(calendar(zoned, utc))
    assert panel.starts_at == datetime(2026, 4, 10, 17, 30, tzinfo=UTC)
    assert watch.starts_at == datetime(2026, 4, 11, 9, 0, tzinfo=UTC)
    assert watch.ends_at is None  # no end given


def test_a_private_event_is_not_published() -> None:
    private = """
    UID:private@riverside.snt.example
    DTSTART:20260320T090000Z
    DTEND:20260320T100000Z
    CLASS:PRIVATE
    SUMMARY:Briefing with the council
    """
    assert parse(calendar(private)) == []


def test_a_calendar_without_events_gives_nothing() -> None:
    assert parse(calendar()) == []


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"<!DOCTYPE html><html><body>Sessions</body></html>", "HTML page"),
        (b"Meet your team every Thursday", "could not be parsed"),
        (b"", "empty"),
        (b"BEGIN:VCARD\r\nFN:PC Khan\r\nEND:VCARD\r\n", "VCALENDAR"),
        (calendar("UID:x\nDTSTART:next thursday\nSUMMARY:Bad"), "DTSTART"),
    ],
)
def test_bytes_that_are_not_a_calendar_are_refused_with_a_reason(
    content: bytes, reason: str
) -> None:
    with pytest.raises(SourceError) as raised:
        parse(content)
    message = str(raised.value)
    assert message.startswith("the document is not a valid iCalendar file: ")
    assert reason in message
    assert "\n" not in message
