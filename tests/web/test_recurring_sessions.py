"""A weekly drop-in (one iCalendar event with an RRULE, five occurrences to come) is one
contact session with five dates wherever it is shown or counted: the digest's subject and
body, the email a resident who hears of each post at once gets, the ward's archive page
(once, and not again as news), and the officers' ward page."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.accounts.users import Role, add_user
from alerts.core.config import Settings
from alerts.mail.messages import Message, MessageKind
from alerts.sources.ics import parse_calendar
from alerts.sources.items import ItemKind, store_items
from alerts.sources.registry import add_source
from alerts.usecases.digest_rounds import preview_digest, queue_immediate
from alerts.web.app import create_app
from subscriptions.base import utcnow
from subscriptions.subscribers import Frequency
from subscriptions.wards import get_ward
from tests.factories import make_subscriber, make_ward
from tests.usecases.test_open_feeds import publish
from tests.web.test_officers import OFFICER, PASSWORD, sign_in

TITLE = "Drop-in at the library"
PLACE = "Community library, Mill Lane"
WEEKS = 5


def weekly_calendar(first: datetime) -> bytes:
    stamp = "%Y%m%dT%H%M%SZ"
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
        "BEGIN:VEVENT\r\nUID:library-drop-in\r\n"
        f"DTSTAMP:{first:{stamp}}\r\nDTSTART:{first:{stamp}}\r\n"
        f"DTEND:{first + timedelta(hours=2):{stamp}}\r\n"
        f"RRULE:FREQ=WEEKLY;COUNT={WEEKS}\r\n"
        f"SUMMARY:{TITLE}\r\nLOCATION:{PLACE.replace(',', chr(92) + ',')}\r\n"
        "DESCRIPTION:Drop in for a chat with your ward officers.\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n").encode()


@pytest.fixture
def dates(factory: sessionmaker[Session], settings: Settings) -> list[datetime]:
    """Riverside with a resident, its officer, a post, and the weekly drop-in collected from
    its calendar as `alerts collect` stores it; the drop-in's five starts."""
    now = utcnow()
    first = (now + timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
    with factory.begin() as session:
        riv = make_ward(session, "RIV", "Riverside")
        make_subscriber(session, riv, "ann@home.example")
        make_subscriber(session, riv, "bo@home.example", frequency=Frequency.IMMEDIATE)
        add_user(session, OFFICER, Role.OFFICER, ward_codes=["RIV"], password=PASSWORD)
        publish(session, riv, "Bikes marked at the library", at=now - timedelta(days=1))
        source = add_source(session, "RIV", "ics", "https://police.example/riv.ics")
        collected = parse_calendar(weekly_calendar(first), now=now, weeks=8,
                                   timezone=settings.scheduler.timezone)
        assert len(collected.items) == WEEKS
        store_items(session, source, collected.items)
    return [first + timedelta(weeks=week) for week in range(WEEKS)]


def local(moment: datetime, settings: Settings) -> datetime:
    return moment.astimezone(ZoneInfo(settings.scheduler.timezone))


def test_the_digest_counts_a_weekly_session_once_and_lists_its_dates(
        factory: sessionmaker[Session], settings: Settings, dates: list[datetime]) -> None:
    with factory() as session:
        digest = preview_digest(session, "RIV", settings)
    assert digest is not None
    assert digest.subject == "Riverside neighbourhood news: 1 update and 1 contact session"
    assert digest.text.count(f"* {TITLE}") == 1
    assert digest.html.count(f">{TITLE}<") == 1
    for start in dates:
        day = local(start, settings)
        written = f"{day:%A} {day.day} {day:%B %Y}, {day:%H:%M}"
        assert written in digest.text and written in digest.html


def test_a_resident_who_hears_at_once_gets_one_email_for_a_weekly_session_with_its_dates(
        factory: sessionmaker[Session], settings: Settings, dates: list[datetime]) -> None:
    with factory.begin() as session:
        queue_immediate(session, get_ward(session, "RIV"), settings, utcnow())
    with factory() as session:
        posts = list(session.scalars(select(Message).where(Message.kind == MessageKind.POST)))
    sessions = [message for message in posts if TITLE in message.subject]
    assert len(posts) == 2 and len(sessions) == 1
    [email] = sessions
    assert email.text.count("When: ") == WEEKS
    assert email.calendar is not None and email.calendar.count(b"BEGIN:VEVENT") == WEEKS
    for start in dates:
        day = local(start, settings)
        assert f"{day:%A} {day.day} {day:%B %Y}, {day:%H:%M}" in email.text


def test_the_archive_shows_a_weekly_session_once_with_its_dates_and_not_as_news(
        factory: sessionmaker[Session], settings: Settings, dates: list[datetime]) -> None:
    client = TestClient(create_app(factory, settings=settings))
    page = client.get("/wards/RIV/").text
    assert page.count(TITLE) == 1
    news = page[page.index("Bikes marked at the library"):]
    assert TITLE not in news
    for start in dates:
        day = local(start, settings)
        assert f"{day:%A} {day.day} {day:%B %Y}, {day:%H:%M}" in page


def test_the_officers_ward_page_shows_a_weekly_session_once_with_its_dates(
        factory: sessionmaker[Session], settings: Settings, dates: list[datetime]) -> None:
    client = TestClient(create_app(factory, settings=settings))
    sign_in(client)
    page = client.get("/staff/wards/RIV/").text
    assert page.count(TITLE) == 1
    for start in dates:
        day = local(start, settings)
        assert f"{day:%a} {day.day} {day:%b %Y}, {day:%H:%M}" in page


def test_a_session_posted_again_at_the_same_place_is_one_session_on_the_archive(
        factory: sessionmaker[Session], settings: Settings) -> None:
    now = utcnow()
    with factory.begin() as session:
        riv = make_ward(session, "RIV", "Riverside")
        for week in (2, 1):
            starts = now + timedelta(weeks=week)
            publish(session, riv, "Street surgery", kind=ItemKind.SESSION,
                    at=now - timedelta(hours=week), starts=starts,
                    ends=starts + timedelta(hours=1), location="Market square")
    page = TestClient(create_app(factory, settings=settings)).get("/wards/RIV/").text
    assert page.count("Street surgery") == 1
    for week in (1, 2):
        day = local(now + timedelta(weeks=week), settings)
        assert f"{day.day} {day:%B %Y}" in page
