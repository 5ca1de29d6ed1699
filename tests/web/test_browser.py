"""The residents' journey in a real browser: Debian's Chromium driven by Playwright against
the web app on a loopback port, with the confirmation email read from an SMTP sink.

subscribe → confirmation email → confirm (the link's page, then its button) → answer "was this
useful?" from an alert (the link's page, then its button) → change frequency → unsubscribe →
see and erase my data, each page screenshotted at phone and desktop widths into the test's artefacts
folder and checked with axe-core (tests/browser.py: check_page fails on a serious or
critical problem). The browser is never downloaded: without /usr/bin/chromium the test is
skipped.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.delivery.sender import DeliveryReport, deliver_due
from alerts.usecases.posting import post_urgent
from alerts.usecases.votes import UsefulVote
from alerts.web.app import create_app
from subscriptions.base import utcnow
from subscriptions.subscribers import Status, Subscriber, Subscription
from tests.browser import check_page, off_loop, open_page, serve_app, served_settings
from tests.factories import make_ward
from tests.servers import Received, SinkHandler

pytest_plugins = ("tests.browser",)  # the browser and artefacts fixtures


@dataclasses.dataclass
class Site:
    base_url: str
    settings: Settings


@pytest.fixture
def site(factory: sessionmaker[Session],
         smtp: tuple[SinkHandler, Settings]) -> Iterator[Site]:
    """The web app served by uvicorn on a free loopback port; emailed links point at it."""
    _, settings = smtp
    settings, port = served_settings(settings)
    base_url = settings.web.base_url
    with serve_app(create_app(factory, settings=settings), port) as served:
        assert served == base_url
        yield Site(base_url, settings)


class Pages:
    """Each page the journey reaches, screenshotted and checked in order (01-subscribe…)."""

    def __init__(self, page: Page, folder: Path) -> None:
        self.page, self.folder = page, folder
        self.checked: list[str] = []

    def record(self, name: str) -> None:
        check_page(self.page, f"{len(self.checked) + 1:02d}-{name}", self.folder)
        self.checked.append(name)


def emails_to(sink: SinkHandler, address: str) -> list[Received]:
    return [r for r in sink.received if r.rcpt_tos == [address]]


def link_in(received: Received, pattern: str) -> str:
    body = received.message.get_body(("plain",))
    assert body is not None
    match = re.search(pattern, body.get_content())
    assert match, f"no link matching {pattern} in the email"
    return match.group(0)


def deliver(factory: sessionmaker[Session], settings: Settings) -> DeliveryReport:
    # Playwright's sync API keeps an event loop on this thread; the sender wants its own.
    return off_loop(deliver_due, factory, settings)


def status_of(factory: sessionmaker[Session], email: str) -> list[tuple[str, str]]:
    with factory() as session:
        return [(s.status, s.frequency) for s in session.scalars(
            select(Subscription).join(Subscriber).where(Subscriber.email == email)
            .order_by(Subscription.id))]


def votes(factory: sessionmaker[Session]) -> list[bool]:
    with factory() as session:
        return list(session.scalars(select(UsefulVote.useful)))


def test_subscribe_confirm_choose_and_leave_in_a_real_browser(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings], site: Site,
    browser: Browser, artefacts: Path,
) -> None:
    sink, _ = smtp
    settings = site.settings
    with factory.begin() as session:
        for code, name in (("RIV", "Riverside"), ("HIL", "Hillcrest"), ("OLD", "Old Town"),
                           ("NTH", "North Meadows"), ("STA", "Station Quarter")):
            make_ward(session, code, name)
    address = "jo.resident@home.example"

    with open_page(browser) as page:
        pages = Pages(page, artefacts)
        page.goto(f"{site.base_url}/subscribe")
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "Get news from your neighbourhood team")
        pages.record("subscribe")

        page.get_by_role("button", name="Subscribe").click()
        expect(page.locator("#email-error")).to_be_visible()
        pages.record("subscribe-errors")

        page.get_by_label("Find your ward").fill("river")
        page.get_by_role("button", name="Search").click()
        expect(page.get_by_label("Hillcrest")).to_have_count(0)
        pages.record("subscribe-search")
        page.get_by_label("Riverside").check()
        page.get_by_label("Daily").check()
        page.get_by_label("Your email address").fill(address)
        page.get_by_role("button", name="Subscribe").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")
        pages.record("check-your-email")

        assert status_of(factory, address) == [(Status.PENDING, "daily")]
        deliver(factory, settings)
        [confirmation] = emails_to(sink, address)
        link = link_in(confirmation, re.escape(site.base_url) + r"/confirm/\S+")
        page.goto(link)
        expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your subscription")
        expect(page.get_by_role("listitem")).to_have_text(["Riverside"])
        pages.record("confirm")
        assert status_of(factory, address) == [(Status.PENDING, "daily")], \
            "opening the link confirms nothing"
        page.get_by_role("button", name="Confirm my subscription").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("You are subscribed")
        expect(page.get_by_text("A welcome email is on its way")).to_be_visible()
        pages.record("confirmed")
        assert status_of(factory, address) == [(Status.CONFIRMED, "daily")]

        page.goto(link[:-4] + ("abcd" if not link.endswith("abcd") else "dcba"))
        expect(page.get_by_role("heading", level=1)).to_have_text("This link does not work")
        pages.record("link-does-not-work")

        with factory.begin() as session:
            post_urgent(session, settings, ward_code="RIV", title="Road closed tonight",
                        body="The high street is closed from 8pm.", now=utcnow())
        deliver(factory, settings)
        # The welcome the confirmation queued goes in the same round: take the alert.
        [alert] = [r for r in emails_to(sink, address)
                   if "Road closed tonight" in str(r.message["Subject"])]
        base = re.escape(site.base_url)
        page.goto(link_in(alert, base + r"/useful/\S+"))  # the first: "Yes"
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "Was “Road closed tonight” useful to you?")
        expect(page.get_by_label("Yes, it was useful")).to_be_checked()
        pages.record("useful-question")
        assert votes(factory) == [], "opening the link records nothing"
        page.get_by_label("No, it was not useful").check()
        page.get_by_role("button", name="Send my answer").click()
        expect(page.get_by_role("status")).to_have_text("Done: your answer is recorded.")
        expect(page.get_by_text("You said that “Road closed tonight” was not useful.")
               ).to_be_visible()
        pages.record("useful-recorded")
        assert votes(factory) == [False]

        page.goto(link_in(alert, base + r"/preferences/\S+"))
        expect(page.get_by_role("heading", level=1)).to_have_text("Your email preferences")
        pages.record("preferences")
        page.get_by_label("Weekly").check()
        page.get_by_role("button", name="Save my choices").click()
        expect(page.get_by_role("status")).to_contain_text("Your choices are saved")
        pages.record("preferences-saved")
        assert status_of(factory, address) == [(Status.CONFIRMED, "weekly")]

        page.goto(link_in(alert, base + r"/unsubscribe/\S+"))
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "Unsubscribe from Riverside")
        pages.record("unsubscribe")
        page.get_by_role("button", name="Unsubscribe").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("You are unsubscribed")
        pages.record("unsubscribed")
        assert status_of(factory, address) == [(Status.UNSUBSCRIBED, "weekly")]

        # Having left, the resident can still see and erase what is held about them.
        page.goto(f"{site.base_url}/my-data")
        expect(page.get_by_role("heading", level=1)).to_have_text("See or erase your data")
        pages.record("my-data-ask")
        page.get_by_label("Your email address").fill(address)
        page.get_by_role("button", name="Email me a link").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")
        pages.record("my-data-check-your-email")
        deliver(factory, settings)
        page.goto(link_in(emails_to(sink, address)[-1], base + r"/my-data/\S+"))
        expect(page.get_by_role("heading", level=1)).to_have_text("Your data")
        pages.record("my-data")
        with page.expect_download() as download:
            page.get_by_role("link", name="Download my data (JSON)").click()
        held = json.loads(Path(download.value.path()).read_text())
        assert held["subscriber"]["email"] == address
        page.get_by_role("button", name="Erase everything").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Erase your data?")
        pages.record("my-data-erase")
        assert status_of(factory, address), "the first click only asks"
        page.get_by_role("button", name="Yes, erase everything").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Your data is erased")
        pages.record("my-data-erased")
        assert status_of(factory, address) == []

        # Keyboard users can see where they are.
        page.goto(f"{site.base_url}/subscribe")
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline not in ("none", ""), "focus is visible"

    print(f"\nscreenshots of {len(pages.checked)} pages in {artefacts}; axe-core found no "
          f"serious or critical problem on any: {', '.join(pages.checked)}")


def test_check_page_fails_on_serious_accessibility_problems(
    browser: Browser, artefacts: Path,
) -> None:
    """axe-core really runs: a page with critical problems fails, naming rule and element."""
    with open_page(browser) as page:
        page.set_content('<!doctype html><html lang="en"><head><title>Broken</title></head>'
                         '<body><main><h1>Broken</h1><img id="no-alt" src="data:,">'
                         '<button id="empty"></button></main></body></html>')
        with pytest.raises(AssertionError) as failed:
            check_page(page, "broken", artefacts)
        assert page.viewport_size == {"width": 400, "height": 860}
    message = str(failed.value)
    assert "image-alt (critical, phone+desktop)" in message and "#no-alt" in message
    assert "button-name (critical, phone+desktop)" in message and "#empty" in message
    assert (artefacts / "broken-phone.png").is_file()
    assert (artefacts / "broken-desktop.png").is_file()
    print(f"\n{message}")
