"""The wards' open feeds on the web: read-only, public and cacheable.

    GET /wards/                       every ward, with links to its page
    GET /wards/{code}/                the ward's archive page (recent news and urgent alerts,
                                      coming sessions once each with their dates)
    GET /wards/{code}/feed.atom       Atom 1.0           (application/atom+xml)
    GET /wards/{code}/sessions.ics    iCalendar          (text/calendar)
    GET /wards/{code}/items.json      JSON               (application/json; see open_feeds)

Every answer carries `Cache-Control: public, max-age=300`, a strong ETag over its body and,
for a ward, `Last-Modified` (the newest item); a matching `If-None-Match` (or, without one, an
`If-Modified-Since` not older than that) gets 304. No cookie is set and no form is shown.
Handlers read through `alerts.usecases.open_feeds` and render; they are `async def`s whose
reads run where they cost least (`alerts.web.page_reads`: on the loop on SQLite). A ward's
`WardFeed` is kept under its stamp (`open_feeds.ward_stamp`: one indexed query, no item row)
while it is fresh, and read again only when the stamp differs or time has moved something
off it (`WardFeed.is_fresh`). What they render is kept (`Rendered`) under
everything it is made of: the page, its language and switch link, and the ward list or the
feed's identity (`WardFeed.identity`); so a page is rendered again exactly when what it shows
has changed, and never kept stale.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from alerts.core.config import Settings
from alerts.core.translations import HTML_LANG, babel_locale
from alerts.mail.render import environment, when
from alerts.usecases.open_feeds import (
    FeedUrls,
    WardFeed,
    atom_feed,
    ics_calendar,
    json_document,
    list_public_wards,
    read_ward_feed,
    uid_domain,
    ward_stamp,
)
from alerts.web.kept_pages import Kept, Rendered
from alerts.web.kept_pages import etag as body_etag
from alerts.web.languages import VARY, request_language, switch_link
from alerts.web.page_reads import PageReads
from alerts.web.plain_routes import add_page
from alerts.web.residents import HEADERS
from subscriptions.base import utcnow
from subscriptions.languages import Language

MAX_AGE_SECONDS = 300
CACHE_CONTROL = f"public, max-age={MAX_AGE_SECONDS}"
OPEN_HEADERS = {**HEADERS, "Cache-Control": CACHE_CONTROL}
# The data feeds may be read by pages elsewhere (a parish site's script): they are public.
DATA_HEADERS = {**OPEN_HEADERS, "Access-Control-Allow-Origin": "*"}
HTML = "text/html; charset=utf-8"
ATOM = "application/atom+xml; charset=utf-8"
ICS = "text/calendar; charset=utf-8"
JSON = "application/json"


def _not_modified(request: Request, etag: str, modified: datetime | None) -> bool:
    """RFC 9110 §13.2.2: If-None-Match decides when present; else If-Modified-Since."""
    match = request.headers.get("if-none-match")
    if match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in match.split(",")}
        return "*" in tags or etag in tags
    since = request.headers.get("if-modified-since")
    if since is None or modified is None:
        return False
    try:
        moment = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return modified.replace(microsecond=0) <= moment


def cached(request: Request, body: bytes, media_type: str, *, modified: datetime | None,
           headers: dict[str, str] = OPEN_HEADERS, etag: str | None = None) -> Response:
    """The body with caching headers, or 304 when the client's copy is current."""
    etag = etag or body_etag(body)
    extra = {**headers, "ETag": etag}
    if modified is not None:
        extra["Last-Modified"] = format_datetime(modified.astimezone(UTC), usegmt=True)
    if _not_modified(request, etag, modified):
        return Response(status_code=304, headers=extra)
    return Response(body, media_type=media_type, headers=extra)


def _local_day(moment: datetime, zone: ZoneInfo, language: Language) -> str:
    return format_date(moment.astimezone(zone), "d MMMM y", locale=babel_locale(language))


def open_feeds_router(reads: PageReads, settings: Settings) -> APIRouter:
    router = APIRouter()
    zone = ZoneInfo(settings.scheduler.timezone)
    domain = uid_domain(settings.mail.from_address)
    rendered = Rendered()
    feeds = Kept[WardFeed](size=1000)  # by ward: each ward's newest read

    def page(request: Request, language: Language, name: str, context: dict[str, Any], *,
             modified: datetime | None, shows: Hashable, missing: bool = False) -> Response:
        """The page `name`, rendered again only when `shows` (what the context is made of)
        or the language or switch link differ from a kept rendering."""
        switch = switch_link(request, language)

        def render() -> bytes:
            return environment(language=language).get_template(f"web/{name}.html").render(
                force=settings.force, **switch, **context).encode()

        if missing:  # not cached: the ward may be added in a minute
            return Response(render(), status_code=404, media_type=HTML, headers=HEADERS)
        body, etag = rendered.body((name, language, switch["switch_url"], shows), render)
        # No cookie on a publicly cached page: the switch link's ?lang= is its own URL.
        return cached(request, body, HTML, modified=modified, etag=etag, headers={
            **OPEN_HEADERS, "Vary": VARY, "Content-Language": HTML_LANG[language]})

    def data(request: Request, feed: WardFeed, kind: str, media_type: str,
             make: Callable[[], bytes]) -> Response:
        body, etag = rendered.body((kind, feed.identity), make)
        return cached(request, body, media_type, modified=feed.updated, etag=etag,
                      headers=DATA_HEADERS)

    async def wards_page(request: Request, *, missing: str | None = None) -> Response:
        wards = await reads(list_public_wards)
        return page(request, request_language(request), "wards",
                    {"wards": wards, "missing": missing}, modified=None,
                    shows=tuple(wards), missing=missing is not None)

    def read_feed(session: Session, code: str) -> WardFeed | None:
        now = utcnow()
        stamp = ward_stamp(session, code)
        if stamp is None:
            return None
        feed = feeds.get(stamp.id, lambda: read_ward_feed(session, stamp, now=now,
                                                       force=settings.force),
                         lambda kept: kept.is_fresh(stamp, now))
        return feed

    async def ward_feed(code: str) -> tuple[WardFeed, FeedUrls] | None:
        feed = await reads(lambda session: read_feed(session, code))
        return None if feed is None else (feed, FeedUrls.for_ward(settings.web.base_url,
                                                                  feed.code))

    def moved(request: Request, code: str, feed: WardFeed, name: str) -> Response | None:
        # A code typed in another case ("riv" for RIV) finds the ward: send it, once and
        # for good, to the one address each page and feed is cached and linked under.
        if code == feed.code:
            return None
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"/wards/{feed.code}/{name}{query}", status_code=301)

    async def wards(request: Request) -> Response:
        return await wards_page(request)

    async def ward_page(request: Request) -> Response:
        code: str = request.path_params["code"]
        found = await ward_feed(code)
        if found is None:
            return await wards_page(request, missing=code)
        feed, urls = found
        if (redirect := moved(request, code, feed, "")) is not None:
            return redirect
        language = request_language(request)
        return page(request, language, "ward_archive", {
            "feed": feed, "urls": urls,
            "dates": lambda item: [when(o.as_digest_item(), zone, language)
                                   for o in item.occurrences or (item,)],
            "day": lambda moment: _local_day(moment, zone, language),
            "clock": lambda moment: f"{moment.astimezone(zone):%H:%M}"},
            modified=feed.updated, shows=(feed.identity, urls))

    async def ward_atom(request: Request) -> Response:
        code: str = request.path_params["code"]
        found = await ward_feed(code)
        if found is None:
            return await wards_page(request, missing=code)
        feed, urls = found
        if (redirect := moved(request, code, feed, "feed.atom")) is not None:
            return redirect
        return data(request, feed, "atom", ATOM, lambda: atom_feed(feed, urls, zone=zone))

    async def ward_ics(request: Request) -> Response:
        code: str = request.path_params["code"]
        found = await ward_feed(code)
        if found is None:
            return await wards_page(request, missing=code)
        feed, _ = found
        if (redirect := moved(request, code, feed, "sessions.ics")) is not None:
            return redirect
        return data(request, feed, "ics", ICS, lambda: ics_calendar(feed, uid_domain=domain))

    async def ward_json(request: Request) -> Response:
        code: str = request.path_params["code"]
        found = await ward_feed(code)
        if found is None:
            return await wards_page(request, missing=code)
        feed, urls = found
        if (redirect := moved(request, code, feed, "items.json")) is not None:
            return redirect
        return data(request, feed, "json", JSON, lambda: json_document(feed, urls))

    for path, endpoint in (("/wards/", wards), ("/wards/{code}/", ward_page),
                           ("/wards/{code}/feed.atom", ward_atom),
                           ("/wards/{code}/sessions.ics", ward_ics),
                           ("/wards/{code}/items.json", ward_json)):
        add_page(router, path, endpoint)
    return router
