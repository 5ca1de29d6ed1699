"""The officer's journey in Chromium (Playwright), without JavaScript of our own: sign in,
the overview, a ward, a post with its preview (the real email in a sandboxed frame), an
urgent alert through its confirmation, the digest preview, the sources, the replies inbox and
a conversation answered; and a forgotten password reset by its emailed link. Every page gets
screenshots at phone and desktop widths and an axe-core check (tests/browser.py).
"""

from __future__ import annotations

import mailbox
import re
from pathlib import Path

from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.delivery.sender import deliver_due
from alerts.sources.items import Item, ItemKind
from alerts.web.app import create_app
from tests.browser import check_page, off_loop, serve_app, served_settings
from tests.servers import SinkHandler
from tests.usecases.test_officers import RESIDENT, RESIDENT_WORDS, reply
from tests.web.test_officers import OFFICER, PASSWORD, with_passwords

pytest_plugins = ("tests.browser",)


def sign_in(page: Page, email: str = OFFICER, password: str = PASSWORD) -> None:
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_an_officer_posts_sends_an_urgent_alert_and_answers_a_reply_in_a_browser(
        factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings], page: Page,
        artefacts: Path) -> None:
    sink, settings = smtp
    settings, port = served_settings(settings)
    world = with_passwords(factory)
    thread_id = reply(factory, settings, world.riv_delivery)
    with serve_app(create_app(factory, settings=settings), port) as base:
        page.goto(f"{base}/staff/")
        expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
        check_page(page, "sign-in", artefacts)
        sign_in(page, password="not my password")
        expect(page.get_by_role("alert")).to_contain_text("is not right")
        check_page(page, "sign-in-error", artefacts)
        sign_in(page)

        expect(page.get_by_role("heading", level=1)).to_have_text("Your wards")
        check_page(page, "overview", artefacts)
        page.get_by_role("link", name="Riverside").first.click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Riverside")
        check_page(page, "ward", artefacts)

        page.get_by_role("link", name="Team update").click()
        check_page(page, "post-form", artefacts)
        page.get_by_role("button", name="Preview").click()
        expect(page.get_by_role("alert")).to_contain_text("Enter a title")
        check_page(page, "post-form-errors", artefacts)
        page.get_by_label("Title").fill("Bikes marked at the library")
        page.get_by_label("What residents will read").fill(
            "We marked 40 bikes on Saturday.\n\nThank you to everyone who came.")
        page.get_by_role("button", name="Preview").click()
        # The email is in the page (a shadow root, which locators enter), not in a frame.
        frame = page.get_by_role("region", name="The email as residents will see it")
        expect(frame.get_by_text("We marked 40 bikes on Saturday.")).to_be_visible()
        expect(frame.get_by_text("call 999").first).to_be_visible()
        check_page(page, "post-preview", artefacts)
        page.get_by_role("button", name="Publish").click()
        expect(page.get_by_role("status")).to_contain_text("Published")

        page.get_by_role("link", name="Contact session").click()
        expect(page.get_by_label("Starts")).to_be_visible()
        check_page(page, "session-form", artefacts)

        page.goto(f"{base}/staff/wards/RIV/post?kind=alert")
        page.get_by_label("Title").fill("Mill Lane closed tonight")
        page.get_by_label("What residents will read").fill(
            "Avoid Mill Lane until midnight: a burst water main.")
        page.get_by_role("button", name="Preview and confirm").click()
        expect(page.get_by_role("heading", level=1).first).to_have_text(  # then the email's
            "Send this urgent alert to Riverside?")
        expect(frame.get_by_text("a burst water main")).to_be_visible()
        check_page(page, "urgent-confirmation", artefacts)
        page.get_by_role("button", name="Send the urgent alert now").click()
        expect(page.get_by_role("status")).to_contain_text("queued for 1 subscriber")

        page.get_by_role("link", name="Next digest", exact=True).click()
        expect(page.get_by_role("region", name="The next digest as residents will see it")
               .get_by_text("Bikes marked at the library").first).to_be_visible()
        check_page(page, "digest-preview", artefacts)
        page.get_by_role("link", name="Sources", exact=True).click()
        check_page(page, "sources", artefacts)

        page.get_by_role("link", name=re.compile(r"^Replies")).click()
        expect(page.get_by_text(RESIDENT_WORDS)).to_be_visible()
        check_page(page, "replies", artefacts)
        page.get_by_role("link", name=re.compile("Ann Example")).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "Conversation with Ann Example")
        check_page(page, "thread", artefacts)
        page.get_by_role("button", name="Send the answer").click()
        expect(page.get_by_role("alert")).to_contain_text("Write your answer")
        check_page(page, "thread-error", artefacts)
        page.get_by_label("Your answer").fill("Yes: 10 till 12 at the library. Bring some ID.")
        page.get_by_role("button", name="Send the answer").click()
        expect(page.get_by_role("status")).to_contain_text("on its way")
        check_page(page, "thread-answered", artefacts)
        assert page.url.endswith(f"/staff/wards/RIV/replies/{thread_id}?done=answered")

        page.goto(f"{base}/staff/wards/HIL/")
        expect(page.get_by_role("heading", level=1)).to_have_text("You cannot do that")
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")

    with factory() as session:
        # The text went through the preview's hidden fields with its paragraphs intact.
        post = session.scalars(select(Item).where(Item.kind == ItemKind.POST)).one()
        assert post.body_html.count("<p>") == 2
    off_loop(deliver_due, factory, settings)
    subjects = {r.message["Subject"] for r in sink.received if r.rcpt_tos == [RESIDENT]}
    assert {"Bikes marked at the library (Riverside)",
            "[Urgent] Mill Lane closed tonight (Riverside)",
            "Re: Riverside: your news"} <= subjects


def test_a_forgotten_password_is_reset_in_a_browser(
        factory: sessionmaker[Session], settings: Settings, page: Page,
        artefacts: Path) -> None:
    settings, port = served_settings(settings)
    with_passwords(factory)
    with serve_app(create_app(factory, settings=settings), port) as base:
        page.goto(f"{base}/staff/sign-in")
        page.get_by_role("link", name=re.compile("Forgotten your password")).click()
        check_page(page, "reset-request", artefacts)
        page.get_by_label("Email address").fill(OFFICER)
        page.get_by_role("button", name="Email me a link").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")
        check_page(page, "reset-sent", artefacts)

        off_loop(deliver_due, factory, settings)  # as the delivery loop of `alerts run` does
        (mail,) = list(mailbox.Maildir(Path(settings.mail.maildir), create=False))
        body = mail.get_payload(decode=True).decode()
        link = re.search(r"http://127\.0\.0\.1:\d+/staff/reset/\S+", body)
        assert link
        page.goto(link.group(0))
        check_page(page, "reset-choose", artefacts)
        page.get_by_label("New password").fill("a whole new passphrase")
        page.get_by_label("The same password again").fill("a whole new passphrase!")
        page.get_by_role("button", name="Save the new password").click()
        expect(page.get_by_role("alert")).to_contain_text("not the same")
        check_page(page, "reset-choose-error", artefacts)
        page.get_by_label("New password").fill("a whole new passphrase")
        page.get_by_label("The same password again").fill("a whole new passphrase")
        page.get_by_role("button", name="Save the new password").click()
        expect(page.get_by_role("status")).to_contain_text("Your password is changed")
        sign_in(page, password="a whole new passphrase")
        expect(page.get_by_role("heading", level=1)).to_have_text("Your wards")

        page.goto(link.group(0))
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "That link no longer works")
        check_page(page, "reset-invalid", artefacts)
        page.goto(f"{base}/staff/wards/NOWHERE/")
        check_page(page, "not-found", artefacts)


def test_an_officer_adds_a_scheme_in_a_browser(
        factory: sessionmaker[Session], settings: Settings, page: Page, artefacts: Path) -> None:
    settings, port = served_settings(settings)
    with_passwords(factory)
    with serve_app(create_app(factory, settings=settings), port) as base:
        page.goto(f"{base}/staff/schemes/")
        sign_in(page)
        page.goto(f"{base}/staff/schemes/")
        expect(page.get_by_role("heading", name="Add a scheme")).to_be_visible()
        check_page(page, "officer-schemes", artefacts)
        page.get_by_role("button", name="Add the scheme").click()
        expect(page.get_by_role("alert")).to_contain_text("There is a problem")
        check_page(page, "officer-schemes-errors", artefacts)
        page.get_by_label("Name of the scheme").fill("Orchard Close Watch")
        page.get_by_label("Coordinator's email address").fill("pat@home.example")
        page.get_by_role("button", name="Add the scheme").click()
        expect(page.get_by_role("status")).to_contain_text("Scheme added")
        check_page(page, "officer-scheme-added", artefacts)
