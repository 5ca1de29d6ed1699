"""A coordinator's pages in a real browser: Debian's Chromium driven by Playwright against the
web app on a loopback port, the message read back from an SMTP sink.

sign in → the scheme list → the scheme's page (add a member: the error summary, then done)
→ import a file with bad lines → who bounced → remove a member (asked first) → write a
message → preview the real email → send → delivered to the scheme's confirmed members only.
And a resident's side: the invitation's link opens a page whose button joins the scheme.
Each page is screenshotted at phone and desktop widths into the test's artefacts folder and
checked with axe-core (tests/browser.py: check_page fails on a serious or critical problem).
Every form is an ordinary HTML form: the pages serve no JavaScript (their CSP allows none).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.accounts.users import Role, add_user
from alerts.core.config import Settings
from alerts.core.db import transaction
from alerts.delivery.outbox import Delivery
from alerts.delivery.sender import deliver_due
from alerts.mail.messages import Message
from alerts.web.app import create_app
from subscriptions.schemes import add_scheme
from subscriptions.subscribers import Subscriber, Subscription
from subscriptions.suppression import SuppressionReason, suppress
from tests.browser import check_page, off_loop, open_page, serve_app, served_settings
from tests.factories import make_subscriber, make_ward
from tests.servers import SinkHandler

pytest_plugins = ("tests.browser",)  # the browser and artefacts fixtures

PASSWORD = "correct horse battery staple"
MEMBERS_CSV = (
    "email,name,frequency\n"
    "gil@home.example,Gil Green,weekly\n"
    "not-an-address,Nobody,weekly\n"
    "hal@home.example,Hal,fortnightly\n"
    "dan@home.example,Dan,weekly\n"
    "ivy@home.example,Ivy Irwin,daily\n"
)


@dataclasses.dataclass
class Site:
    base_url: str
    settings: Settings
    mill_lane: int


@pytest.fixture
def site(factory: sessionmaker[Session],
         smtp: tuple[SinkHandler, Settings]) -> Iterator[Site]:
    """Two schemes in Riverside, Jo coordinating one; the app on a free loopback port."""
    _, settings = smtp
    settings, port = served_settings(settings)
    base_url = settings.web.base_url
    with transaction(factory) as session:
        riverside = make_ward(session, "RIV", "Riverside")
        mill = add_scheme(session, "Mill Lane Watch", "RIV")
        church = add_scheme(session, "Church Street Watch", "RIV")
        for email, name, scheme, confirmed in (
            ("ann@home.example", "Ann Archer", mill.name, True),
            ("bob@home.example", "Bob Baker", mill.name, True),
            ("cat@home.example", "", mill.name, False),
            ("dan@home.example", "Dan Dale", church.name, True),
        ):
            make_subscriber(session, riverside, email, name=name,
                            confirmed=confirmed).scheme = scheme
        make_subscriber(session, riverside, "eve@home.example")  # the ward, no scheme
        suppress(session, "bob@home.example", SuppressionReason.HARD_BOUNCE,
                 "hard bounce: mailbox does not exist (5.1.1)")
        add_user(session, "jo@watch.example", Role.COORDINATOR, scheme_names=[mill.name],
                 name="Jo Lane", password=PASSWORD)
        mill_lane = mill.id
    with serve_app(create_app(factory, settings=settings), port) as served:
        assert served == base_url
        yield Site(base_url, settings, mill_lane)


class Pages:
    """Each page reached, screenshotted and checked in order (01-schemes…)."""

    def __init__(self, page: Page, folder: Path) -> None:
        self.page, self.folder = page, folder
        self.checked: list[str] = []

    def record(self, name: str) -> None:
        check_page(self.page, f"{len(self.checked) + 1:02d}-{name}", self.folder)
        self.checked.append(name)


def test_a_coordinator_keeps_and_messages_their_scheme_in_a_real_browser(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings], site: Site,
    browser: Browser, artefacts: Path, tmp_path: Path,
) -> None:
    sink, _ = smtp
    members_file = tmp_path / "members.csv"
    members_file.write_text(MEMBERS_CSV)
    with open_page(browser) as page:
        pages = Pages(page, artefacts)
        page.goto(f"{site.base_url}/staff/schemes/")
        page.get_by_label("Email address").fill("jo@watch.example")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()

        expect(page.get_by_role("heading", level=1)).to_have_text(
            "Your Neighbourhood Watch schemes")
        expect(page.get_by_role("link", name="Church Street Watch")).to_have_count(0)
        pages.record("schemes")

        page.get_by_role("link", name="Mill Lane Watch").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Mill Lane Watch")
        expect(page.get_by_role("cell", name="suppressed")).to_have_count(1)
        pages.record("scheme")

        page.get_by_label("Email address").fill("kit@home.example")
        page.get_by_role("button", name="Add to Mill Lane Watch").click()
        expect(page.get_by_role("alert")).to_contain_text(
            "Confirm that the resident asked to join the scheme")
        pages.record("scheme-add-error")
        page.get_by_label("I confirm:").check()
        page.get_by_role("button", name="Add to Mill Lane Watch").click()
        expect(page.get_by_role("status")).to_contain_text(
            "If this address can join the scheme, we have sent it an invitation.")
        expect(page.get_by_role("cell", name="kit@home.example", exact=True)).to_have_count(0)
        pages.record("scheme-added")

        page.get_by_role("link", name="Import a file").click()
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "Import members into Mill Lane Watch")
        pages.record("import")
        page.get_by_label("CSV file").set_input_files(members_file)
        page.get_by_label("I confirm, for everyone in the file:").check()
        page.get_by_label("Everyone in the file already gave their consent in writing").check()
        page.get_by_role("button", name="Import").click()
        expect(page.get_by_role("status")).to_contain_text("3 addresses read.")
        skipped = page.get_by_role("alert")
        expect(skipped).to_contain_text("2 lines skipped")
        expect(skipped).to_contain_text("Line 3: email 'not-an-address' is not a valid")
        expect(skipped).to_contain_text("Line 4: frequency 'fortnightly'")
        expect(skipped).not_to_contain_text("Line 5")
        pages.record("import-bad-lines")

        page.get_by_role("link", name="Who bounced").click()
        expect(page.get_by_role("cell", name="bob@home.example", exact=True)).to_be_visible()
        expect(page.get_by_text("mailbox does not exist (5.1.1)")).to_be_visible()
        pages.record("bounces")

        page.get_by_role("link", name="Members", exact=True).click()
        page.get_by_role("link", name="Remove Ann Archer").click()
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "Remove Ann Archer from Mill Lane Watch?")
        pages.record("remove")
        page.get_by_role("link", name="No, go back to the members").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Mill Lane Watch")

        page.get_by_role("link", name="Message your members").click()
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "Message the members of Mill Lane Watch")
        pages.record("message")
        page.get_by_label("Subject").fill("Bin day moves to Tuesday")
        page.get_by_label("Message").fill(
            "From next week the bins go out on Tuesday.\n\nThanks,\nJo")
        page.get_by_role("button", name="Preview the email").click()
        expect(page.get_by_role("heading", level=1).first).to_have_text(  # then the email's
            "Check your message before it is sent")
        email = page.get_by_role("region", name="The email as members will see it")
        expect(email.get_by_text("From next week the bins go out on Tuesday.")).to_be_visible()
        expect(email.get_by_text("This email is not the way to report a crime")).to_be_visible()
        pages.record("message-preview")

        page.get_by_role("button", name="Send to 3 members").click()
        expect(page.get_by_role("status")).to_contain_text(
            "Your message is on its way to 3 members.")
        pages.record("message-sent")

    report = off_loop(deliver_due, factory, site.settings)
    assert report.sent >= 3
    scheme_mail = [r for r in sink.received
                   if r.message["Subject"] == "Mill Lane Watch: Bin day moves to Tuesday"]
    assert sorted(r.rcpt_tos[0] for r in scheme_mail) == [
        "ann@home.example", "gil@home.example", "ivy@home.example"]
    text = scheme_mail[0].message.get_body(("plain",))
    assert text is not None
    # The paragraphs and line breaks typed in the browser survive the preview and the send.
    assert "From next week the bins go out on Tuesday.\n\nThanks,\nJo" \
        in text.get_content().replace("\r\n", "\n")
    with factory() as session:
        kit = session.scalars(select(Subscription).join(Subscriber)
                              .where(Subscriber.email == "kit@home.example")).one()
        assert (kit.status, kit.consent_method) == ("pending", "coordinator")
    print(f"\nscreenshots of {len(pages.checked)} pages in {artefacts}; axe-core found no "
          f"serious or critical problem on any: {', '.join(pages.checked)}")


def test_a_resident_accepts_a_schemes_invitation_in_a_real_browser(
    factory: sessionmaker[Session], site: Site, browser: Browser, artefacts: Path,
) -> None:
    """Jo adds Eve, who subscribed on her own: she is emailed an invitation, and its link
    opens a page (checked at phone and desktop widths) whose one button joins the scheme."""
    with open_page(browser) as page:
        page.goto(f"{site.base_url}/staff/schemes/")
        page.get_by_label("Email address").fill("jo@watch.example")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.goto(f"{site.base_url}/staff/schemes/{site.mill_lane}")
        page.get_by_label("Email address").fill("eve@home.example")
        page.get_by_label("I confirm:").check()
        page.get_by_role("button", name="Add to Mill Lane Watch").click()
        expect(page.get_by_role("status")).to_contain_text("If this address can join")
    with factory() as session:
        [text] = session.scalars(select(Message.text).join(Delivery).join(
            Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Subscriber.email == "eve@home.example"))
    link = next(word for word in text.split() if "/scheme-invitation/" in word)
    assert link.startswith(f"{site.base_url}/scheme-invitation/")

    with open_page(browser) as page:  # Eve's own browser, at phone width
        pages = Pages(page, artefacts)
        page.goto(link)
        expect(page.get_by_role("heading", level=1)).to_have_text("Join Mill Lane Watch")
        pages.record("invitation")
        page.get_by_role("button", name="Join Mill Lane Watch").click()
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "You have joined Mill Lane Watch")
        expect(page.get_by_role("status")).to_contain_text("Its coordinator can now see")
        pages.record("invitation-accepted")
        page.goto(f"{site.base_url}/scheme-invitation/not-a-real-token")
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "This invitation cannot be used")
        pages.record("invitation-invalid")
    with factory() as session:
        eve = session.scalars(select(Subscription).join(Subscriber)
                              .where(Subscriber.email == "eve@home.example")).one()
        assert (eve.scheme, eve.status) == ("Mill Lane Watch", "confirmed")
