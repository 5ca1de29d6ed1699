"""Browser tests' shared parts: Debian's Chromium through Playwright, the web app on a
loopback port, and a screenshot + axe-core accessibility check of a page.

A test module takes the fixtures by naming this module as a plugin (an import of fixtures
by name works too, but ruff calls it F401 and F811), and imports the helpers::

    from tests.browser import check_page, open_page, serve_app

    pytest_plugins = ("tests.browser",)   # the fixtures: browser, page, artefacts

    def test_sign_in_page(factory, settings, page: Page, artefacts: Path) -> None:
        with serve_app(create_app(factory, settings=settings)) as base_url:
            page.goto(f"{base_url}/staff/sign-in")
            expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
            check_page(page, "sign-in", artefacts)   # screenshots; fails on axe problems

The API (keep it stable: other test modules code against it):

``browser`` — fixture, ``playwright.sync_api.Browser``
    Chromium at /usr/bin/chromium (``CHROMIUM_ARGS``); the test is skipped when that is
    missing, and nothing is ever downloaded. One browser is shared by consecutive tests that
    ask for it, and closed as soon as the next test does not (see "event loop" below).
``page`` — fixture, ``Page``: ``open_page(browser)`` for the length of the test.
``open_page(browser, **context_options) -> ContextManager[Page]``
    A new browser context (``PHONE`` viewport, ``locale="en-GB"``, plus ``context_options``
    for ``Browser.new_context``) and a page in it; the context is closed afterwards. The pages'
    Content-Security-Policy is kept: axe-core goes in through ``page.evaluate``, which CSP
    does not govern.
``artefacts`` — fixture, ``Path`` (an existing folder) for screenshots and the like:
    ``$ALERTS_TEST_ARTEFACTS/<test name>/`` when ``ALERTS_TEST_ARTEFACTS`` is set (kept
    after the run, e.g. for CI to upload), otherwise ``<the test's tmp_path>/artefacts``.
``serve_app(app, port=None) -> ContextManager[str]``
    Serves an ASGI app (FastAPI) with uvicorn in a thread on 127.0.0.1 and yields its base
    URL, ``"http://127.0.0.1:<port>"``. An app that must know its own URL (e.g. for links in
    emails) is built for a port taken first: ``settings, port = served_settings(settings)``,
    then ``serve_app(app, port)``.
``served_settings(settings) -> (Settings, int)``
    A free loopback port and settings whose ``web.base_url`` points at it.
``check_page(page, name, artefacts) -> None``
    Full-page screenshots at phone (400 px) and desktop (1280 px) widths,
    ``<artefacts>/<name>-phone.png`` and ``<name>-desktop.png``, then axe-core at both
    widths; raises AssertionError when the page is wider than either screen (sideways
    scrolling), and otherwise listing each violation of impact "serious" or "critical"
    (rule id, impact, widths, help, help URL, the first few target selectors and why they
    fail). The page's viewport is put back afterwards.
``off_loop(fn, *args, **kwargs) -> result``
    Calls ``fn`` in a worker thread: see "event loop".
``axe_source() -> str``
    axe.min.js: the file named by ``ALERTS_AXE_JS`` when set, otherwise the copy bundled
    with the ``axe-playwright-python`` package (the ``test`` extra). Never skipped: a
    browser test without axe-core fails.
``CHROMIUM``, ``CHROMIUM_ARGS``, ``PHONE``, ``DESKTOP``, ``BLOCKING`` — the settings above.

(PYTEST_DONT_REWRITE: test modules import this module before pytest_plugins names it, too
late for assertion rewriting; it raises its AssertionErrors itself.)

Event loop: Playwright's sync API marks its asyncio loop as running on the main thread for
as long as Playwright is started, so ``asyncio.run`` there fails ("cannot be called from a
running event loop"). In a browser test, call code that runs its own loop (``deliver_due``,
``forward_due``…) through ``off_loop``. That is also why ``browser`` is function-scoped over
a shared instance rather than session-scoped: a session-long Playwright would break every
later test that calls such code directly (tests/web/test_my_data.py does).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import os
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, Playwright, ViewportSize, sync_playwright
from starlette.types import ASGIApp

from alerts.core.config import Settings
from tests.processes import free_port, wait_for

__all__ = [
    "BLOCKING", "CHROMIUM", "CHROMIUM_ARGS", "DESKTOP", "PHONE", "artefacts", "axe_source",
    "browser", "check_page", "off_loop", "open_page", "page", "serve_app", "served_settings",
]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PHONE: ViewportSize = {"width": 400, "height": 860}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
# axe-core's own scale (minor, moderate, serious, critical); these fail check_page.
BLOCKING = frozenset({"serious", "critical"})
ARTEFACTS_VARIABLE = "ALERTS_TEST_ARTEFACTS"
AXE_VARIABLE = "ALERTS_AXE_JS"
# How many of a violation's elements check_page names.
SHOWN_TARGETS = 5

P = ParamSpec("P")
T = TypeVar("T")


@functools.cache
def axe_source() -> str:
    """axe.min.js: $ALERTS_AXE_JS, otherwise axe-playwright-python's bundled copy."""
    named = os.environ.get(AXE_VARIABLE)
    try:
        if named:
            return Path(named).read_text(encoding="utf-8")
        bundled = importlib.resources.files("axe_playwright_python") / "axe.min.js"
        return bundled.read_text(encoding="utf-8")
    except (OSError, ModuleNotFoundError) as exc:
        where = f"{AXE_VARIABLE}={named}" if named else (
            "axe-playwright-python's axe.min.js (pip install -e '.[test]')")
        raise AssertionError(f"axe-core cannot be loaded from {where}: {exc}") from exc


class _SharedBrowser:
    """One Playwright and Chromium, started on demand and stopped when no test needs them."""

    def __init__(self) -> None:
        self.playwright: Playwright | None = None
        self.browser: Browser | None = None

    def get(self) -> Browser:
        if self.browser is None or not self.browser.is_connected():
            self.stop()
            self.playwright = sync_playwright().start()
            self.browser = self.playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                           args=CHROMIUM_ARGS)
        return self.browser

    def stop(self) -> None:
        browser, playwright = self.browser, self.playwright
        self.browser = self.playwright = None
        try:
            if browser is not None and browser.is_connected():
                browser.close()
        finally:
            if playwright is not None:
                playwright.stop()


_shared = _SharedBrowser()
_PLUGIN_NAME = "tests.browser.release"


class _Release:
    """Stops the shared browser after a test when the next one does not ask for it."""

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_teardown(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        if nextitem is None or "browser" not in getattr(nextitem, "fixturenames", ()):
            _shared.stop()


@pytest.fixture
def browser(request: pytest.FixtureRequest) -> Browser:
    """Debian's Chromium through Playwright (skips the test when it is not installed)."""
    if not CHROMIUM.exists():
        pytest.skip(f"Debian's chromium is not installed at {CHROMIUM} (.ci/run installs it)")
    manager = request.config.pluginmanager
    if not manager.has_plugin(_PLUGIN_NAME):
        manager.register(_Release(), _PLUGIN_NAME)
        request.config.add_cleanup(_shared.stop)
    return _shared.get()


@contextmanager
def open_page(browser: Browser, **context_options: Any) -> Iterator[Page]:
    """A page in a new context (phone-sized, en-GB, CSP kept), closed afterwards."""
    options: dict[str, Any] = {"viewport": PHONE, "locale": "en-GB", **context_options}
    context = browser.new_context(**options)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page of its own for the test: see open_page."""
    with open_page(browser) as opened:
        yield opened


@pytest.fixture
def artefacts(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """$ALERTS_TEST_ARTEFACTS/<test name>/ when that is set, else <tmp_path>/artefacts."""
    root = os.environ.get(ARTEFACTS_VARIABLE)
    if root:
        folder = Path(root) / re.sub(r"[^\w.\[\]-]+", "_", request.node.name)
    else:
        folder = tmp_path / "artefacts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def served_settings(settings: Settings) -> tuple[Settings, int]:
    """A free loopback port, and settings whose emailed links point at it."""
    port = free_port()
    return dataclasses.replace(settings, web=dataclasses.replace(
        settings.web, base_url=f"http://127.0.0.1:{port}")), port


@contextmanager
def serve_app(app: ASGIApp, port: int | None = None) -> Iterator[str]:
    """Serve `app` with uvicorn in a thread on 127.0.0.1:`port` (a free one by default)."""
    port = free_port() if port is None else port
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, name=f"uvicorn:{port}", daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), what="the web server to start")
    if not server.started:
        raise AssertionError(f"the web server did not start on 127.0.0.1:{port}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def off_loop(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """fn(*args, **kwargs) in a worker thread, away from Playwright's event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args, **kwargs).result()


def _axe_violations(page: Page) -> list[dict[str, Any]]:
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(axe_source())
        if not page.evaluate("() => typeof window.axe !== 'undefined'"):
            raise AssertionError(f"axe-core did not load into {page.url}")
    violations: list[dict[str, Any]] = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return violations


def _target(node: dict[str, Any]) -> str:
    # A target is a list of selectors: one per iframe or shadow root on the way down.
    return " >> ".join(str(part) for part in node.get("target", []))


def _why(node: dict[str, Any]) -> str:
    lines = [line.strip() for line in str(node.get("failureSummary") or "").splitlines()]
    reasons = [line for line in lines if line and not line.startswith("Fix ")]
    why = "; ".join(reasons)
    return why if len(why) <= 200 else why[:199] + "…"


def check_page(page: Page, name: str, artefacts: Path) -> None:
    """Screenshots at phone and desktop widths, then fail on a page wider than the screen
    (sideways scrolling) or on serious or critical axe problems."""
    __tracebackhide__ = True
    artefacts.mkdir(parents=True, exist_ok=True)
    original = page.viewport_size
    found: dict[str, dict[str, Any]] = {}
    widths: dict[str, list[str]] = {}
    sideways: list[str] = []
    try:
        for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
            page.set_viewport_size(size)
            page.screenshot(path=artefacts / f"{name}-{label}.png", full_page=True)
            wide = page.evaluate("document.scrollingElement.scrollWidth")
            if wide > size["width"]:
                sideways.append(f"{name!r} ({page.url}) scrolls sideways at {size['width']} px:"
                                f" {wide} px wide")
            for violation in _axe_violations(page):
                if violation.get("impact") in BLOCKING:
                    found.setdefault(violation["id"], violation)
                    widths.setdefault(violation["id"], []).append(label)
    finally:
        if original is not None:
            page.set_viewport_size(original)
    assert not sideways, sideways[0]
    if not found:
        return
    lines = [f"axe-core: {len(found)} serious or critical accessibility problem(s) on "
             f"{name!r} ({page.url}):"]
    for rule, violation in found.items():
        nodes: list[dict[str, Any]] = violation.get("nodes", [])
        lines.append(f"- {rule} ({violation['impact']}, {'+'.join(widths[rule])}): "
                     f"{violation.get('help', '')}  <{violation.get('helpUrl', '')}>")
        for node in nodes[:SHOWN_TARGETS]:
            why = _why(node)
            lines.append(f"    {_target(node)}" + (f"  — {why}" if why else ""))
        if len(nodes) > SHOWN_TARGETS:
            lines.append(f"    … and {len(nodes) - SHOWN_TARGETS} more")
    raise AssertionError("\n".join(lines))
