"""HTML that may go into an email: the one sanitiser (nh3) and the text <-> HTML conversions.

Every piece of HTML from a feed, a calendar or an officer passes `sanitise_html` before it is
stored; `text_to_html` turns plain text into safe paragraphs; `html_to_text` makes the
readable text/plain part of an email from stored HTML; `shorten` cuts text to a column's
length with an ellipsis.
"""

from __future__ import annotations

import functools
import html
import re
from html.parser import HTMLParser

import nh3

ALLOWED_TAGS = frozenset(
    {"p", "div", "br", "a", "strong", "b", "em", "i", "ul", "ol", "li", "blockquote", "h3", "h4",
     "code"}
)
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}
URL_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
# Elements removed together with everything inside them (not just the tags).
DROPPED_WITH_CONTENT = frozenset(
    {"script", "style", "title", "noscript", "template", "iframe", "object"}
)

# Tags that make a string "HTML" rather than plain text that happens to hold a "<".
_HTML_TAGS = frozenset(nh3.ALLOWED_TAGS) | DROPPED_WITH_CONTENT | {
    "html", "head", "body", "font", "center", "embed", "form", "input", "button", "svg",
}
_WHITESPACE = re.compile(r"\s+")
# A link in nh3's output: it quotes every attribute and escapes "<", ">" and '"' in their
# values, and HTML's parser never nests one link in another.
_LINK = re.compile(r"<a(\s[^>]*)?>(.*?)</a>", re.DOTALL)
_BLANK_LINE = re.compile(r"\n[ \t\f\v]*\n")


# Bodies up to this long are remembered (`_remembered`): at most 1,024 of them.
MEMO_CHARS = 16_384


def sanitise_html(html_text: str) -> str:
    """Keep only the markup an email needs: no scripts, styles, event handlers or odd URLs.

    A link whose address was not allowed (or that had none) keeps its text and loses the
    tag: an `<a>` without `href` is no link, but mail clients still show it as one."""
    if len(html_text) <= MEMO_CHARS:
        return _remembered(html_text)
    return _sanitise(html_text)


# A pure function of its text, asked again for the same stored bodies at every render of a
# page or feed that shows them (the ward archive sanitises each body twice).
@functools.lru_cache(maxsize=1024)
def _remembered(html_text: str) -> str:
    return _sanitise(html_text)


def _sanitise(html_text: str) -> str:
    cleaned = nh3.clean(
        html_text,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        url_relative="deny",
        link_rel="noopener noreferrer",
        strip_comments=True,
    ).strip()
    return _LINK.sub(lambda link: link.group(0) if ' href="' in (link.group(1) or "")
                     else link.group(2), cleaned)


def text_to_html(text: str) -> str:
    """Plain text as escaped paragraphs: a blank line starts a paragraph, a newline a <br>."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        return ""
    paragraphs = []
    for block in _BLANK_LINE.split(text):
        lines = [html.escape(line.strip(), quote=False) for line in block.split("\n")]
        paragraphs.append("<p>" + "<br>\n".join(line for line in lines if line) + "</p>")
    return "\n".join(paragraphs)


class _TagSpotter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found = self.found or tag in _HTML_TAGS

    def handle_endtag(self, tag: str) -> None:
        self.found = self.found or tag in _HTML_TAGS


def looks_like_html(text: str) -> bool:
    """Whether `text` holds HTML tags (a "<3" or "a < b" in plain text does not count)."""
    if "<" not in text:
        return False
    spotter = _TagSpotter()
    spotter.feed(text)
    spotter.close()
    return spotter.found


def as_safe_html(text: str) -> str:
    """A body that may be plain text or HTML, as sanitised HTML."""
    return sanitise_html(text) if looks_like_html(text) else text_to_html(text)


_BLOCKS = frozenset(
    {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "table", "tr", "pre", "section",
     "article", "header", "footer", "address", "figure", "dl", "dt", "dd", "hr"}
)
_LISTS = frozenset({"ul", "ol"})
_SKIPPED = DROPPED_WITH_CONTENT | {"head"}
_VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "wbr", "col", "area", "source"})


class _TextMaker(HTMLParser):
    """Collects blocks of text, each with the gap (1 = newline, 2 = blank line) before it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[int, str]] = []
        self.parts: list[str] = []
        self.gap = 0
        self.skipping = 0
        self.lists = 0
        self.quotes = 0
        self.in_item = False
        self.links: list[tuple[str | None, int]] = []

    def _flush(self) -> None:
        lines = [_WHITESPACE.sub(" ", line).strip() for line in "".join(self.parts).split("\n")]
        self.parts = []
        while lines and not lines[0]:
            lines.pop(0)
        while lines and not lines[-1]:
            lines.pop()
        if lines:
            if self.in_item:
                indent = "  " * (self.lists - 1)
                lines = [indent + "- " + lines[0]] + [indent + "  " + line for line in lines[1:]]
                self.in_item = False
            if self.quotes:
                lines = [("> " * self.quotes + line).rstrip() for line in lines]
            self.blocks.append((self.gap or 1, "\n".join(lines)))
            self.gap = 0

    def _break(self, gap: int) -> None:
        self._flush()
        self.gap = max(self.gap, gap)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            if tag not in _VOID:
                self.skipping += 1
            return
        if self.skipping:
            return
        if tag == "br":
            self.parts.append("\n")
        elif tag == "li":
            self._break(1)
            self.in_item = True
        elif tag in _LISTS:
            self._break(2 if not self.lists else 1)
            self.lists += 1
        elif tag == "blockquote":
            self._break(2)
            self.quotes += 1
        elif tag in _BLOCKS:
            self._break(2)
        elif tag == "a":
            self.links.append((dict(attrs).get("href"), len(self.parts)))
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self.parts.append(alt)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self.skipping = max(0, self.skipping - 1)
            return
        if self.skipping:
            return
        if tag == "li":
            self._break(1)
        elif tag in _LISTS:
            self._break(1)
            self.lists = max(0, self.lists - 1)
            self.gap = 2 if not self.lists else 1
        elif tag == "blockquote":
            self._break(2)
            self.quotes = max(0, self.quotes - 1)
        elif tag in _BLOCKS:
            self._break(2)
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            text = _WHITESPACE.sub(" ", "".join(self.parts[start:])).strip()
            if href and not _same_address(text, href):
                self.parts.append(f" ({href})" if text else href)

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)

    def text(self) -> str:
        self._flush()
        out: list[str] = []
        for gap, block in self.blocks:
            if out:
                out.append("\n" * gap)
            out.append(block)
        return "".join(out)


def _same_address(text: str, href: str) -> bool:
    def bare(value: str) -> str:
        value = value.strip().lower()
        for prefix in ("mailto:", "tel:", "https://", "http://"):
            value = value.removeprefix(prefix)
        return value.rstrip("/")

    return bare(text) == bare(href)


def html_to_text(html_text: str) -> str:
    """Readable plain text: paragraphs apart, list items as "- item", links as "text (url)"."""
    maker = _TextMaker()
    maker.feed(html_text)
    maker.close()
    return maker.text()


def shorten(text: str, limit: int) -> str:
    """`text` if it fits in `limit` characters, else cut to fit with a closing ellipsis."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
