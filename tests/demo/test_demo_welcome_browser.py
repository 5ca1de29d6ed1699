"""A newcomer's first subscription, live on the demo: from the front door at `/` in Chromium
to the subscribe page, the confirmation email in the demo's outbox within seconds, its link
followed and its button pressed, and then the welcome email in the outbox within seconds,
saying when the first digest comes and linking to the resident's preferences."""

from __future__ import annotations

import shlex
import subprocess
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.demo.test_demo_links_browser import installed_like_the_readme, links_of
from tests.processes import AlertsProcess, environment, free_port, healthz, wait_for

pytest_plugins = ("tests.browser",)

ADDRESS = "first.timer@home.example"


def mail_to(inbox: Path, address: str, subject: str) -> EmailMessage | None:
    """The demo outbox's email to `address` whose subject starts with `subject`, if any."""
    for path in sorted(inbox.iterdir()):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        if str(message["To"]) == address and str(message["Subject"]).startswith(subject):
            return message
    return None


def test_a_subscription_made_at_the_front_door_brings_the_confirmation_then_the_welcome(
        tmp_path: Path, page: Page) -> None:
    installed_like_the_readme(tmp_path)
    port = free_port()
    demo = subprocess.run([".venv/bin/alerts", "demo", "--dir", "demo-run", "--port", str(port)],
                          cwd=tmp_path, env=environment(), capture_output=True, text=True,
                          timeout=180, check=False)
    assert demo.returncode == 0, demo.stderr
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "run.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(shlex.split(".venv/bin/alerts --config demo-run/alerts.toml "
                                               "run"), cwd=tmp_path, env=environment(),
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=stderr)
    service = AlertsProcess(process, log)
    inbox = tmp_path / "demo-run" / "outbox" / "new"
    try:
        wait_for(lambda: healthz(base), what="/healthz", timeout=30, process=service)
        page.goto(f"{base}/")
        page.get_by_label("Your ward\u2019s name or your postcode").fill("Riverside")
        page.get_by_role("button", name="Find").click()
        page.get_by_label("Riverside").check()
        page.get_by_label("Your email address").fill(ADDRESS)
        page.get_by_role("button", name="Subscribe").click()
        wait_for(lambda: mail_to(inbox, ADDRESS, "Please confirm") is not None,
                 what="the confirmation", timeout=10, process=service)
        confirmation = mail_to(inbox, ADDRESS, "Please confirm")
        assert confirmation is not None
        [confirm_url] = {url for url in links_of(confirmation) if "/confirm/" in url}
        assert confirm_url.startswith(base)

        page.goto(confirm_url)
        page.get_by_role("button", name="Confirm my subscription").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("You are subscribed")
        expect(page.get_by_text("your first digest comes")).to_be_visible()
        expect(page.get_by_text("A welcome email is on its way")).to_be_visible()
        wait_for(lambda: mail_to(inbox, ADDRESS, "Welcome") is not None,
                 what="the welcome", timeout=10, process=service)
        welcome = mail_to(inbox, ADDRESS, "Welcome")
        assert welcome is not None
        assert str(welcome["Subject"]) == "Welcome to neighbourhood alerts for Riverside"
        text = welcome.get_body(("plain",))
        assert text is not None and "your first digest comes" in text.get_content()
        [preferences] = {url for url in links_of(welcome) if "/preferences/" in url}
        response = page.goto(preferences)
        assert response is not None and response.status == 200
        expect(page.get_by_label("Riverside")).to_be_checked()
    finally:
        assert service.stop() == 0, service.output()
