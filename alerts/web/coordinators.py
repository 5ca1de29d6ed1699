"""The coordinators' pages under `/staff/schemes/`: the schemes a person keeps, a scheme's
members (add one, remove one), import a CSV, export one, who bounced and why, and a message
to the members (write, preview the real email, send), and the ward's latest digest as a PDF to
print for members without email. On the residents' side, `/scheme-invitation/{token}`: the
page a scheme's invitation links to, whose one button (a POST) joins the scheme; opening the
link changes nothing, since mail scanners open every link in an email.

Handlers are thin: they parse the form, check its CSRF token, call `alerts.usecases.coordinators`
(which decides who may do what and audits every change) and render. Plain `def`s, so FastAPI
runs them in worker threads. Every page works without JavaScript. No resident's address is
written to a log; the CSV export is a download that is never cached.
"""

from __future__ import annotations

import io
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from alerts.accounts.access import Principal
from alerts.accounts.reset_mail import invitation
from alerts.core.config import Settings
from alerts.core.db import transaction
from alerts.core.events import EventBus, MailQueued
from alerts.mail.marks import fill_links
from alerts.mail.messages import MessageKind
from alerts.usecases.coordinators import (
    MAX_BODY,
    MAX_IMPORT_BYTES,
    MAX_SUBJECT,
    MESSAGES_PER_DAY,
    CoordinatorError,
    MessageErrors,
    add_member,
    bounce_report,
    create_scheme,
    export_filename,
    export_members,
    import_members,
    kept_schemes,
    member_of,
    preview_message,
    printable_digest,
    remove_member,
    send_message,
    view_scheme,
    wards_for_new_schemes,
)
from alerts.usecases.printed_digests import NoDigestYet, pdf_filename, render_pdf
from alerts.usecases.scheme_invitations import INVITE_PATH, accept, preview_invitation
from alerts.web.residents import linked_page
from alerts.web.staff import HEADERS, StaffSite
from subscriptions.base import utcnow
from subscriptions.consent import COORDINATOR_WORDING, WORDING
from subscriptions.csv_io import EXPORT_COLUMNS
from subscriptions.subscribers import Frequency

FormText = Annotated[str, Form()]
FREQUENCIES = [
    (Frequency.IMMEDIATE.value, "As it happens", "an email for each post"),
    (Frequency.DAILY.value, "Daily", "one email a day at most"),
    (Frequency.WEEKLY.value, "Weekly", "one email a week"),
]
# What the scheme page says after a change (Post/Redirect/Get: the notice travels as a key).
NOTICES = {
    # The same whatever became of the address: the page tells no one who is subscribed.
    "invited": "If this address can join the scheme, we have sent it an invitation. "
               "They appear in the list once they accept it.",
    "invited-written": "If this address can join the scheme, it has been added, or, if "
                       "it is already subscribed, sent an invitation to accept. Only "
                       "those who have joined appear in the list.",
    "removed": "Removed. They will get no more emails for this ward.",
    "created": "Scheme added. Its coordinator can sign in and see it now.",
    "created-invited": "Scheme added. We have emailed its coordinator a link to choose a "
                       "password; it works for an hour, and \"Forgotten your password?\" "
                       "sends another.",
    "no-digest": "There is nothing to print yet: the ward has had no digest. Its team's "
                 "next digest will be here to print once it has been sent.",
}

REASONS = {
    "hard_bounce": "Their address bounced",
    "complaint": "They marked one of our emails as spam",
    "erasure": "They asked us to erase their data",
    "manual": "Stopped by the team",
}
SEVERITIES = {"hard": "Hard: the address does not work", "soft": "Soft: for now",
              "unknown": "Not known"}


def _tidy(errors: dict[str, str]) -> dict[str, str]:
    return {field or "form": message for field, message in errors.items()}


def coordinators_router(site: StaffSite, bus: EventBus | None = None) -> APIRouter:
    """The staff pages, and the residents' invitation page beside them."""
    both = APIRouter()
    both.include_router(_staff_router(site, bus))
    both.include_router(_invitation_router(site.factory, site.settings))
    return both


def _staff_router(site: StaffSite, bus: EventBus | None) -> APIRouter:
    router = APIRouter(prefix="/staff/schemes")
    settings = site.settings

    def page(request: Request, name: str, who: Principal, context: dict[str, Any], *,
             status: int = 200) -> HTMLResponse:
        shared: dict[str, Any] = {"scheme": None, "errors": {},
                                  "current": name.removeprefix("scheme_")}
        return site.page(request, name, {**shared, **context}, who=who, status=status)

    # --- the list and one scheme ---------------------------------------------------------

    def list_page(request: Request, who: Principal, *, form: dict[str, str] | None = None,
                  errors: dict[str, str] | None = None, status: int = 200) -> HTMLResponse:
        with site.factory() as session:
            schemes = kept_schemes(session, who)
            wards = [(w.code, w.name) for w in wards_for_new_schemes(session, who)]
        return page(request, "scheme_list", who, {
            "schemes": schemes, "wards": wards, "errors": errors or {},
            "form": form or {"name": "", "ward": "", "coordinator": "", "coordinator_name": ""},
        }, status=status)

    @router.get("/", response_class=HTMLResponse)
    def scheme_list(request: Request) -> HTMLResponse:
        return list_page(request, site.require(request))

    @router.post("/", response_class=HTMLResponse)
    def scheme_create(request: Request, background: BackgroundTasks, name: FormText = "",
                      ward: FormText = "", coordinator: FormText = "",
                      coordinator_name: FormText = "", csrf_token: FormText = "") -> Response:
        """An officer adds a scheme to one of their wards, with its coordinator."""
        who = site.require(request)
        site.check_form(request, csrf_token)
        form = {"name": name, "ward": ward, "coordinator": coordinator,
                "coordinator_name": coordinator_name}
        try:
            with transaction(site.factory) as session:
                made = create_scheme(session, who, name=name, ward_code=ward,
                                     coordinator_email=coordinator,
                                     coordinator_name=coordinator_name, now=utcnow())
                mail = invitation(session, settings, made.invite, invited_by=who.name or
                                  "Your neighbourhood team") if made.invite else None
        except CoordinatorError as exc:
            return list_page(request, who, form=form, status=400,
                             errors=_tidy({exc.field: str(exc)}))
        if mail is not None and bus is not None:  # wakes the delivery loop of `alerts run`
            background.add_task(bus.publish,
                                MailQueued(MessageKind.INVITATION, (mail.message_id,)))
        return site.redirect(f"/staff/schemes/{made.id}?done="
                             + ("created-invited" if mail else "created"))

    def scheme_page(request: Request, who: Principal, scheme_id: int, *, notice: str = "",
                    form: dict[str, str] | None = None, errors: dict[str, str] | None = None,
                    status: int = 200) -> HTMLResponse:
        with site.factory() as session:
            scheme = view_scheme(session, who, scheme_id, now=utcnow())
        return page(request, "scheme", who, {
            "scheme": scheme, "notice": NOTICES.get(notice, ""), "errors": errors or {},
            "form": form or {"email": "", "name": "", "frequency": Frequency.WEEKLY.value},
            "frequencies": FREQUENCIES, "declaration": WORDING[COORDINATOR_WORDING],
        }, status=status)

    @router.get("/{scheme_id}", response_class=HTMLResponse)
    def scheme_get(request: Request, scheme_id: int, done: str = "") -> HTMLResponse:
        return scheme_page(request, site.require(request), scheme_id, notice=done)

    @router.post("/{scheme_id}/members", response_class=HTMLResponse)
    def member_add(request: Request, scheme_id: int, email: FormText = "", name: FormText = "",
                   frequency: FormText = "", asked: FormText = "", written: FormText = "",
                   csrf_token: FormText = "") -> Response:
        who = site.require(request)
        site.check_form(request, csrf_token)
        form = {"email": email, "name": name, "frequency": frequency, "asked": asked,
                "written": written}
        if frequency not in {f.value for f in Frequency}:
            return scheme_page(request, who, scheme_id, form=form, status=400, errors={
                "frequency": "Choose how often they hear about the ward's news"})
        try:
            with transaction(site.factory) as session:
                add_member(session, settings, who, scheme_id, email=email, name=name,
                           frequency=Frequency(frequency), resident_asked=asked == "yes",
                           prior_written=written == "yes", where=request.url.path,
                           now=utcnow())
        except CoordinatorError as exc:
            return scheme_page(request, who, scheme_id, form=form, status=400,
                               errors=_tidy({exc.field: str(exc)}))
        notice = "invited-written" if written == "yes" else "invited"
        return site.redirect(f"/staff/schemes/{scheme_id}?done={notice}")

    @router.get("/{scheme_id}/members/{subscription_id}/remove", response_class=HTMLResponse)
    def member_remove_page(request: Request, scheme_id: int,
                           subscription_id: int) -> HTMLResponse:
        who = site.require(request)
        with site.factory() as session:
            scheme = view_scheme(session, who, scheme_id, now=utcnow())
            member = member_of(session, who, scheme_id, subscription_id)
        return page(request, "scheme_remove", who,
                    {"current": "scheme", "scheme": scheme, "member": member})

    @router.post("/{scheme_id}/members/{subscription_id}/remove")
    def member_remove(request: Request, scheme_id: int, subscription_id: int,
                      csrf_token: FormText = "") -> Response:
        who = site.require(request)
        site.check_form(request, csrf_token)
        with transaction(site.factory) as session:
            remove_member(session, who, scheme_id, subscription_id, now=utcnow())
        return site.redirect(f"/staff/schemes/{scheme_id}?done=removed")

    # --- import and export ------------------------------------------------------------------

    def import_page(request: Request, who: Principal, scheme_id: int, *,
                    context: dict[str, Any] | None = None, status: int = 200) -> HTMLResponse:
        with site.factory() as session:
            scheme = view_scheme(session, who, scheme_id, now=utcnow())
        return page(request, "scheme_import", who, {
            "scheme": scheme, "errors": {}, "result": None, "asked": "", "written": "",
            "declaration": WORDING[COORDINATOR_WORDING], "columns": EXPORT_COLUMNS,
            "max_mb": MAX_IMPORT_BYTES // 1_000_000, **(context or {}),
        }, status=status)

    @router.get("/{scheme_id}/import", response_class=HTMLResponse)
    def import_get(request: Request, scheme_id: int) -> HTMLResponse:
        return import_page(request, site.require(request), scheme_id)

    @router.post("/{scheme_id}/import", response_class=HTMLResponse)
    def import_post(request: Request, scheme_id: int,
                    file: Annotated[UploadFile | None, File()] = None, asked: FormText = "",
                    written: FormText = "", csrf_token: FormText = "") -> HTMLResponse:
        who = site.require(request)
        site.check_form(request, csrf_token)
        data = file.file.read(MAX_IMPORT_BYTES + 1) if file is not None else b""
        where = f"{request.url.path} ({file.filename})" if file and file.filename \
            else request.url.path
        keep = {"asked": asked, "written": written}
        try:
            with transaction(site.factory) as session:
                result = import_members(session, settings, who, scheme_id, data,
                                        resident_asked=asked == "yes",
                                        prior_written=written == "yes", where=where,
                                        now=utcnow())
        except CoordinatorError as exc:
            return import_page(request, who, scheme_id, status=400, context={
                **keep, "errors": _tidy({exc.field: str(exc)})})
        return import_page(request, who, scheme_id, context={
            "result": result, "declared": written == "yes"})

    @router.get("/{scheme_id}/export")
    def export(request: Request, scheme_id: int) -> Response:
        who = site.require(request)
        out = io.StringIO()
        with transaction(site.factory) as session:
            filename = export_filename(session, who, scheme_id)
            export_members(session, who, scheme_id, out, now=utcnow())
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers={
            **HEADERS, "Content-Disposition": f'attachment; filename="{filename}"'})

    @router.get("/{scheme_id}/digest.pdf")
    def digest_pdf(request: Request, scheme_id: int) -> Response:
        """The ward's latest digest as an A4 PDF, headed for the scheme, to print."""
        who = site.require(request)
        try:
            with site.factory() as session:
                sheet = printable_digest(session, settings, who, scheme_id, now=utcnow())
        except NoDigestYet:
            return site.redirect(f"/staff/schemes/{scheme_id}?done=no-digest")
        return Response(render_pdf(sheet), media_type="application/pdf", headers={
            **HEADERS, "Content-Disposition": f'attachment; filename="{pdf_filename(sheet)}"'})

    # --- who bounced ------------------------------------------------------------------------

    @router.get("/{scheme_id}/bounces", response_class=HTMLResponse)
    def bounces(request: Request, scheme_id: int) -> HTMLResponse:
        who = site.require(request)
        with site.factory() as session:
            scheme = view_scheme(session, who, scheme_id, now=utcnow())
            report = bounce_report(session, who, scheme_id, now=utcnow())
        return page(request, "scheme_bounces", who, {
            "scheme": scheme, "report": report, "reasons": REASONS, "severities": SEVERITIES})

    # --- message the members ----------------------------------------------------------------

    def message_page(request: Request, who: Principal, scheme_id: int, *, subject: str = "",
                     body: str = "", errors: dict[str, str] | None = None, sent: str = "",
                     status: int = 200) -> HTMLResponse:
        with site.factory() as session:
            scheme = view_scheme(session, who, scheme_id, now=utcnow())
        return page(request, "scheme_message", who, {
            "scheme": scheme, "subject": subject, "body": body, "errors": errors or {},
            "sent": sent, "max_subject": MAX_SUBJECT, "max_body": MAX_BODY,
            "limit": MESSAGES_PER_DAY,
        }, status=status)

    def refused(exc: CoordinatorError) -> dict[str, str]:
        found = exc.errors if isinstance(exc, MessageErrors) else [exc]
        return _tidy({error.field: str(error) for error in found})

    @router.get("/{scheme_id}/message", response_class=HTMLResponse)
    def message_get(request: Request, scheme_id: int, sent: str = "") -> HTMLResponse:
        shown = sent if sent == "again" or sent.isdigit() else ""
        return message_page(request, site.require(request), scheme_id, sent=shown)

    @router.post("/{scheme_id}/message", response_class=HTMLResponse)
    def message_preview(request: Request, scheme_id: int, subject: FormText = "",
                        body: FormText = "", edit: FormText = "",
                        csrf_token: FormText = "") -> HTMLResponse:
        who = site.require(request)
        site.check_form(request, csrf_token)
        if edit:
            return message_page(request, who, scheme_id, subject=subject, body=body)
        try:
            with site.factory() as session:
                scheme = view_scheme(session, who, scheme_id, now=utcnow())
                draft = preview_message(session, settings, who, scheme_id, subject=subject,
                                        body=body, now=utcnow())
        except CoordinatorError as exc:
            return message_page(request, who, scheme_id, subject=subject, body=body,
                                errors=refused(exc), status=400)
        shown = fill_links(draft.rendered.html, "#unsubscribe", "#preferences")
        own = "(each member's own link)"
        text = fill_links(draft.rendered.text, own, own)
        return page(request, "scheme_preview", who, {
            "current": "message", "scheme": scheme, "draft": draft, "email_html": shown,
            "email_text": text, "draft_key": secrets.token_urlsafe(16),
        })

    @router.post("/{scheme_id}/message/send")
    def message_send(request: Request, scheme_id: int, subject: FormText = "",
                     body: FormText = "", draft: FormText = "",
                     csrf_token: FormText = "") -> Response:
        who = site.require(request)
        site.check_form(request, csrf_token)
        try:
            with transaction(site.factory) as session:
                sent = send_message(session, settings, who, scheme_id, subject=subject,
                                    body=body, draft_key=draft, now=utcnow())
        except CoordinatorError as exc:
            return message_page(request, who, scheme_id, subject=subject, body=body,
                                errors=refused(exc), status=400)
        shown = "again" if sent.repeated else str(sent.deliveries)
        return site.redirect(f"/staff/schemes/{scheme_id}/message?sent={shown}")

    return router


def _invitation_router(factory: sessionmaker[Session], settings: Settings) -> APIRouter:
    """A resident's page: the signed link alone authorises it (no cookie is set or read,
    as for an RFC 8058 one-click unsubscribe), so it needs no sign-in and no CSRF token."""
    router = APIRouter()

    def page(request: Request, context: dict[str, Any], *, status: int) -> HTMLResponse:
        return linked_page(request, settings, "scheme_invitation", context, status=status)

    @router.get(INVITE_PATH + "{token}", response_class=HTMLResponse)
    def invitation_get(request: Request, token: str) -> HTMLResponse:
        with factory() as session:
            view = preview_invitation(session, settings, token)
        return page(request, {"view": view, "token": token, "done": False},
                    status=200 if view is not None else 400)

    @router.post(INVITE_PATH + "{token}", response_class=HTMLResponse)
    def invitation_post(request: Request, token: str) -> HTMLResponse:
        with transaction(factory) as session:
            view = accept(session, settings, token, now=utcnow())
        return page(request, {"view": view, "token": token, "done": view is not None},
                    status=200 if view is not None else 400)

    return router
