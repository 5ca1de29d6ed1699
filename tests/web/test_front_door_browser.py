"""The front door and its two statements in Chromium, English and Welsh: axe-core and
screenshots at 400 and 1280 px (tests/browser.py), no sideways scroll on a phone, and a
postcode or ward name typed at `/` leading to the subscribe page."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.web.app import create_app
from tests.browser import check_page, serve_app
from tests.factories import make_ward

PAGES = [("/", "front-door"), ("/privacy", "privacy"), ("/accessibility", "accessibility")]

pytest_plugins = ("tests.browser",)


def fits_a_phone(page: Page) -> None:
    page.set_viewport_size({"width": 400, "height": 800})
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= 400, f"{page.url} scrolls sideways at 400 px: {width} px wide"


def test_the_front_door_and_statements_in_a_browser(
    factory: sessionmaker[Session], settings: Settings, page: Page, artefacts: Path,
) -> None:
    with factory.begin() as session:
        make_ward(session, "RIV", "Riverside")
        make_ward(session, "HIL", "Hillcrest")
    with serve_app(create_app(factory, settings=settings)) as base:
        for language in ("en", "cy"):
            for path, name in PAGES:
                page.goto(f"{base}{path}?lang={language}")
                check_page(page, f"{name}-{language}", artefacts)
                fits_a_phone(page)
        page.goto(f"{base}/?lang=en")
        expect(page.get_by_role("heading", level=1)).to_have_text("Neighbourhood alerts")
        page.get_by_label("Your ward\u2019s name or your postcode").fill("river")
        page.get_by_role("button", name="Find").click()
        expect(page).to_have_url(f"{base}/subscribe?q=river")
        expect(page.get_by_label("Riverside")).to_be_visible()
        expect(page.get_by_label("Hillcrest")).to_have_count(0)
        for name, path in (("Privacy notice", "/privacy"),
                           ("Accessibility statement", "/accessibility"),
                           ("About this service", "/")):
            page.get_by_role("contentinfo").get_by_role("link", name=name).click()
            expect(page).to_have_url(f"{base}{path}")
        page.goto(f"{base}/favicon.ico")  # Chromium decodes the icon: 16 px
        assert page.evaluate("document.images[0].naturalWidth") == 16
        page.goto(f"{base}/favicon.svg")
        assert page.evaluate("document.documentElement.localName") == "svg"
