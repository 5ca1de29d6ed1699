"""Open feeds: a ward's published items as plain values, and as Atom, JSON and iCalendar.

"Published items of a ward" are what its sources and officers published, not withdrawn:
what a digest draws on (`digest_rounds.DIGESTED_KINDS`: posts, advice and contact sessions)
and the officers' urgent alerts (`PUBLISHED_KINDS`), which go out by email at once and stay
on the record here, marked urgent (`FeedItem.urgent`). Anything about a resident never
comes in: the values built here hold items only, and the ward's team is named, never given
by its address.

`load_ward_feed` reads the ward's recent news (posts, advice and alerts: newest first, at
most `MAX_ITEMS`, none published more than `MAX_AGE` ago) and its sessions that have not
ended (soonest first), and groups those into one entry per session with every date it is
held (`compose.group_sessions`: a weekly drop-in is one entry, not five). Sessions are not
news: they are listed apart, once each. The builders are pure:

* `atom_feed` — Atom 1.0 through feedgen: the news and one entry per coming session, newest
  first. The feed's id is the ward's archive page URL, an entry's id is its anchor on that
  page (`…/wards/RIV/#item-12`; a session's is its soonest date's), stable across requests.
* `json_document` — the shape documented on `json_document`.
* `ics_calendar` — the ward's coming sessions through the digests' own calendar builder
  (`alerts.digests.invites.calendar_of`), so UIDs match the digests' attachments.

Nothing here reads the clock: each output depends on the stored items and `now` only through
which items are chosen, so the same data gives the same bytes (and the same ETag).

A kept copy: `ward_stamp` reads, in one indexed query and no item row, what decides whether
a `WardFeed` read before is still what the ward publishes: the ward's code, name and
creation, and the count and newest `items.changed_at` of its items (every insert, edit,
withdrawal and deletion moves one of them). What else changes with time alone is bounded by
`WardFeed.fresh_until`: the soonest end of a session shown and the moment the oldest news
shown passes `MAX_AGE` (nothing enters with time: the selection only shrinks). A ward whose
newest change is younger than `SETTLE` is read afresh at each request: a transaction that
wrote an older `changed_at` (it began first, or its host's clock is behind) may commit
after a newer one was read, and would not move the maximum. A settled ward's stamp is read
again after its rows, and the copy kept only if it has not moved meanwhile.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Sequence
from dataclasses import astuple, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from feedgen.feed import FeedGenerator
from sqlalchemy import Row, Select, bindparam, func, select
from sqlalchemy.orm import Session

from alerts.core.config import ForceSettings
from alerts.digests.compose import DigestItem, group_sessions, safe_link, ward_page_url
from alerts.digests.invites import calendar_of
from alerts.mail.render import when
from alerts.sources.items import Item, ItemKind
from alerts.sources.policeuk import ATTRIBUTION_HTML, LICENCE_URL
from alerts.sources.registry import Source, SourceKind
from alerts.sources.sanitise import html_to_text, sanitise_html
from alerts.usecases.digest_rounds import DIGESTED_KINDS
from subscriptions.wards import Ward, ward_key, ward_names

MAX_ITEMS = 50
MAX_AGE = timedelta(days=90)
MAX_SESSIONS = 200
# Longer than any transaction that writes items, and than the clocks of the hosts writing
# them differ (see the module's docstring).
SETTLE = timedelta(seconds=30)
# The bound of a feed that nothing shown ends or ages out of.
FOREVER = datetime.max.replace(tzinfo=UTC)
ATTRIBUTION_TEXT = html_to_text(ATTRIBUTION_HTML)
LICENCE_NAME = "Open Government Licence v3.0"
JSON_VERSION = 1
PUBLISHED_KINDS = (*DIGESTED_KINDS, ItemKind.ALERT)
NEWS_KINDS = tuple(kind for kind in PUBLISHED_KINDS if kind != ItemKind.SESSION)


@dataclass(frozen=True)
class FeedItem:
    """One published item as the open feeds show it; `body_html` is sanitised again here."""

    id: int
    kind: ItemKind
    title: str
    body_html: str
    link: str | None
    published_at: datetime
    starts_at: datetime | None
    ends_at: datetime | None
    location: str | None
    from_policeuk: bool
    # A session's every occurrence, soonest first, itself included (`WardFeed.series`).
    occurrences: tuple[FeedItem, ...] = ()

    @property
    def urgent(self) -> bool:
        """An officer's urgent alert: every output marks it so."""
        return self.kind == ItemKind.ALERT

    @property
    def dates(self) -> tuple[tuple[datetime | None, datetime | None], ...]:
        """A session's starts and ends, soonest first."""
        return tuple((o.starts_at, o.ends_at) for o in self.occurrences or (self,))

    @property
    def text(self) -> str:
        return html_to_text(self.body_html)

    @property
    def anchor(self) -> str:
        return f"item-{self.id}"

    def as_digest_item(self) -> DigestItem:
        return DigestItem(id=self.id, kind=self.kind, title=self.title,
                          body_html=self.body_html, link=self.link,
                          published_at=self.published_at, starts_at=self.starts_at,
                          ends_at=self.ends_at, location=self.location)


@dataclass(frozen=True)
class WardStamp:
    """What decides whether a kept `WardFeed` is current (`ward_stamp`): the ward as the
    feeds show it, and its items' count and newest change."""

    id: int
    code: str
    name: str
    created_at: datetime
    items: int
    changed_at: datetime | None
    withdrawn_at: datetime | None  # the newest withdrawal (`WardFeed.updated`)


@dataclass(frozen=True)
class WardFeed:
    """What a ward publishes: recent news (`items`: posts, advice, urgent alerts) newest
    first, coming sessions soonest first: `sessions` holds each occurrence (the calendar's
    events), `series` each session once with its `occurrences`.

    `updated` is the newest publication or withdrawal among the ward's items (the
    Last-Modified of every output), or the ward's creation when it has none.
    """

    code: str
    name: str
    items: tuple[FeedItem, ...]
    sessions: tuple[FeedItem, ...]
    updated: datetime
    series: tuple[FeedItem, ...] = ()
    team_name: str = ""  # the ward's team, from force.ward_team
    # What it was read under, and until when it may be kept (`is_fresh`); None: not to be
    # kept (its ward changed within `SETTLE`, or it was not read by `read_ward_feed`).
    stamp: WardStamp | None = None
    fresh_until: datetime | None = None

    def is_fresh(self, stamp: WardStamp, now: datetime) -> bool:
        """Whether this copy is what the ward with `stamp` publishes at `now`."""
        return (self.fresh_until is not None and self.stamp == stamp
                and now < self.fresh_until)

    @property
    def identity(self) -> Hashable:
        """What its outputs are made of, cheap to compare: its stamp and time bound once
        those decide it, else the whole feed."""
        return self if self.fresh_until is None else (self.stamp, self.fresh_until)

    @property
    def entries(self) -> list[FeedItem]:
        """The news and each coming session once, newest published first (Atom, JSON)."""
        return sorted((*self.items, *self.series),
                      key=lambda item: (item.published_at, item.id), reverse=True)


@dataclass(frozen=True)
class WardLink:
    code: str
    name: str


@dataclass(frozen=True)
class FeedUrls:
    """The absolute addresses of a ward's archive page and feeds, from web.base_url."""

    page: str
    atom: str
    ics: str
    json: str

    @classmethod
    def for_ward(cls, base_url: str, code: str) -> FeedUrls:
        page = ward_page_url(base_url, code)
        return cls(page, f"{page}feed.atom", f"{page}sessions.ics", f"{page}items.json")

    def entry_id(self, item: FeedItem) -> str:
        return f"{self.page}#{item.anchor}"


def list_public_wards(session: Session) -> list[WardLink]:
    """Every ward, by name."""
    return sorted((WardLink(code, name) for code, name in ward_names(session)),
                  key=lambda w: (w.name.casefold(), w.code))


# What a feed shows of an item, read as columns: no ORM object per item at each request.
_FEED_COLUMNS = (Item.id, Item.kind, Item.title, Item.body_html, Item.link, Item.published_at,
                 Item.collected_at, Item.starts_at, Item.ends_at, Item.location, Source.kind)


def _published_items(kinds: Sequence[ItemKind]) -> Select[*tuple[Any, ...]]:
    return (select(*_FEED_COLUMNS)
            .join(Source, Source.id == Item.source_id)
            .where(Source.ward_id == bindparam("ward_id"), Item.withdrawn_at.is_(None),
                   Item.kind.in_([kind.value for kind in kinds])))


# A feed's three queries, built once (not at each request) with the ward, the moment and the
# bounds as parameters.
_PUBLISHED = func.coalesce(Item.published_at, Item.collected_at)
_RECENT = (_published_items(NEWS_KINDS).where(_PUBLISHED >= bindparam("since"))  # noqa: SIM300
           .order_by(_PUBLISHED.desc(), Item.id.desc()).limit(bindparam("max_items")))
_COMING = (_published_items([ItemKind.SESSION])
           .where(Item.starts_at.is_not(None),
                  func.coalesce(Item.ends_at, Item.starts_at) > bindparam("now"))
           .order_by(Item.starts_at, Item.id).limit(bindparam("max_sessions")))
# The ward's stamp (the ward as `find_ward` finds it: its exact code, else the code in
# another case), in one read of columns: its items' count, newest change and newest
# withdrawal come from the index on (source_id, changed_at, withdrawn_at) alone.
_WARD = (select(Ward.id, Ward.code, Ward.name, Ward.created_at, func.count(Item.source_id),
                func.max(Item.changed_at), func.max(Item.withdrawn_at))
         .select_from(Ward).outerjoin(Source, Source.ward_id == Ward.id)
         .outerjoin(Item, Item.source_id == Source.id)
         .group_by(Ward.id, Ward.code, Ward.name, Ward.created_at))
_WARD_EXACT = _WARD.where(Ward.code == bindparam("code"))
_WARD_ANY_CASE = (_WARD.where(func.lower(Ward.code) == bindparam("key"))
                  .order_by(Ward.id).limit(1))
_WARD_BY_ID = _WARD.where(Ward.id == bindparam("ward_id"))


def _series(sessions: Sequence[FeedItem]) -> tuple[FeedItem, ...]:
    """Each session once (`compose.group_sessions`): its soonest occurrence, carrying every
    occurrence and published when the newest of them was."""
    by_id = {item.id: item for item in sessions}
    return tuple(
        replace(by_id[series.session.id], occurrences=occurrences,
                published_at=max(o.published_at for o in occurrences))
        for series in group_sessions(item.as_digest_item() for item in sessions)
        for occurrences in [tuple(by_id[i] for i in series.ids)])


def _feed_item(row: Row[*tuple[Any, ...]]) -> FeedItem:
    (ident, kind, title, body_html, link, published_at, collected_at, starts_at, ends_at,
     location, source_kind) = row
    return FeedItem(
        id=ident,
        kind=ItemKind(kind),
        title=title,
        body_html=sanitise_html(body_html),
        link=safe_link(link),
        published_at=published_at or collected_at,
        starts_at=starts_at,
        ends_at=ends_at,
        location=location,
        from_policeuk=source_kind == SourceKind.POLICEUK,
    )


def ward_stamp(session: Session, code: str) -> WardStamp | None:
    """The stamp of the ward with this code (in any case), or None when there is none."""
    # Stored rows only, read through the session's connection: columns need none of the
    # ORM's work on each statement, which cost as much as running them.
    connection = session.connection()
    code = code.strip()
    ward = connection.execute(_WARD_EXACT, {"code": code}).first() or connection.execute(
        _WARD_ANY_CASE, {"key": ward_key(code)}).first()
    return None if ward is None else WardStamp(*ward)


def _fresh_until(stamp: WardStamp, items: Sequence[FeedItem], sessions: Sequence[FeedItem],
                 *, now: datetime, max_age: timedelta) -> datetime | None:
    """When the first item shown leaves the selection with time alone (a session ends, news
    passes `max_age`); None while the ward's newest change is within `SETTLE` of `now`."""
    if stamp.changed_at is not None and stamp.changed_at > now - SETTLE:
        return None
    ends = [item.ends_at or item.starts_at for item in sessions]
    return min([*(end for end in ends if end is not None),
                *(item.published_at + max_age for item in items), FOREVER])


def read_ward_feed(session: Session, stamp: WardStamp, *, now: datetime, force: ForceSettings,
                   max_items: int = MAX_ITEMS, max_age: timedelta = MAX_AGE) -> WardFeed:
    """The published items of the ward `stamp` was read for; its team is named as the
    force's settings name it."""
    connection = session.connection()
    recent = connection.execute(_RECENT, {"ward_id": stamp.id, "since": now - max_age,
                                          "max_items": max_items}).all()
    coming = connection.execute(_COMING, {"ward_id": stamp.id, "now": now,
                                          "max_sessions": MAX_SESSIONS}).all()
    items = tuple(_feed_item(row) for row in recent)
    sessions = tuple(_feed_item(row) for row in coming)
    stamps = [item.published_at for item in (*items, *sessions)]
    if stamp.withdrawn_at is not None:
        stamps.append(stamp.withdrawn_at)
    updated = max(stamps) if stamps else stamp.created_at
    fresh_until = _fresh_until(stamp, items, sessions, now=now, max_age=max_age)
    if fresh_until is not None and connection.execute(
            _WARD_BY_ID, {"ward_id": stamp.id}).first() != tuple(astuple(stamp)):
        # A change committed between the stamp and the rows (each statement sees what is
        # committed when it runs): the rows may hold what the stamp does not, so not kept.
        fresh_until = None
    return WardFeed(stamp.code, stamp.name, items, sessions, updated, _series(sessions),
                    force.team_of(stamp.name), stamp, fresh_until)


def load_ward_feed(session: Session, code: str, *, now: datetime, force: ForceSettings,
                   max_items: int = MAX_ITEMS, max_age: timedelta = MAX_AGE) -> WardFeed | None:
    """The ward's published items, or None when there is no ward with this code."""
    stamp = ward_stamp(session, code)
    return None if stamp is None else read_ward_feed(
        session, stamp, now=now, force=force, max_items=max_items, max_age=max_age)


def _details(item: FeedItem, zone: ZoneInfo) -> list[str]:
    """A session's times and place, or an alert's urgency, as lines shown above its body."""
    if item.urgent:
        return ["Urgent police alert"]
    if item.kind != ItemKind.SESSION:
        return []
    lines = [f"When: {when(o.as_digest_item(), zone)}" for o in item.occurrences or (item,)]
    if item.location:
        lines.append(f"Where: {item.location}")
    return lines


def atom_feed(feed: WardFeed, urls: FeedUrls, *, zone: ZoneInfo) -> bytes:
    """Atom 1.0: one entry per recent item and coming session (`WardFeed.entries`), newest
    first, the team as author; an urgent alert's title says "Urgent:"."""
    generator = FeedGenerator()
    generator.id(urls.page)
    generator.title(f"{feed.name}: neighbourhood news")
    generator.subtitle(f"Posts, advice, contact sessions and urgent alerts from the "
                       f"{feed.team_name}")
    generator.author({"name": feed.team_name})
    generator.link(href=urls.page, rel="alternate", type="text/html")
    generator.link(href=urls.atom, rel="self", type="application/atom+xml")
    generator.language("en-GB")
    generator.updated(feed.updated)
    for item in feed.entries:
        entry = generator.add_entry(order="append")
        entry.id(urls.entry_id(item))
        entry.title(f"Urgent: {item.title}" if item.urgent else item.title)
        entry.updated(item.published_at)
        entry.published(item.published_at)
        entry.author({"name": feed.team_name})
        entry.link(href=item.link or urls.entry_id(item), rel="alternate")
        entry.category(term=item.kind.value)
        details = "".join(f"<p>{_escape(line)}</p>" for line in _details(item, zone))
        entry.content(details + item.body_html, type="html")
        if item.from_policeuk:
            entry.rights(ATTRIBUTION_TEXT)
    data: bytes = generator.atom_str(pretty=True)
    return data


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _stamp(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _json_item(item: FeedItem, urls: FeedUrls) -> dict[str, Any]:
    return {
        "id": item.id,
        "url": urls.entry_id(item),
        "kind": item.kind.value,
        "urgent": item.urgent,
        "title": item.title,
        "text": item.text,
        "html": item.body_html,
        "link": item.link,
        "published": _stamp(item.published_at),
        "starts": _stamp(item.starts_at),
        "ends": _stamp(item.ends_at),
        "location": item.location,
        "dates": [{"starts": _stamp(starts), "ends": _stamp(ends)}
                  for starts, ends in item.dates] if item.kind == ItemKind.SESSION else [],
        "attribution": ({"text": ATTRIBUTION_TEXT, "licence": LICENCE_NAME,
                         "licence_url": LICENCE_URL} if item.from_policeuk else None),
    }


def json_document(feed: WardFeed, urls: FeedUrls) -> bytes:
    """The ward's items as JSON (UTF-8), in this shape (times are UTC, ISO 8601, "Z")::

        {"version": 1,
         "ward": {"code": "RIV", "name": "Riverside",
                  "team": "Riverside Safer Neighbourhood Team",
                  "url": <archive page>, "atom": <feed>, "ics": <calendar>, "json": <this>},
         "updated": "2026-05-01T09:30:00Z",
         "items": [{"id": 12, "url": <archive page>#item-12,
                    "kind": "post" | "advice" | "session" | "alert",
                    "urgent": bool (true for an officer's urgent alert),
                    "title": str, "text": str, "html": <sanitised HTML>,
                    "link": str | null, "published": str,
                    "starts": str | null, "ends": str | null, "location": str | null,
                    "dates": [{"starts": str, "ends": str | null}] (a session's every
                              date, soonest first; [] for other kinds),
                    "attribution": null | {"text": "Source: data.police.uk, Open Government
                                           Licence v3.0.", "licence": "Open Government
                                           Licence v3.0", "licence_url": <OGL v3 URL>}}],
         "sessions": [<the same item shape: sessions that have not ended, soonest first>]}

    `items` are the recent news and each coming session once, newest first (as in the Atom
    feed); `sessions` are what the `.ics` holds, one per date. `attribution` is set on items
    from data.police.uk.
    """
    document = {
        "version": JSON_VERSION,
        "ward": {"code": feed.code, "name": feed.name, "team": feed.team_name,
                 "url": urls.page, "atom": urls.atom, "ics": urls.ics, "json": urls.json},
        "updated": _stamp(feed.updated),
        "items": [_json_item(item, urls) for item in feed.entries],
        "sessions": [_json_item(item, urls) for item in feed.sessions],
    }
    return json.dumps(document, ensure_ascii=False, indent=2).encode()


def ics_calendar(feed: WardFeed, *, uid_domain: str) -> bytes:
    """The ward's coming sessions as iCalendar (possibly with no events yet)."""
    sessions: Sequence[DigestItem] = [item.as_digest_item() for item in feed.sessions]
    return calendar_of(sessions, ward_name=feed.name, uid_domain=uid_domain, now=feed.updated)


def uid_domain(from_address: str) -> str:
    """The domain of session UIDs: the same as in the digests' calendars."""
    return from_address.rpartition("@")[2] or "localhost"

