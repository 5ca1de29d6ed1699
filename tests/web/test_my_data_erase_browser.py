"""Erasing one's data in Chromium, English and Welsh: "Erase everything" opens a page that
asks to confirm (axe-core and screenshots at 400 and 1280 px, no sideways scroll on a
phone), its "No" goes back with nothing erased, its "Yes" erases."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.usecases.my_data import data_token
from alerts.web.app import create_app
from subscriptions.subscribers import Subscriber
from tests.browser import check_page, serve_app
from tests.factories import make_subscriber, make_ward, stored_nonce
from tests.web.test_front_door_browser import fits_a_phone
from tests.web.test_residents import subscriptions_of

pytest_plugins = ("tests.browser",)


def test_erasing_asks_first_and_explains_what_goes_and_what_stays(
    factory: sessionmaker[Session], settings: Settings, page: Page, artefacts: Path,
) -> None:
    with factory.begin() as session:
        riv = make_ward(session, "RIV", "Riverside")
        jo = make_subscriber(session, riv, "jo.with.a.rather.long.address@home.example",
                             name="Jo")
        make_subscriber(session, make_ward(session, "HIL", "Hillcrest"),
                        "jo.with.a.rather.long.address@home.example")
        session.flush()
        token = data_token(settings, jo.subscriber_id,
                           stored_nonce(session, Subscriber, jo.subscriber_id))
    with serve_app(create_app(factory, settings=settings)) as base:
        for language in ("cy", "en"):
            page.goto(f"{base}/my-data/{token}?lang={language}")
            page.locator("button.warning").click()
            expect(page).to_have_url(f"{base}/my-data/{token}/erase?")
            check_page(page, f"my-data-erase-{language}", artefacts)
            fits_a_phone(page)
        expect(page.get_by_role("heading", level=1)).to_have_text("Erase your data?")
        expect(page.get_by_text("It cannot be undone.")).to_be_visible()
        assert len(subscriptions_of(factory, "jo.with.a.rather.long.address@home.example")) == 2

        page.get_by_role("link", name="No, keep my data").click()
        expect(page).to_have_url(f"{base}/my-data/{token}")
        expect(page.get_by_role("heading", level=1)).to_have_text("Your data")
        fits_a_phone(page)
        assert len(subscriptions_of(factory, "jo.with.a.rather.long.address@home.example")) == 2

        page.get_by_role("button", name="Erase everything").click()
        page.get_by_role("button", name="Yes, erase everything").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Your data is erased")
        check_page(page, "my-data-erased-en", artefacts)
        fits_a_phone(page)
        assert subscriptions_of(factory, "jo.with.a.rather.long.address@home.example") == []
        page.get_by_role("link", name="subscribe again").click()
        expect(page).to_have_url(f"{base}/subscribe")
