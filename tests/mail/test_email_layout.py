"""The HTML part's layout: a table-based outer frame that Outlook on Windows (the Word
engine, which ignores max-width) keeps at a fixed width through an MSO conditional table,
dark-mode styles that survive CSS inlining (prefers-color-scheme, and the data-ogsc /
data-ogsb attributes Outlook.com and the Outlook apps set), English item text inside Welsh
emails marked lang="en", and the rendering in Chromium, light and dark, at phone and desktop
widths: nothing wider than the phone, and light text on a dark ground in dark mode."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from alerts.core.config import Settings
from alerts.digests.compose import DigestContent, DigestItem, compose_digest
from alerts.mail.render import Rendered, render_alert, render_confirmation, render_digest
from alerts.sources.items import ItemKind
from subscriptions.languages import Language
from tests.browser import DESKTOP, PHONE, check_page, open_page

pytest_plugins = ("tests.browser",)

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
# A confirmation link as long as real ones get: one unbroken word the phone must still fit.
CONFIRM_URL = "https://alerts.police.example/confirm/" + "Xy7_k2Qw9" * 12
TITLES = ("Extra patrols on Mill Lane after a spate of shed break-ins",
          "Keep your bike locked to something solid", "Meet the team at the library")
BODIES = ("We are patrolling Mill Lane every evening this week.",
          "A good D-lock stops most thefts.", "Bring your questions.")


def content() -> DigestContent:
    def item(id: int, kind: ItemKind, starts: datetime | None = None) -> DigestItem:
        return DigestItem(id=id, kind=kind, title=TITLES[id - 1],
                          body_html=f"<p>{BODIES[id - 1]}</p>", link=f"https://news.example/{id}",
                          published_at=NOW - timedelta(days=1), starts_at=starts,
                          ends_at=starts + timedelta(hours=2) if starts else None,
                          location="Mill Lane library" if starts else None)
    digest = compose_digest("RIV", "Riverside", [
        item(1, ItemKind.POST), item(2, ItemKind.ADVICE),
        item(3, ItemKind.SESSION, datetime(2026, 12, 5, 10, 0, tzinfo=UTC)),
    ], now=NOW, max_age=timedelta(days=30))
    assert digest is not None
    return digest


def digest(language: Language = Language.ENGLISH) -> Rendered:
    return render_digest(content(), Settings(), now=NOW, language=language)


def alert(language: Language = Language.ENGLISH) -> Rendered:
    return render_alert("Riverside", "Road closed at the bridge",
                        "<p>Avoid the bridge until 18:00: use Mill Lane.</p>", Settings(),
                        now=NOW, language=language)


def confirmation(language: Language = Language.ENGLISH) -> Rendered:
    return render_confirmation(["Riverside", "Old Town"], CONFIRM_URL, 48, Settings(), now=NOW,
                               language=language)


EMAILS: dict[str, Callable[[Language], Rendered]] = {
    "digest": digest, "alert": alert, "confirmation": confirmation}


def head(html: str) -> str:
    return html[:html.index("</head>")]


@pytest.mark.parametrize("language", list(Language), ids=lambda lang: lang.value)
@pytest.mark.parametrize("name", EMAILS)
def test_the_html_declares_light_and_dark_and_keeps_the_dark_styles_after_inlining(
        name: str, language: Language) -> None:
    html = EMAILS[name](language).html

    assert '<meta name="color-scheme" content="light dark">' in head(html)
    assert '<meta name="supported-color-schemes" content="light dark">' in head(html)
    styles = re.findall(r"<style[^>]*>(.*?)</style>", head(html), re.S)
    dark = [style for style in styles if "@media (prefers-color-scheme: dark)" in style]
    assert len(dark) == 1, "the dark block survived css_inline, once"
    assert re.search(r"body[^{]*\{[^}]*background: #[0-9a-f]{6} !important", dark[0])
    assert "[data-ogsc]" in dark[0] and "[data-ogsb]" in dark[0]
    assert "prefers-color-scheme" not in html[html.index("<body"):], "nothing of it inlined"


@pytest.mark.parametrize("language", list(Language), ids=lambda lang: lang.value)
@pytest.mark.parametrize("name", EMAILS)
def test_outlook_gets_a_fixed_width_table_and_every_layout_table_is_presentational(
        name: str, language: Language) -> None:
    html = EMAILS[name](language).html
    body = html[html.index("<body"):]

    opened = re.findall(r"<!--\[if mso\]>(.*?)<!\[endif\]-->", body, re.S)
    assert opened, "no table for Outlook on Windows, which ignores max-width"
    assert opened[0] == ('<table role="presentation" width="640" align="center" cellpadding="0" '
                         'cellspacing="0" border="0"><tr><td width="640">')
    assert opened[-1] == "</td></tr></table>" and len(opened) == 2
    # Everything shown sits between Outlook's table's opening and its close.
    assert body.index("<!--[if mso]>") < body.index("<h1") < body.rindex("<!--[if mso]>")
    assert body.index("<!--[if mso]>") < body.index("__ALERTS_UNSUBSCRIBE_URL__") \
        < body.rindex("<!--[if mso]>")
    outer = re.search(r"<table[^>]*>", body)
    assert outer and 'role="presentation"' in outer.group(0) and 'width="100%"' in outer.group(0)
    tables = re.findall(r"<table[^>]*>", body)
    assert len(tables) >= 3  # the outer frame, the email's own, the how-to-report box
    assert all('role="presentation"' in table for table in tables), tables
    assert "max-width: 640px" in body, "other clients centre the content by its max-width"
    assert "<img" not in body and "url(" not in html, "no pixel, nothing fetched from outside"


VOID = frozenset({"meta", "br", "hr", "img", "input", "link", "wbr", "col", "area", "source"})


class Languages(HTMLParser):
    """Each piece of text with the language of the element it sits in."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, str]] = [("", "")]
        self.texts: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        lang = dict(attrs).get("lang") or self.stack[-1][1]
        if tag not in VOID:
            self.stack.append((tag, lang))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth][0] == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        if data.strip() and self.stack[-1][0] not in ("style", "title"):
            self.texts.append((" ".join(data.split()), self.stack[-1][1]))


def languages(html: str) -> list[tuple[str, str]]:
    parser = Languages()
    parser.feed(html)
    return parser.texts


def language_of(texts: list[tuple[str, str]], text: str) -> list[str]:
    return [lang for shown, lang in texts if text in shown]


def test_english_item_text_in_a_welsh_digest_is_marked_english() -> None:
    texts = languages(digest(Language.WELSH).html)

    for text in (*TITLES, *BODIES, "Mill Lane library"):
        assert language_of(texts, text) == ["en"], text
    assert set(language_of(texts, "Newyddion y tîm")) == {"cy"}, "the Welsh words stay Welsh"
    assert set(language_of(texts, "Dydd Sadwrn 5 Rhagfyr 2026")) == {"cy"}
    assert set(language_of(texts, "999")) == {"cy"}


def test_in_a_bilingual_digest_only_the_welsh_half_marks_the_items_english() -> None:
    texts = languages(digest(Language.BILINGUAL).html)

    for text in (*TITLES, *BODIES):
        assert language_of(texts, text) == ["en", "en-GB"], text


def test_an_english_email_and_a_welsh_alert_say_what_language_their_items_are_in() -> None:
    english = languages(digest(Language.ENGLISH).html)
    for text in (*TITLES, *BODIES):
        assert language_of(english, text) == ["en-GB"], text
    welsh = languages(alert(Language.WELSH).html)
    assert language_of(welsh, "Road closed at the bridge") == ["en"]
    assert language_of(welsh, "Avoid the bridge until 18:00") == ["en"]
    assert set(language_of(welsh, "Brys:")) == {"cy"}


def luminance(css: str) -> float:
    """WCAG relative luminance of a computed colour ('rgb(r, g, b)' or 'rgba(…)')."""
    channels = [int(c) / 255 for c in re.findall(r"\d+", css)[:3]]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


COLOURS = """() => {
  const colour = (selector) => getComputedStyle(document.querySelector(selector)).color;
  const ground = (selector) => {  // the background a text is seen on: its nearest painted one
    for (let el = document.querySelector(selector); el; el = el.parentElement) {
      const paint = getComputedStyle(el).backgroundColor;
      if (paint !== 'rgba(0, 0, 0, 0)' && paint !== 'transparent') return paint;
    }
    return 'rgb(255, 255, 255)';
  };
  const main = '.content > p:not(.meta)';
  return {
    body: getComputedStyle(document.body).backgroundColor,
    text: colour(main), frame: ground(main),
    report: colour('.report p'), reportGround: ground('.report p'),
    small: colour('.small p'), smallGround: ground('.small p'),
  };
}"""

@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("name", EMAILS)
def test_in_chromium_it_fits_a_phone_and_reads_light_and_dark(
        browser: Browser, artefacts: Path, name: str, scheme: str) -> None:
    html = EMAILS[name](Language.ENGLISH).html
    with open_page(browser, color_scheme=scheme) as page:
        page.set_content(html)
        # Screenshots <name>-<scheme>-phone.png and -desktop.png, and axe-core at both widths
        # (its colour-contrast rule covers the dark palette too).
        check_page(page, f"{name}-{scheme}", artefacts)
        for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
            page.set_viewport_size(size)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= size["width"], f"{label}: {width}px wide"
            colours = page.evaluate(COLOURS)
            if scheme == "dark":
                assert luminance(colours["body"]) < 0.05, colours
                assert luminance(colours["frame"]) < 0.05, colours
                assert luminance(colours["text"]) > 0.6, colours
            else:
                assert luminance(colours["frame"]) > 0.9, colours
                assert luminance(colours["text"]) < 0.05, colours
            assert contrast(colours["text"], colours["frame"]) >= 7, colours
            assert contrast(colours["report"], colours["reportGround"]) >= 4.5, colours
            assert contrast(colours["small"], colours["smallGround"]) >= 4.5, colours
