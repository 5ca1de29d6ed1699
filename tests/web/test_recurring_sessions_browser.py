"""A weekly drop-in in Chromium: the ward's archive page and the officers' ward page show it
once with its five dates, pass axe-core and fit a 400 px phone without sideways scroll."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.web.app import create_app
from tests.browser import check_page, serve_app
from tests.web.test_front_door_browser import fits_a_phone
from tests.web.test_officers_browser import sign_in
from tests.web.test_recurring_sessions import TITLE, WEEKS, dates  # noqa: F401

pytest_plugins = ("tests.browser",)


def test_a_weekly_drop_in_in_a_browser(factory: sessionmaker[Session], settings: Settings,
                                       dates: list[datetime], page: Page,  # noqa: F811
                                       artefacts: Path) -> None:
    with serve_app(create_app(factory, settings=settings)) as base:
        page.goto(f"{base}/wards/RIV/")
        expect(page.get_by_text(TITLE)).to_have_count(1)
        expect(page.locator("ul.dates li")).to_have_count(WEEKS)
        check_page(page, "archive-weekly-session", artefacts)
        fits_a_phone(page)

        page.goto(f"{base}/staff/sign-in")
        sign_in(page)
        page.goto(f"{base}/staff/wards/RIV/")
        expect(page.get_by_role("cell", name=TITLE)).to_have_count(1)
        expect(page.locator("ul.dates li")).to_have_count(WEEKS)
        check_page(page, "officer-ward-weekly-session", artefacts)
        fits_a_phone(page)
