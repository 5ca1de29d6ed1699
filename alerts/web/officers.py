"""The officers' pages under `/staff/`: the overview of their wards, and per ward the post
form (team update, contact session, advice, urgent alert behind a confirmation step) with a
preview of the real email, the digest preview, the ward's sources, the replies inbox and
each conversation with its "handled" mark and answer box.

Handlers are thin: parse the form, call `alerts.usecases.officers` (which checks that the ward is
the signed-in person's and audits every change), render. A ward not theirs is `Forbidden`
(403) from the service, whatever the page or URL; a form whose hidden ward differs from its
page's is refused the same way, before anything is stored.

Publishing is `alerts.usecases.posting.post_draft`, as for `alerts post`: it stores, audits
and announces the post on an event bus: the one `alerts run` gives the app when there is
one, else a bus of this app's own with the pipeline's handlers wired in (immediate
subscribers' messages are queued at once). Urgent alerts are queued by the service itself;
the delivery loop of `alerts run` finds the rows by polling.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, ParamSpec
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from alerts.accounts.access import Forbidden, Principal
from alerts.accounts.users import Role
from alerts.core.db import transaction
from alerts.core.events import EventBus
from alerts.sources.items import ItemKind
from alerts.usecases import officers, posting
from alerts.usecases.pipeline import wire
from alerts.usecases.posting import Draft
from alerts.usecases.staff import InputError, NotFound
from alerts.web.staff import StaffSite
from subscriptions.base import utcnow

FormText = Annotated[str, Form()]
FormList = Annotated[list[str], Form()]
P = ParamSpec("P")
# What an officer may tag with topics: a session or an urgent alert goes to everyone.
TOPIC_KINDS = (ItemKind.POST, ItemKind.ADVICE)

KINDS: dict[str, tuple[str, str]] = {
    ItemKind.POST: ("Team update", "News from the team: what you have been doing, results, "
                                   "appeals for information."),
    ItemKind.SESSION: ("Contact session", "A time and place residents can meet the team, "
                                          "such as a street surgery or a coffee morning."),
    ItemKind.ADVICE: ("Crime-prevention advice", "How residents can keep themselves, their "
                                                 "homes and their belongings safe."),
    ItemKind.ALERT: ("Urgent alert", "Something residents need to know now. It goes at once "
                                     "to every confirmed subscriber, whatever they chose."),
}


def parse_kind(value: str) -> ItemKind | None:
    try:
        kind = ItemKind(value)
    except ValueError:
        return None
    return kind if kind in KINDS else None


def parse_local(value: str, zone: ZoneInfo) -> datetime | None:
    """A `datetime-local` field (2026-12-05T10:00) read in the service's time zone; raises
    ValueError for anything else."""
    if not value.strip():
        return None
    moment = datetime.fromisoformat(value.strip())
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


def officers_router(site: StaffSite, bus: EventBus | None = None) -> APIRouter:
    router = APIRouter()
    settings = site.settings
    zone = ZoneInfo(settings.scheduler.timezone)
    if bus is None:
        # As `alerts post` does in its own process: the pipeline's handlers on a bus of ours.
        bus = EventBus()
        wire(bus, site.factory, settings)
    events = bus

    def shown(moment: datetime | None) -> str:
        if moment is None:
            return "never"
        local = moment.astimezone(zone)
        return f"{local:%a} {local.day} {local:%b %Y}, {local:%H:%M}"

    def day(moment: datetime | None) -> str:
        if moment is None:
            return "never"
        local = moment.astimezone(zone)
        return f"{local:%a} {local.day} {local:%b}"

    def page(request: Request, name: str, context: dict[str, Any], who: Principal, *,
             status: int = 200) -> Response:
        return site.page(request, name, {"shown": shown, "day": day, "kinds": KINDS,
                                         **context}, who=who, status=status)

    def found(handler: Callable[P, Response]) -> Callable[P, Response]:
        """A ward or conversation that does not exist answers 404 with a page."""

        @functools.wraps(handler)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> Response:
            try:
                return handler(*args, **kwargs)
            except NotFound:
                request = kwargs["request"]
                assert isinstance(request, Request)
                return site.page(request, "not_found", {}, who=site.principal(request),
                                 status=404)

        return guarded

    # --- overview and ward pages ----------------------------------------------------

    @router.get("/staff")
    def staff_root() -> Response:
        return site.redirect("/staff/")

    @router.get("/staff/")
    def overview(request: Request) -> Response:
        who = site.require(request)
        if who.role == Role.COORDINATOR:
            return site.redirect("/staff/schemes/")
        with site.factory() as session:
            wards = officers.wards_at_a_glance(session, who)
        return page(request, "overview", {"wards": wards}, who)

    @router.get("/staff/wards/{code}/")
    @found
    def ward_home(request: Request, code: str, done: str = "", queued: int = 0) -> Response:
        who = site.require(request)
        with site.factory() as session:
            glance = officers.ward_glance(session, who, code)
            recent = officers.recent_items(session, who, code)
            due = officers.next_digest(session, settings, who, code, now=utcnow())
        return page(request, "ward", {
            "ward": glance, "recent": recent, "done": parse_kind(done), "queued": queued,
            "next_digest": due, "here": "ward"}, who)

    # --- posting ----------------------------------------------------------------------

    def post_form(request: Request, who: Principal, ward: officers.WardGlance,
                  kind: ItemKind, values: dict[str, str], errors: dict[str, str], *,
                  status: int = 200) -> Response:
        return page(request, "post_form", {
            "ward": ward, "kind": kind, "values": values, "errors": errors,
            "topic_names": settings.topics.names
            if kind in TOPIC_KINDS else [],
            "tagged": values.get("topics", "").split(","), "here": "post"}, who, status=status)

    @router.get("/staff/wards/{code}/post")
    @found
    def post_get(request: Request, code: str, kind: str = "post") -> Response:
        who = site.require(request)
        chosen = parse_kind(kind) or ItemKind.POST
        with site.factory() as session:
            ward = officers.ward_glance(session, who, code)
        return post_form(request, who, ward, chosen, {}, {})

    @router.post("/staff/wards/{code}/post")
    @found
    def post_post(request: Request, code: str, csrf_token: FormText = "",
                  ward: FormText = "", kind: FormText = "", title: FormText = "",
                  body: FormText = "", starts: FormText = "", ends: FormText = "",
                  location: FormText = "", action: FormText = "preview",
                  confirm: FormText = "", topics: FormList = []) -> Response:  # noqa: B006
        site.check_form(request, csrf_token)
        who = site.require(request)
        if ward != code:
            # The form was changed to name another ward than its page: refuse, store nothing.
            raise Forbidden("that form was for another ward")
        with site.factory() as session:
            glance = officers.ward_glance(session, who, code)
        chosen = parse_kind(kind)
        # The preview carries the ticked topics on as one hidden "a,b" value.
        tagged = tuple(sorted({t for value in topics for t in value.split(",") if t}))
        values = {"title": title, "body": body, "starts": starts, "ends": ends,
                  "location": location, "topics": ",".join(tagged)}
        if chosen is None:
            return post_form(request, who, glance, ItemKind.POST, values,
                             {"kind": "Choose what kind of post this is"}, status=400)
        errors: dict[str, str] = {}
        times: dict[str, datetime | None] = {"starts": None, "ends": None}
        if chosen == ItemKind.SESSION:
            for field, label in (("starts", "start"), ("ends", "end")):
                try:
                    times[field] = parse_local(values[field], zone)
                except ValueError:
                    errors[field] = f"Enter the {label} as a date and a time"
        if errors:
            return post_form(request, who, glance, chosen, values, errors, status=400)
        draft = Draft(kind=chosen, title=title, body=body, starts=times["starts"],
                      ends=times["ends"], location=location or None,
                      topics=tagged if chosen in TOPIC_KINDS else ())
        if action == "edit":
            return post_form(request, who, glance, chosen, values, {})
        now = utcnow()
        try:
            if action == "publish" and (chosen != ItemKind.ALERT or confirm == "send"):
                done = posting.post_draft(site.factory, events, settings, who, code, draft,
                                          now=now)
                return site.redirect(f"/staff/wards/{done.ward_code}/?done={done.kind.value}"
                                     f"&queued={done.deliveries}")
            with site.factory() as session:
                preview = posting.preview_draft(session, settings, who, code, draft, now=now)
        except InputError as error:
            return post_form(request, who, glance, chosen, values, error.errors, status=400)
        return page(request, "post_preview", {
            "ward": glance, "kind": chosen, "values": values, "preview": preview,
            "html": officers.for_display(preview.rendered.html),
            "text": officers.for_display(preview.rendered.text, as_text=True),
            "here": "post"}, who)

    @router.get("/staff/wards/{code}/digest")
    @found
    def digest(request: Request, code: str) -> Response:
        who = site.require(request)
        with site.factory() as session:
            glance = officers.ward_glance(session, who, code)
            rendered = officers.digest_preview(session, settings, who, code, now=utcnow())
            due = officers.next_digest(session, settings, who, code, now=utcnow())
        return page(request, "digest_preview", {
            "ward": glance, "rendered": rendered, "next_digest": due,
            "html": officers.for_display(rendered.html) if rendered else "",
            "text": officers.for_display(rendered.text, as_text=True) if rendered else "",
            "here": "digest"}, who)

    @router.get("/staff/wards/{code}/sources")
    @found
    def sources(request: Request, code: str) -> Response:
        who = site.require(request)
        with site.factory() as session:
            glance = officers.ward_glance(session, who, code)
            rows = officers.ward_sources(session, who, code)
        return page(request, "sources", {"ward": glance, "sources": rows, "here": "sources"},
                    who)

    # --- replies ----------------------------------------------------------------------

    @router.get("/staff/wards/{code}/replies")
    @found
    def replies(request: Request, code: str) -> Response:
        who = site.require(request)
        with site.factory() as session:
            glance = officers.ward_glance(session, who, code)
            threads = officers.inbox(session, who, code)
        return page(request, "replies", {"ward": glance, "threads": threads,
                                         "here": "replies"}, who)

    def thread_page(request: Request, who: Principal, code: str, thread_id: int, *,
                    answer: str = "", errors: dict[str, str] | None = None, notice: str = "",
                    status: int = 200) -> Response:
        with site.factory() as session:
            if officers.thread_ward(session, who, thread_id) != code:
                raise NotFound("no such conversation in this ward")
            glance = officers.ward_glance(session, who, code)
            view = officers.read_thread(session, who, thread_id)
        return page(request, "thread", {
            "ward": glance, "thread": view, "answer": answer, "errors": errors or {},
            "notice": notice, "here": "replies"}, who, status=status)

    def in_ward(who: Principal, code: str, thread_id: int) -> None:
        with site.factory() as session:
            if officers.thread_ward(session, who, thread_id) != code:
                raise NotFound("no such conversation in this ward")

    @router.get("/staff/wards/{code}/replies/{thread_id}")
    @found
    def thread(request: Request, code: str, thread_id: int, done: str = "") -> Response:
        who = site.require(request)
        notice = {"answered": "Your answer is on its way to the resident.",
                  "handled": "Marked as handled.",
                  "reopened": "Marked as open again."}.get(done, "")
        return thread_page(request, who, code, thread_id, notice=notice)

    @router.post("/staff/wards/{code}/replies/{thread_id}/handled")
    @found
    def handled(request: Request, code: str, thread_id: int, csrf_token: FormText = "",
                handled: FormText = "yes") -> Response:
        site.check_form(request, csrf_token)
        who = site.require(request)
        in_ward(who, code, thread_id)
        with transaction(site.factory) as session:
            officers.mark_handled(session, who, thread_id, handled=handled == "yes",
                                  now=utcnow())
        done = "handled" if handled == "yes" else "reopened"
        return site.redirect(f"/staff/wards/{code}/replies/{thread_id}?done={done}")

    @router.post("/staff/wards/{code}/replies/{thread_id}/answer")
    @found
    def answer(request: Request, code: str, thread_id: int, csrf_token: FormText = "",
               answer: FormText = "") -> Response:
        site.check_form(request, csrf_token)
        who = site.require(request)
        in_ward(who, code, thread_id)
        try:
            with transaction(site.factory) as session:
                officers.answer_thread(session, settings, who, thread_id, answer,
                                       now=utcnow())
        except InputError as error:
            return thread_page(request, who, code, thread_id, answer=answer,
                               errors=error.errors, status=400)
        return site.redirect(f"/staff/wards/{code}/replies/{thread_id}?done=answered")

    return router
