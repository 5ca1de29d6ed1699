"""The demo runs live: the README's first command, then the command the demo prints; a
newcomer's subscription made at the front door brings the confirmation and, once confirmed in
Chromium, the welcome email into the demo's outbox within seconds; and every kind of link in
the demo's emails opens its page on the service that started."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import Page, expect

from tests.processes import AlertsProcess, environment, free_port, healthz, wait_for

pytest_plugins = ("tests.browser",)

LINK = re.compile(r"https?://[^\s<>\"')\]]+")
# A path segment that is a signed token rather than a name.
TOKEN = re.compile(r"[A-Za-z0-9_.=-]{16,}")


def installed_like_the_readme(folder: Path) -> None:
    """`folder/.venv/bin/alerts`, the script README's first command installs, as a link to
    this test run's own script, so that the demo is run as a newcomer runs it."""
    script = folder / ".venv" / "bin" / "alerts"
    script.parent.mkdir(parents=True)
    script.symlink_to(Path(sys.executable).with_name("alerts"))


def links_of(message: EmailMessage) -> list[str]:
    texts = [str(message["List-Unsubscribe"] or "")]
    texts += [part.get_content() for part in message.walk()
              if part.get_content_maintype() == "text"]
    return [link.rstrip(".,;") for text in texts for link in LINK.findall(text)]


def mail_to(inbox: Path, address: str, subject: str) -> EmailMessage | None:
    """The demo outbox's email to `address` whose subject starts with `subject`, if any."""
    for path in sorted(inbox.iterdir()):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        [recipient] = message["To"].addresses
        if recipient.addr_spec == address and str(message["Subject"]).startswith(subject):
            return message
    return None


def kind_of(url: str) -> str:
    """The link's kind: its path with tokens named, and a vote's answer (yes or no)."""
    kind = []
    for segment in urlsplit(url).path.split("/"):
        if TOKEN.fullmatch(segment):
            # A vote's token reads BALLOT.ITEM.ANSWER.SIGNATURE...
            answer = segment.split(".")[2] if kind == ["", "useful"] else ""
            segment = f"TOKEN{':' + answer if answer else ''}"
        kind.append(segment)
    return "/".join(kind)


def test_a_newcomer_subscribes_at_the_front_door_and_every_link_in_the_demo_emails_opens(
        tmp_path: Path, page: Page) -> None:
    installed_like_the_readme(tmp_path)
    port = free_port()
    demo = subprocess.run([".venv/bin/alerts", "demo", "--dir", "demo-run", "--port", str(port)],
                          cwd=tmp_path, env=environment(), capture_output=True, text=True,
                          timeout=180, check=False)
    assert demo.returncode == 0, demo.stderr
    lines = [line.strip() for line in demo.stdout.splitlines()]
    # The demo says what to type next, as it was installed, and the command works.
    assert ".venv/bin/alerts --config demo-run/alerts.toml run" in lines
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "run.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(shlex.split(".venv/bin/alerts --config demo-run/alerts.toml "
                                               "run"), cwd=tmp_path, env=environment(),
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=stderr)
    service = AlertsProcess(process, log)
    try:
        wait_for(lambda: healthz(base), what="/healthz", timeout=30, process=service)
        # What a person does on the pages the demo names reaches the demo's inbox at once.
        inbox = tmp_path / "demo-run" / "outbox" / "new"
        newcomer = "new.neighbour@home.example"
        page.goto(f"{base}/")
        page.get_by_label("Your ward\u2019s name or your postcode").fill("Riverside")
        page.get_by_role("button", name="Find").click()
        page.get_by_label("Riverside").check()
        page.get_by_label("Your email address").fill(newcomer)
        page.get_by_role("button", name="Subscribe").click()
        confirmation = wait_for(lambda: mail_to(inbox, newcomer, "Please confirm"),
                                what="the confirmation", timeout=10, process=service)
        [confirm_url] = {url for url in links_of(confirmation) if "/confirm/" in url}
        page.goto(confirm_url)
        page.get_by_role("button", name="Confirm my subscription").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("You are subscribed")
        expect(page.get_by_text("your first digest comes")).to_be_visible()
        expect(page.get_by_text("A welcome email is on its way")).to_be_visible()
        welcome = wait_for(lambda: mail_to(inbox, newcomer, "Welcome"),
                           what="the welcome", timeout=10, process=service)
        assert str(welcome["Subject"]) == "Welcome to neighbourhood alerts for Riverside"
        text = welcome.get_body(("plain",))
        assert text is not None and "your first digest comes" in text.get_content()
        [preferences] = {url for url in links_of(welcome) if "/preferences/" in url}
        page.goto(preferences)
        expect(page.get_by_label("Riverside")).to_be_checked()

        page.goto(f"{base}/my-data")
        resident = "amira.hassan@home.example"
        page.get_by_label("Your email address").fill(resident)
        page.get_by_role("button", name="Email me a link").click()
        wait_for(lambda: mail_to(inbox, resident, "Your neighbourhood alerts data"),
                 what="the my-data link", timeout=10, process=service)
        by_kind: dict[str, str] = {}
        one_click: set[str] = set()
        for path in sorted(inbox.iterdir()):
            message = message_from_bytes(path.read_bytes(), policy=policy.default)
            assert isinstance(message, EmailMessage)
            one_click.update(LINK.findall(str(message["List-Unsubscribe"] or "")))
            for url in links_of(message):
                if url.startswith("https://alerts.example.org"):
                    raise AssertionError(f"{path.name} links to the dead {url}")
                if url.startswith(base):
                    by_kind.setdefault(kind_of(url), url)
        assert {"/confirm/TOKEN", "/my-data/TOKEN", "/preferences/TOKEN", "/unsubscribe/TOKEN",
                "/useful/TOKEN:y", "/useful/TOKEN:n", "/wards/", "/wards/RIV/"} <= set(by_kind), \
            sorted(by_kind)
        for kind, url in sorted(by_kind.items()):
            response = page.goto(url)
            assert response is not None, kind
            assert response.status == 200, f"{kind}: {url} answered {response.status}"
            assert "text/html" in response.headers["content-type"], kind
            assert page.locator("h1").count() == 1, f"{kind}: no page at {url}"
        # RFC 8058 one-click, as a mailbox provider posts it (last: it unsubscribes).
        answer = httpx.post(sorted(one_click)[0], data={"List-Unsubscribe": "One-Click"})
        assert answer.status_code == 200 and answer.text == "Unsubscribed.\n"
    finally:
        assert service.stop() == 0, service.output()
