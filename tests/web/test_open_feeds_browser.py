"""A ward's public archive page in Chromium, with an urgent alert and a session held on two
dates: screenshots and an axe-core check (tests/browser.py), and its links to the feeds and
to sign up by email."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.sources.items import ItemKind
from alerts.usecases.posting import post_urgent
from alerts.web.app import create_app
from subscriptions.base import utcnow
from tests.browser import check_page, serve_app
from tests.factories import make_ward
from tests.usecases.test_open_feeds import publish

pytest_plugins = ("tests.browser",)


def test_a_ward_archive_page_in_a_browser(factory: sessionmaker[Session], settings: Settings,
                                          page: Page, artefacts: Path) -> None:
    now = utcnow()
    with factory.begin() as session:
        riv = make_ward(session, "RIV", "Riverside")
        make_ward(session, "HIL", "Hillcrest")
        publish(session, riv, "Bikes marked at the library", at=now - timedelta(days=2),
                body="<p>We marked <strong>40</strong> bikes on Saturday.</p>")
        publish(session, riv, "Lock your shed", kind=ItemKind.ADVICE,
                at=now - timedelta(days=1), body="Sheds are a target this month.")
        for week in (0, 1):  # one session held on two dates
            starts = now + timedelta(days=4, weeks=week)
            publish(session, riv, "Street surgery", kind=ItemKind.SESSION, at=now,
                    starts=starts, ends=starts + timedelta(hours=1),
                    location="Mill Lane library")
    with factory.begin() as session:
        post_urgent(session, settings, ward_code="RIV", title="Gas leak: Mill Lane closed",
                    body="Avoid Mill Lane tonight.", now=now - timedelta(hours=1))
    with serve_app(create_app(factory, settings=settings)) as base:
        page.goto(f"{base}/wards/")
        expect(page.get_by_role("heading", level=1)).to_have_text("Wards")
        check_page(page, "wards", artefacts)
        page.get_by_role("link", name="Riverside").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Riverside")
        expect(page.get_by_role("heading", name="Bikes marked at the library")).to_be_visible()
        expect(page.get_by_text("Mill Lane library").first).to_be_visible()
        expect(page.get_by_role("heading", name="Urgent Gas leak: Mill Lane closed")
               ).to_be_visible()
        expect(page.locator("ul.dates li")).to_have_count(2)
        expect(page.get_by_role("link", name="News feed (Atom)")).to_have_attribute(
            "href", "https://alerts.example.org/wards/RIV/feed.atom")
        expect(page.get_by_role("link", name="Get these by email")).to_have_attribute(
            "href", "/subscribe?q=Riverside")
        check_page(page, "ward-archive", artefacts)
        page.goto(f"{base}/wards/NOPE/")
        expect(page.get_by_role("heading", level=1)).to_have_text("Ward not found")
        check_page(page, "ward-not-found", artefacts)
