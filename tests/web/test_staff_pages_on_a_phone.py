"""The staff pages on a phone (400 px) in Chromium: none scrolls sideways, the coordinator's
member table shows every column of a member (Status, Joined and Remove included) without a
scroll of its own, and the officer's and the coordinator's previews show the whole email,
not the top of it in a frame. Long names, addresses and words are in the data, as real ones are.

One browser page goes through the officer's pages, then the coordinator's; axe-core and
screenshots of these pages are in tests/web/test_officers_browser.py and
tests/web/test_coordinators_browser.py (the layout checked here is the same at every
width above 400 px). The scheme's printed digest is a PDF, not a page."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.web.app import create_app
from subscriptions.schemes import Scheme
from subscriptions.subscribers import Subscriber, Subscription
from subscriptions.suppression import SuppressionReason, suppress
from subscriptions.wards import Ward
from tests.browser import PHONE, check_page, serve_app
from tests.factories import make_subscriber
from tests.usecases.test_officers import reply
from tests.web.test_officers import OFFICER, PASSWORD, with_passwords

pytest_plugins = ("tests.browser",)

COORDINATOR = "chair@watch.example"
SCHEME = "Mill Lane watch"
# A long address and name: one unbroken word each, as some are.
LONG_EMAIL = "margaret.featherstonehaugh-cholmondeley.household@longdomainname.example"
LONG_WORDS = ("See https://www.police.example/news/2026/12/mill-lane-patrols-and-bike-marking"
              "-at-the-library-" + "x" * 60 + " for the details.")


def sign_in(page: Page, base: str, email: str) -> None:
    page.goto(f"{base}/staff/sign-in")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def width_of(page: Page) -> int:
    width: int = page.evaluate("document.scrollingElement.scrollWidth")
    return width


def preview_cut(page: Page) -> int:
    """How much of the previewed email its box hides (px): scrolled out of sight in a frame
    or a box of a fixed height, rather than shown on the page."""
    cut: int = page.evaluate("""() => {
      const box = document.querySelector('.preview');
      const frame = box.querySelector('iframe');
      const shown = frame ? frame.contentDocument.scrollingElement : box;
      return Math.max(0, shown.scrollHeight - shown.clientHeight,
                      shown.scrollWidth - shown.clientWidth);
    }""")
    return cut


def test_no_staff_page_scrolls_sideways_at_400_px(
    factory: sessionmaker[Session], settings: Settings, page: Page, artefacts: Path,
) -> None:
    world = with_passwords(factory)
    thread = reply(factory, settings, world.riv_delivery, text=LONG_WORDS)
    with factory.begin() as session:
        riverside = session.scalars(select(Ward).where(Ward.code == "RIV")).one()
        make_subscriber(session, riverside, LONG_EMAIL,
                        name="Margaret Featherstonehaugh-Cholmondeley").scheme = SCHEME
        make_subscriber(session, riverside, "pat@home.example", name="Pat").scheme = SCHEME
        scheme = session.scalars(select(Scheme).where(Scheme.name == SCHEME)).one().id
        member = session.scalars(select(Subscription.id).join(Subscriber)
                                 .where(Subscriber.email == LONG_EMAIL)).one()
    too_wide: dict[str, int] = {}

    def visit(name: str, path: str | None = None) -> None:
        if path is not None:
            page.goto(f"{base}{path}")
        page.set_viewport_size(PHONE)
        width = width_of(page)
        if width > PHONE["width"]:
            too_wide[name] = width

    with serve_app(create_app(factory, settings=settings)) as base:
        visit("sign-in", "/staff/sign-in")
        visit("reset", "/staff/reset")
        sign_in(page, base, OFFICER)
        for name, path in (
                ("overview", "/staff/"), ("ward", "/staff/wards/RIV/"),
                ("post-form", "/staff/wards/RIV/post"), ("digest", "/staff/wards/RIV/digest"),
                ("sources", "/staff/wards/RIV/sources"),
                ("replies", "/staff/wards/RIV/replies"),
                ("thread", f"/staff/wards/RIV/replies/{thread}"),
                ("officer-schemes", "/staff/schemes/")):
            visit(name, path)
        page.goto(f"{base}/staff/wards/RIV/post")
        page.get_by_label("Title").fill("Bikes marked at the library")
        page.get_by_label("What residents will read").fill(LONG_WORDS)
        page.get_by_role("button", name="Preview").click()
        expect(page.locator(".preview")).to_be_attached()  # the preview page has loaded
        visit("post-preview")
        cut = preview_cut(page)
        check_page(page, "post-preview", artefacts)
        page.get_by_role("button", name="Sign out").click()

        sign_in(page, base, COORDINATOR)
        for name, path in (
                ("schemes", "/staff/schemes/"), ("scheme", f"/staff/schemes/{scheme}"),
                ("import", f"/staff/schemes/{scheme}/import"),
                ("bounces", f"/staff/schemes/{scheme}/bounces"),
                ("remove", f"/staff/schemes/{scheme}/members/{member}/remove"),
                ("message", f"/staff/schemes/{scheme}/message")):
            visit(name, path)
        page.get_by_label("Subject").fill("Bin day moves to Tuesday")
        page.get_by_label("Message").fill(LONG_WORDS)
        page.get_by_role("button", name="Preview the email").click()
        expect(page.locator(".preview")).to_be_attached()  # the preview page has loaded
        visit("message-preview")
        cut += preview_cut(page)
    assert (too_wide, cut) == ({}, 0), (
        f"scroll sideways at {PHONE['width']} px: {too_wide}; "
        f"the post and message previews hide {cut} px of their emails")


def test_the_member_and_bounce_tables_show_every_column_on_a_phone(
    factory: sessionmaker[Session], page: Page, artefacts: Path,
) -> None:
    with_passwords(factory)
    with factory.begin() as session:
        riverside = session.scalars(select(Ward).where(Ward.code == "RIV")).one()
        make_subscriber(session, riverside, LONG_EMAIL,
                        name="Margaret Featherstonehaugh-Cholmondeley").scheme = SCHEME
        make_subscriber(session, riverside, "pat@home.example", name="Pat").scheme = SCHEME
        suppress(session, "pat@home.example", SuppressionReason.HARD_BOUNCE,
                 "hard bounce: mailbox does not exist (5.1.1)")
        scheme = session.scalars(select(Scheme).where(Scheme.name == SCHEME)).one().id
    with serve_app(create_app(factory, settings=Settings())) as base:
        sign_in(page, base, COORDINATOR)
        page.goto(f"{base}/staff/schemes/{scheme}")
        page.set_viewport_size(PHONE)
        row = page.get_by_role("row").filter(has_text=LONG_EMAIL)
        # Scrolled to, as a person would: down the page, not along the row.
        row.evaluate("row => window.scrollTo(0, row.getBoundingClientRect().top + scrollY - 8)")
        for shown in (row.get_by_role("cell", name="confirmed"),
                      row.get_by_role("cell").filter(has_text="2026"),
                      row.get_by_role("link", name="Remove Margaret Featherstonehaugh")):
            expect(shown).to_be_in_viewport(ratio=1)
        check_page(page, "scheme-members", artefacts)
        page.goto(f"{base}/staff/schemes/{scheme}/bounces")
        page.set_viewport_size(PHONE)
        bounced = page.get_by_role("row").filter(has_text="pat@home.example")
        bounced.evaluate("row => window.scrollTo(0, row.getBoundingClientRect().top + scrollY)")
        for shown in (bounced.get_by_role("cell").filter(has_text="mailbox does not exist"),
                      bounced.get_by_role("cell").filter(has_text="2026")):
            expect(shown).to_be_in_viewport(ratio=1)
        check_page(page, "scheme-bounces", artefacts)
        page.goto(f"{base}/staff/schemes/{scheme}")
        row.get_by_role("link", name="Remove Margaret Featherstonehaugh").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text(
            "Remove Margaret Featherstonehaugh-Cholmondeley from Mill Lane watch?")
