"""The residents' journey in a real browser: Debian's Chromium driven by Playwright against
the web app on a loopback port, with the confirmation email read from an SMTP sink.

subscribe → confirmation email → confirm → change frequency → unsubscribe, with a
screenshot of each page (phone and desktop widths) under the test's temporary folder, and an
axe-core accessibility check of each page when axe-core can be had (`ALERTS_AXE_JS` names a
copy of axe.min.js; otherwise it is fetched with `npm pack axe-core`). The browser is never
downloaded: without /usr/bin/chromium the test is skipped.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import tarfile
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import ViewportSize, expect, sync_playwright
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.config import Settings
from alerts.delivery.sender import DeliveryReport, deliver_due
from alerts.urgent import post_urgent
from alerts.web.app import create_app
from subscriptions.base import utcnow
from subscriptions.subscribers import Status, Subscriber, Subscription
from tests.factories import make_ward
from tests.processes import free_port, wait_for
from tests.servers import Received, SinkHandler

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PHONE: ViewportSize = {"width": 400, "height": 860}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
# axe-core's own scale; "serious" and "critical" fail the test.
BLOCKING = {"serious", "critical"}

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not "
                                "installed (.ci/run installs it)")


@pytest.fixture(scope="session")
def axe_js(tmp_path_factory: pytest.TempPathFactory) -> str | None:
    """axe.min.js, or None (with a warning) when it cannot be had here."""
    named = os.environ.get("ALERTS_AXE_JS")
    if named:
        return Path(named).read_text(encoding="utf-8")
    npm = shutil.which("npm")
    if npm is None:
        warnings.warn("no axe-core (no npm, ALERTS_AXE_JS unset): accessibility not checked",
                      stacklevel=1)
        return None
    folder = tmp_path_factory.mktemp("axe")
    try:
        packed = subprocess.run([npm, "pack", "axe-core@4", "--silent"], cwd=folder,
                                capture_output=True, text=True, timeout=120, check=True)
        archive = folder / packed.stdout.strip().splitlines()[-1]
        with tarfile.open(archive) as tar:
            member = tar.extractfile("package/axe.min.js")
            assert member is not None
            return member.read().decode("utf-8")
    except (subprocess.SubprocessError, OSError, KeyError, IndexError) as exc:
        warnings.warn(f"axe-core could not be fetched ({exc}): accessibility not checked",
                      stacklevel=1)
        return None


@dataclasses.dataclass
class Site:
    base_url: str
    settings: Settings


@pytest.fixture
def site(factory: sessionmaker[Session],
         smtp: tuple[SinkHandler, Settings]) -> Iterator[Site]:
    """The web app served by uvicorn on a free loopback port; emailed links point at it."""
    _, settings = smtp
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    settings = dataclasses.replace(settings, web=dataclasses.replace(settings.web,
                                                                     base_url=base_url))
    server = uvicorn.Server(uvicorn.Config(create_app(factory, settings=settings),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, what="the web server to start")
    try:
        yield Site(base_url, settings)
    finally:
        server.should_exit = True
        thread.join(10)


class Pages:
    """Screenshots and accessibility checks of each page the journey reaches."""

    def __init__(self, page: Any, folder: Path, axe: str | None) -> None:
        self.page, self.folder, self.axe = page, folder, axe
        self.shots: list[Path] = []
        self.violations: dict[str, list[str]] = {}
        self.checked: list[str] = []

    def record(self, name: str) -> None:
        for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
            self.page.set_viewport_size(size)
            path = self.folder / f"{len(self.shots) // 2 + 1:02d}-{name}-{label}.png"
            self.page.screenshot(path=str(path), full_page=True)
            self.shots.append(path)
        self.page.set_viewport_size(PHONE)
        if self.axe is None:
            return
        if not self.page.evaluate("typeof window.axe !== 'undefined'"):
            self.page.add_script_tag(content=self.axe)
        results = self.page.evaluate("async () => await axe.run(document)")
        self.checked.append(name)
        serious = [f"{v['id']} ({v['impact']}): {v['help']}" for v in results["violations"]
                   if v["impact"] in BLOCKING]
        if serious:
            self.violations[name] = serious


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
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(deliver_due, factory, settings).result()


def status_of(factory: sessionmaker[Session], email: str) -> list[tuple[str, str]]:
    with factory() as session:
        return [(s.status, s.frequency) for s in session.scalars(
            select(Subscription).join(Subscriber).where(Subscriber.email == email)
            .order_by(Subscription.id))]


def test_subscribe_confirm_choose_and_leave_in_a_real_browser(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings], site: Site,
    tmp_path: Path, axe_js: str | None,
) -> None:
    sink, _ = smtp
    settings = site.settings
    with factory.begin() as session:
        for code, name in (("RIV", "Riverside"), ("HIL", "Hillcrest"), ("OLD", "Old Town"),
                           ("NTH", "North Meadows"), ("STA", "Station Quarter")):
            make_ward(session, code, name)
    folder = Path(os.environ.get("ALERTS_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    address = "jo.resident@home.example"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        # axe is injected as an inline script, which the pages' CSP rightly forbids.
        context = browser.new_context(viewport=PHONE, bypass_csp=True, locale="en-GB")
        page = context.new_page()
        pages = Pages(page, folder, axe_js)
        try:
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
            expect(page.get_by_role("heading", level=1)).to_have_text("You are subscribed")
            pages.record("confirmed")
            assert status_of(factory, address) == [(Status.CONFIRMED, "daily")]

            page.goto(link[:-4] + "abcd")
            expect(page.get_by_role("heading", level=1)).to_have_text("This link does not work")
            pages.record("link-does-not-work")

            with factory.begin() as session:
                post_urgent(session, settings, ward_code="RIV", title="Road closed tonight",
                            body="The high street is closed from 8pm.", now=utcnow())
            deliver(factory, settings)
            alert = emails_to(sink, address)[-1]
            base = re.escape(site.base_url)
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
            expect(page.get_by_role("heading", level=1)).to_have_text("Your data is erased")
            pages.record("my-data-erased")
            assert status_of(factory, address) == []

            # Keyboard users can see where they are.
            page.goto(f"{site.base_url}/subscribe")
            page.keyboard.press("Tab")
            page.keyboard.press("Tab")
            outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
            assert outline not in ("none", ""), "focus is visible"
        finally:
            context.close()
            browser.close()

    print(f"\nscreenshots of {len(pages.shots)} page views in {folder}")
    if axe_js is None:
        print("axe-core not available: accessibility not checked")
    else:
        print(f"axe-core checked {len(pages.checked)} pages: {', '.join(pages.checked)}")
    assert not pages.violations, f"serious accessibility problems: {pages.violations}"
