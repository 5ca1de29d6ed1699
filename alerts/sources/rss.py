"""RSS 2.0 and Atom: a feed's bytes into CollectedItems (feedparser on bytes, never on a URL).

Pure: no I/O. HTML in entries is sanitised here (nh3, not feedparser's own sanitiser), so one
allowlist decides what reaches an email.
"""

from __future__ import annotations

import calendar
import hashlib
import html
import io
import time
import xml.sax
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser

from alerts.items import CollectedItem, ItemKind
from alerts.sources.registry import SourceError
from alerts.sources.sanitise import html_to_text, sanitise_html, shorten, text_to_html

ADVICE_WORDS = ("advice", "prevention")
HTML_TYPES = ("text/html", "application/xhtml+xml")
# Column sizes of the items table (a longer value would fail the insert on PostgreSQL).
MAX_GUID = 1000
MAX_TITLE = 500
MAX_LINK = 2000


def parse_feed(content: bytes, *, url: str) -> list[CollectedItem]:
    """The entries of an RSS or Atom document; `url` (where it came from) resolves relative links.

    Raises SourceError when the bytes are not a feed at all (an HTML page, random bytes);
    a well-formed feed with no entries gives [].
    """
    parsed = feedparser.parse(
        io.BytesIO(content),  # a stream: feedparser would open a bytes "path" as a local file
        response_headers={"content-location": url, "content-type": "application/xml"},
        sanitize_html=False,
        resolve_relative_uris=True,
    )
    entries: list[Any] = list(parsed.get("entries") or [])
    if not entries and not parsed.get("version"):
        raise SourceError(f"the document is not an RSS or Atom feed: {_why_not(content, parsed)}")
    items = [_item(entry, url) for entry in entries]
    return [item for item in items if item is not None]


def _why_not(content: bytes, parsed: Any) -> str:
    head = content.lstrip()[:200].lower()
    if not head:
        return "it is empty"
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return "it is an HTML page (perhaps a web page rather than its feed?)"
    exc = parsed.get("bozo_exception")
    if isinstance(exc, xml.sax.SAXParseException):
        return f"it is not well-formed XML ({exc.getMessage()})"
    if exc is not None and parsed.get("bozo") and not isinstance(exc, feedparser.NonXMLContentType):
        return " ".join(str(exc).split()) or type(exc).__name__
    return "it has no <rss>, <feed> or <rdf:RDF> root element"


def _item(entry: Any, url: str) -> CollectedItem | None:
    title = _title(entry)
    body = _body(entry)
    link = _link(entry.get("link"), url)
    published = _when(entry.get("published_parsed") or entry.get("updated_parsed"))
    if not title and not body and not link:
        return None  # nothing a resident could read (e.g. the tail of a truncated feed)
    guid = str(entry.get("id") or "").strip() or (link or "")
    if not guid:
        stamp = published.isoformat() if published else str(entry.get("published", ""))
        guid = "sha256:" + hashlib.sha256(f"{title}\n{stamp}".encode()).hexdigest()
    elif len(guid) > MAX_GUID:
        guid = "sha256:" + hashlib.sha256(guid.encode()).hexdigest()
    return CollectedItem(
        guid=guid,
        kind=_kind(entry),
        title=title or "(untitled)",
        body_html=body,
        link=link,
        published_at=published,
    )


def _title(entry: Any) -> str:
    raw = str(entry.get("title") or "")
    detail = entry.get("title_detail") or {}
    text = html_to_text(raw) if detail.get("type") in HTML_TYPES else html.unescape(raw)
    text = " ".join(text.split())
    return shorten(text, MAX_TITLE)


def _body(entry: Any) -> str:
    # The full content (an HTML version first) before the summary.
    contents = sorted(entry.get("content") or [], key=lambda d: d.get("type") not in HTML_TYPES)
    candidates = [*contents, *([entry["summary_detail"]] if entry.get("summary_detail") else [])]
    if not candidates and entry.get("summary"):
        candidates = [{"type": "text/html", "value": entry["summary"]}]
    for detail in candidates:
        value = str(detail.get("value") or "")
        if not value.strip():
            continue
        if detail.get("type") in HTML_TYPES:
            return sanitise_html(value)
        return text_to_html(value)
    return ""


def _link(link: object, base: str) -> str | None:
    if not isinstance(link, str) or not link.strip():
        return None
    absolute = urljoin(base, link.strip())
    parts = urlsplit(absolute)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(absolute) > MAX_LINK:
        return None
    return absolute


def _when(parsed: time.struct_time | None) -> datetime | None:
    if not parsed:
        return None
    return datetime.fromtimestamp(calendar.timegm(parsed), UTC)


def _kind(entry: Any) -> ItemKind:
    for tag in entry.get("tags") or []:
        words = f"{tag.get('term') or ''} {tag.get('label') or ''}".lower()
        if any(word in words for word in ADVICE_WORDS):
            return ItemKind.ADVICE
    return ItemKind.POST
