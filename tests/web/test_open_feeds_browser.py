"""A ward's public archive page in Chromium: screenshots and an axe-core check
(tests/browser.py), and its links to the feeds and to sign up by email."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.sources.items import ItemKind
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
        publish(session, riv, "Street surgery", kind=ItemKind.SESSION, at=now,
                starts=now + timedelta(days=4), ends=now + timedelta(days=4, hours=1),
                location="Mill Lane library")
    with serve_app(create_app(factory, settings=settings)) as base:
        page.goto(f"{base}/wards/")
        expect(page.get_by_role("heading", level=1)).to_have_text("Wards")
        check_page(page, "wards", artefacts)
        page.get_by_role("link", name="Riverside").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Riverside")
        expect(page.get_by_role("heading", name="Bikes marked at the library")).to_be_visible()
        expect(page.get_by_text("Mill Lane library").first).to_be_visible()
        expect(page.get_by_role("link", name="News feed (Atom)")).to_have_attribute(
            "href", "https://alerts.example.org/wards/RIV/feed.atom")
        expect(page.get_by_role("link", name="Get these by email")).to_have_attribute(
            "href", "/subscribe?q=Riverside")
        check_page(page, "ward-archive", artefacts)
        page.goto(f"{base}/wards/NOPE/")
        expect(page.get_by_role("heading", level=1)).to_have_text("Ward not found")
        check_page(page, "ward-not-found", artefacts)
