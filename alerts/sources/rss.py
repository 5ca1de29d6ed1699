"""RSS 2.0 and Atom: a feed's bytes into CollectedItems (feedparser on bytes, never on a URL).

Pure: no I/O. HTML in entries is sanitised here (nh3, not feedparser's own sanitiser), so one
allowlist decides what reaches an email.

Only the newest entries are read (by published or updated date where the feed gives one, else
in feed order; see alerts/sources/bounds.py): a quick pass of expat over the bytes finds each
entry and its date, and feedparser is handed the document without the older ones, so a feed of
60,000 entries costs little more than one of 200. A document expat cannot read (not well-formed,
UTF-16, a DOCTYPE) goes to feedparser whole, and only the newest of its entries are kept.
"""

from __future__ import annotations

import calendar
import hashlib
import heapq
import html
import io
import time
import xml.parsers.expat
import xml.sax
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser
from feedparser.datetimes import _parse_date as parse_feed_date  # the dates feedparser reads

from alerts.sources.bounds import Bounded, entries_note
from alerts.sources.items import CollectedItem, ItemKind
from alerts.sources.registry import SourceError
from alerts.sources.sanitise import html_to_text, sanitise_html, shorten, text_to_html

ADVICE_WORDS = ("advice", "prevention")
HTML_TYPES = ("text/html", "application/xhtml+xml")
# Column sizes of the items table (a longer value would fail the insert on PostgreSQL).
MAX_GUID = 1000
MAX_TITLE = 500
MAX_LINK = 2000
ENTRY_NAMES = ("item", "entry")  # RSS 0.9x/1.0/2.0 and Atom, whatever their namespace
PUBLISHED_NAMES = ("pubDate", "published", "issued", "date", "created")
UPDATED_NAMES = ("updated", "modified")


def parse_feed(
    content: bytes, *, url: str, max_entries: int = 200, max_items: int = 500
) -> Bounded:
    """The newest entries of an RSS or Atom document (at most `max_entries`, and at most
    `max_items`), in feed order; `url` (where it came from) resolves relative links.

    Raises SourceError when the bytes are not a feed at all (an HTML page, random bytes);
    a well-formed feed with no entries gives no items.
    """
    cap, key = ((max_entries, "sources.max_feed_entries") if max_entries <= max_items
                else (max_items, "sources.max_items_per_collect"))
    document, found = _without_older_entries(content, cap)
    parsed = feedparser.parse(
        io.BytesIO(document),  # a stream: feedparser would open a bytes "path" as a local file
        response_headers={"content-location": url, "content-type": "application/xml"},
        sanitize_html=False,
        resolve_relative_uris=True,
    )
    entries: list[Any] = list(parsed.get("entries") or [])
    if not entries and not parsed.get("version"):
        raise SourceError(f"the document is not an RSS or Atom feed: {_why_not(content, parsed)}")
    if found is None:
        found = len(entries)
    stamps = [_stamp(entry.get("published_parsed") or entry.get("updated_parsed"))
              for entry in entries]
    items = [_item(entries[index], url) for index in _newest(stamps, cap)]
    notes = (entries_note(cap, found, key),) if found > cap else ()
    return Bounded([item for item in items if item is not None], notes)


def _newest(stamps: Sequence[float | None], cap: int) -> list[int]:
    """The indexes of the `cap` newest entries, in feed order: dated ones newest first, then
    undated ones in feed order."""
    if len(stamps) <= cap:
        return list(range(len(stamps)))
    def rank(index: int) -> tuple[int, float, int]:
        stamp = stamps[index]
        return (1, 0.0, index) if stamp is None else (0, -stamp, index)
    return sorted(heapq.nsmallest(cap, range(len(stamps)), key=rank))


def _without_older_entries(content: bytes, cap: int) -> tuple[bytes, int | None]:
    """(the document without all but its `cap` newest entries, how many it had), or
    (`content`, None) when expat cannot read it (feedparser then reads it whole)."""
    head = content[:1024]
    if b"\x00" in head or b"<!DOCTYPE" in head.upper():
        return content, None  # UTF-16 or 32, or entities: leave it all to feedparser
    spans: list[tuple[int, int]] = []
    stamps: list[float | None] = []
    depth = 0  # inside an entry: 1 for the entry element, 2 for its children, ...
    begin = 0
    dates: dict[str, str] = {}
    reading: list[str] = []
    parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")

    def start(name: str, attributes: dict[str, str]) -> None:
        nonlocal depth, begin, dates
        local = name.rsplit(" ", 1)[-1]
        if depth == 0 and local in ENTRY_NAMES:
            depth, begin, dates = 1, parser.CurrentByteIndex, {}
        elif depth:
            depth += 1
            if depth == 2 and local in (*PUBLISHED_NAMES, *UPDATED_NAMES):
                dates.setdefault(local, "")
                reading[:] = [local]

    def text(data: str) -> None:
        if reading and depth == 2:
            dates[reading[0]] += data

    def end(name: str) -> None:
        nonlocal depth
        reading.clear()
        if depth == 1:
            at = parser.CurrentByteIndex  # "</item>", or just past a self-closing "<item/>"
            stop = content.index(b">", at) + 1 if content.startswith(b"</", at) else at
            spans.append((begin, stop))
            stamps.append(_entry_stamp(dates))
        depth = max(depth - 1, 0)

    parser.StartElementHandler = start
    parser.CharacterDataHandler = text
    parser.EndElementHandler = end
    try:
        parser.Parse(content, True)
    except (xml.parsers.expat.ExpatError, ValueError):
        return content, None
    if len(spans) <= cap:
        return content, len(spans)
    keep = set(_newest(stamps, cap))
    parts: list[bytes] = []
    done = 0
    for index, (first, last) in enumerate(spans):
        if index not in keep:
            parts.append(content[done:first])
            done = last
    parts.append(content[done:])
    return b"".join(parts), len(spans)


def _entry_stamp(dates: dict[str, str]) -> float | None:
    for names in (PUBLISHED_NAMES, UPDATED_NAMES):
        for name in names:
            if dates.get(name, "").strip():
                return _stamp(parse_feed_date(dates[name].strip()))
    return None


def _stamp(parsed: time.struct_time | None) -> float | None:
    return float(calendar.timegm(parsed)) if parsed else None


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
