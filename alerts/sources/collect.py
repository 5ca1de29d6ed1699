"""The collect service: fetch every feed, calendar and police neighbourhood, store its items.

Each source is fetched outside any database transaction and stored in its own transaction;
a source that fails gets its one-line error recorded and the run goes on with the next, so
one broken source never stops the others and nothing already stored is lost. What one source
may bring in one collect is bounded (alerts/sources/bounds.py): each result says what was
left out, naming the source.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import httpx
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.core.db import transaction
from alerts.core.events import EventBus, ItemPublished
from alerts.sources.bounds import Bounded, first_items
from alerts.sources.fetch import fetch, make_client
from alerts.sources.ics import parse_calendar
from alerts.sources.items import CollectedItem, store_items
from alerts.sources.policeuk import collect_policeuk
from alerts.sources.registry import (
    FETCHED_KINDS,
    MAX_ETAG,
    MAX_LAST_MODIFIED,
    Source,
    SourceError,
    SourceKind,
)
from alerts.sources.rss import parse_feed
from alerts.sources.sanitise import shorten
from subscriptions.base import utcnow

log = logging.getLogger(__name__)

# Kinds whose items are a schedule: a coming session that vanishes from one was cancelled.
SCHEDULE_KINDS = (SourceKind.ICS, SourceKind.POLICEUK)


@dataclass(frozen=True)
class SourceResult:
    """What collecting one source did; `error` is a one-line reason naming the source, and
    each of `left_out` a line naming it and what a cap left out of this collect."""

    source_id: int
    description: str
    added: int
    updated: int
    withdrawn: int
    not_modified: bool
    error: str | None
    new_item_ids: tuple[int, ...] = ()
    left_out: tuple[str, ...] = ()


@dataclass(frozen=True)
class CollectReport:
    results: list[SourceResult]

    @property
    def added(self) -> int:
        return sum(result.added for result in self.results)

    @property
    def errors(self) -> list[str]:
        return [result.error for result in self.results if result.error is not None]


@dataclass(frozen=True)
class _Target:
    """What a fetch needs to know of a source, read before the network is touched."""

    id: int
    kind: str
    url: str
    etag: str | None
    last_modified: str | None
    description: str
    ward_code: str


def collect(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    source_id: int | None = None,
    client: httpx.Client | None = None,
    now: datetime | None = None,
    bus: EventBus | None = None,
) -> CollectReport:
    """Collect every fetched source (rss, atom, ics, policeuk), or only `source_id`, once.

    With a `bus`, each source that stored new items publishes `ItemPublished`.
    """
    now = now or utcnow()
    targets = _targets(factory, source_id)
    own_client = client is None
    http = make_client(settings) if client is None else client
    results: list[SourceResult] = []
    try:
        for target in targets:
            result = _collect_one(factory, settings, http, target, now)
            results.append(result)
            if bus is not None and result.new_item_ids:
                bus.publish(ItemPublished(target.ward_code, result.new_item_ids))
        return CollectReport(results)
    finally:
        if own_client:
            http.close()


def _targets(factory: sessionmaker[Session], source_id: int | None) -> list[_Target]:
    with factory() as session:
        if source_id is not None:
            source = session.get(Source, source_id)
            if source is None:
                raise SourceError(f"no source with id {source_id} (see `alerts sources list`)")
            if source.kind not in FETCHED_KINDS:
                raise SourceError(f"{source.describe()} is not fetched, so there is nothing "
                                  "to collect")
            sources = [source]
        else:
            sources = list(session.scalars(
                select(Source).where(Source.kind.in_(FETCHED_KINDS)).order_by(Source.id)
            ))
        return [
            _Target(s.id, s.kind, s.url, s.etag, s.last_modified, s.describe(), s.ward.code)
            for s in sources
        ]


def _collect_one(
    factory: sessionmaker[Session],
    settings: Settings,
    client: httpx.Client,
    target: _Target,
    now: datetime,
) -> SourceResult:
    try:
        read = _read(settings, client, target, now)
    except (SourceError, httpx.HTTPError) as exc:
        return _failed(factory, target, now, _one_line(exc))
    except Exception as exc:  # a parser tripping over odd input must not stop the others
        log.exception("collecting %s failed unexpectedly", target.description)
        return _failed(factory, target, now, f"unexpected {type(exc).__name__}: {_one_line(exc)}")

    try:
        with transaction(factory) as session:
            source = session.get(Source, target.id)
            if source is None:  # removed while it was being fetched
                return SourceResult(target.id, target.description, 0, 0, 0, False,
                                    f"{target.description}: removed during the run")
            added = updated = withdrawn = 0
            new_ids: tuple[int, ...] = ()
            if read.items is not None:
                stored = store_items(
                    session,
                    source,
                    read.items,
                    withdraw_missing_after=now if target.kind in SCHEDULE_KINDS else None,
                )
                added, updated, withdrawn = stored.added, stored.updated, stored.withdrawn
                new_ids = stored.new_item_ids
            source.etag = _validator(read.etag, MAX_ETAG)
            source.last_modified = _validator(read.last_modified, MAX_LAST_MODIFIED)
            source.last_fetched_at = now
            source.last_ok_at = now
            source.last_error = None
    except SQLAlchemyError as exc:
        log.exception("storing the items of %s failed", target.description)
        return _failed(factory, target, now, f"could not store its items: {_one_line(exc)}")
    return SourceResult(
        source_id=target.id,
        description=target.description,
        added=added,
        updated=updated,
        withdrawn=withdrawn,
        not_modified=read.items is None,
        error=None,
        new_item_ids=new_ids,
        left_out=tuple(f"{target.description}: {note}" for note in read.left_out),
    )


@dataclass(frozen=True)
class _Read:
    """What a source gave this run; `items` is None when it answered 304 Not Modified."""

    items: list[CollectedItem] | None
    etag: str | None
    last_modified: str | None
    left_out: tuple[str, ...] = ()


def _read(settings: Settings, client: httpx.Client, target: _Target, now: datetime) -> _Read:
    """Fetch and parse one source, touching no database; SourceError on any failure."""
    bounds = settings.sources
    if target.kind == SourceKind.POLICEUK:
        items = collect_policeuk(
            client,
            settings.sources.policeuk_base_url,
            target.url,
            now=now,
            timezone=settings.scheduler.timezone,
        )
        kept = first_items(Bounded(items), bounds.max_items_per_collect)
        return _Read(kept.items, None, None, kept.left_out)
    is_calendar = target.kind == SourceKind.ICS
    # A calendar is always fetched whole: its occurrences move forward with time, so a 304
    # would leave the coming weeks unexpanded while the file itself never changes.
    fetched = fetch(
        client,
        target.url,
        etag=None if is_calendar else target.etag,
        last_modified=None if is_calendar else target.last_modified,
    )
    if not fetched.modified:
        return _Read(None, fetched.etag, fetched.last_modified)
    if is_calendar:
        parsed = parse_calendar(
            fetched.content,
            now=now,
            weeks=settings.sources.calendar_weeks,
            timezone=settings.scheduler.timezone,
            max_occurrences=bounds.max_occurrences_per_event,
            max_items=bounds.max_items_per_collect,
        )
    else:
        parsed = parse_feed(
            fetched.content,
            url=target.url,
            max_entries=bounds.max_feed_entries,
            max_items=bounds.max_items_per_collect,
        )
    return _Read(parsed.items, fetched.etag, fetched.last_modified, parsed.left_out)


def _failed(
    factory: sessionmaker[Session], target: _Target, now: datetime, reason: str
) -> SourceResult:
    error = f"{target.description}: {reason}"
    with transaction(factory) as session:
        source = session.get(Source, target.id)
        if source is not None:
            source.last_error = error
            source.last_fetched_at = now
    return SourceResult(target.id, target.description, 0, 0, 0, False, error)


def _validator(value: str | None, limit: int) -> str | None:
    """A cache validator too long to store is dropped, not cut: a cut one would never match,
    and the next fetch is then simply unconditional."""
    return value if value is not None and len(value) <= limit else None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return shorten(text, 500)
