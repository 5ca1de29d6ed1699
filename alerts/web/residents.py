"""The residents' pages: subscribe, confirm, preferences, unsubscribe (with RFC 8058
one-click) and "my data" (after an emailed link: download, or erase once a second page has
said what goes and asked to confirm). Plain HTML forms from `templates/web/`, no JavaScript
needed.

Handlers parse the request, call `alerts.usecases.confirmations`, `alerts.usecases.my_data` or
`subscriptions.web_consent`, and render. Those that write are plain `def`s: FastAPI runs them
in worker threads, so a write waiting for a lock never blocks the event loop. Those that only
read (every GET) are `async def`s whose reads run where they cost least
(`alerts.web.page_reads`: on the loop on SQLite, in a worker thread on PostgreSQL). No address
is written to a log.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.core.db import transaction
from alerts.core.translations import HTML_LANG, N_
from alerts.mail.render import environment, first_digests
from alerts.usecases.confirmations import (
    CONFIRM_MAX_AGE_HOURS,
    confirm,
    preview_confirmation,
    sign_up,
)
from alerts.usecases.my_data import (
    DATA_MAX_AGE_HOURS,
    erase_data,
    export_data,
    read_data_link,
    request_data,
)
from alerts.web.csrf import Csrf
from alerts.web.kept_pages import Filled
from alerts.web.languages import remember_choice, request_language, switch_link
from alerts.web.page_reads import PageReads
from alerts.web.plain_routes import add_page
from subscriptions.addresses import AddressError, normalise_address
from subscriptions.base import utcnow
from subscriptions.consent import CURRENT_WORDING, WORDING, Consent, ConsentMethod
from subscriptions.languages import Language, LanguageError, parse_language
from subscriptions.links import Purpose, nonces_in, verify_reference
from subscriptions.postcodes import any_postcodes, wards_for_postcode
from subscriptions.subscribers import Frequency, Subscription
from subscriptions.topics import TopicError, topics_by_ward
from subscriptions.wards import ward_names
from subscriptions.web_consent import (
    Preferences,
    leave,
    leaving_for_link,
    load_preferences,
    preferences_for_link,
    update_preferences,
)

# Shown in the page's language: the templates translate these (`_(label)`).
FREQUENCIES = [
    (Frequency.IMMEDIATE, N_("As it happens"), N_("an email for each post")),
    (Frequency.DAILY, N_("Daily"), N_("one email a day at most")),
    (Frequency.WEEKLY, N_("Weekly"), N_("one email a week")),
]
BAD_EMAIL = N_("Enter an email address in the right format, like name@example.com")
NO_WARDS = N_("Choose at least one ward")
NO_FREQUENCY = N_("Choose how often you want to hear from us")
ONE_CLICK = "One-Click"
# What the erase confirmation page's button sends; a post without it erases nothing.
ERASE_CONFIRMED = "everything"
# Tokens live in these pages' URLs: keep them out of Referer headers, caches and frames.
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
}

FormText = Annotated[str, Form()]
FormList = Annotated[list[str], Form()]
# What the subscribe form offers: every ward (code, name), whether postcodes are known, and
# the wards the searched postcode lies in.
Choices = tuple[list[tuple[str, str]], bool, set[str]]


def linked_page(request: Request, settings: Settings, name: str, context: dict[str, Any], *,
                status: int = 200) -> HTMLResponse:
    """A page that a signed link in an email opens on its own (a vote, a scheme invitation):
    in the resident's language as their other pages have it, with no switch link, since
    remembering its choice would take a cookie, and these pages set none."""
    language = request_language(request, switchable=False)
    return linked_response(linked_body(settings, name, language, context), language,
                           status=status)


def linked_body(settings: Settings, name: str, language: Language,
                context: Mapping[str, Any]) -> str:
    """The HTML of the page `name` that a link opens, in `language`."""
    return environment(language=language).get_template(f"web/{name}.html").render(
        force=settings.force, **context)


def linked_response(body: str, language: Language, *, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status,
                        headers={**HEADERS, "Content-Language": HTML_LANG[language]})


def residents_router(factory: sessionmaker[Session], reads: PageReads,
                     settings: Settings) -> APIRouter:
    router = APIRouter()
    csrf = Csrf(settings.web.secret_key)
    kept = Filled()

    def page(request: Request, name: str, context: dict[str, Any], *, status: int = 200,
             with_form: bool = False, shows: Hashable | None = None,
             own: Mapping[str, str] | None = None) -> HTMLResponse:
        """The page `name` with `context` and the request's `own` values (a link's token).
        With `shows` (everything the context is made of), it is rendered once for that and
        kept, the request's own values and the form's CSRF token filled in per request."""
        fresh = None
        values = dict(own or {})
        if with_form:
            values["csrf"], fresh = csrf.token(request)
        language = request_language(request)
        # Result pages of a POST switch on the same path, which also answers GET.
        path = context.pop("switch_path", None) or request.url.path

        def render(filled: Mapping[str, str]) -> str:
            # The switch link's path holds a link's token: filled in like the rest.
            here = path
            for key, value in (own or {}).items():
                here = here.replace(value, filled[key]) if value else here
            return environment(language=language).get_template(f"web/{name}.html").render(
                force=settings.force, frequencies=FREQUENCIES,
                **switch_link(request, language, here), **context, **filled)

        if shows is None:
            body = render(values)
        else:
            unfilled = path
            for value in (own or {}).values():
                unfilled = unfilled.replace(value, "") if value else unfilled
            body = kept.page((name, status, language, unfilled, request.url.query, shows),
                             render, values)
        response = HTMLResponse(body, status_code=status, headers={
            **HEADERS, "Content-Language": HTML_LANG[language]})
        csrf.set_cookie(response, fresh, request)
        remember_choice(request, response, language)
        return response

    def invalid_link(request: Request, what: str) -> HTMLResponse:
        return page(request, "invalid", {"what": what}, status=400)

    def expired_form(request: Request) -> HTMLResponse:
        return page(request, "expired_form", {}, status=400)

    def subscribe_choices(session: Session, q: str) -> Choices:
        wards = ward_names(session)
        by_postcode = any_postcodes(session)
        located = wards_for_postcode(session, q) if by_postcode and q.strip() else set()
        return wards, by_postcode, located

    def subscribe_form(request: Request, choices: Choices, *, q: str, email: str,
                       chosen: list[str], frequency: str, errors: dict[str, str],
                       status: int = 200) -> HTMLResponse:
        wards, by_postcode, located = choices
        needle = q.strip().casefold()
        shown = sorted((w for w in wards
                        if needle in w[1].casefold() or w[0] in located or w[0] in chosen),
                       key=lambda w: w[1])
        # The empty form (every GET) is the same for everyone who searched the same: kept.
        empty = not email and not chosen and not errors
        return page(request, "subscribe", {
            "q": q, "wards": shown, "any_wards": bool(wards), "by_postcode": by_postcode,
            "email": email, "chosen": chosen, "frequency": frequency, "errors": errors,
            "wording": WORDING[CURRENT_WORDING],
        }, status=status, with_form=True,
            shows=(q, tuple(shown), bool(wards), by_postcode, frequency) if empty else None)

    async def subscribe_page(request: Request) -> HTMLResponse:
        q = request.query_params.get("q", "")[:100]
        choices = await reads(lambda session: subscribe_choices(session, q))
        return subscribe_form(request, choices, q=q, email="", chosen=[],
                              frequency=Frequency.WEEKLY, errors={})

    add_page(router, "/subscribe", subscribe_page)

    @router.post("/subscribe", response_class=HTMLResponse)
    def subscribe_post(request: Request, email: FormText = "", wards: FormList = [],  # noqa: B006
                       frequency: FormText = "", csrf_token: FormText = "",
                       q: FormText = "") -> HTMLResponse:
        if not csrf.valid(request, csrf_token):
            return expired_form(request)
        errors: dict[str, str] = {}
        try:
            normalise_address(email)
        except AddressError:
            errors["email"] = BAD_EMAIL
        if not wards:
            errors["wards"] = NO_WARDS
        if frequency not in {f.value for f in Frequency}:
            errors["frequency"] = NO_FREQUENCY
        if errors:
            with factory() as session:
                choices = subscribe_choices(session, q)
            return subscribe_form(request, choices, q=q, email=email, chosen=wards,
                                  frequency=frequency, errors=errors, status=400)
        with transaction(factory) as session:
            sign_up(session, settings, email=email, ward_codes=wards,
                    frequency=Frequency(frequency), source=request.url.path, now=utcnow())
        # The same page whatever happened, so the form tells no one who is subscribed.
        return page(request, "subscribed", {"valid_hours": CONFIRM_MAX_AGE_HOURS})

    # Mail filters open every link in an email: opening this one only shows the button.
    async def confirm_get(request: Request) -> HTMLResponse:
        token: str = request.path_params["token"]
        ward_names = await reads(lambda session: preview_confirmation(session, settings, token))
        if ward_names is None:
            return invalid_link(request, "confirm")
        return page(request, "confirm", {"ward_names": ward_names, "token": token},
                    with_form=True)

    add_page(router, "/confirm/{token}", confirm_get)

    @router.post("/confirm/{token}", response_class=HTMLResponse)
    def confirm_post(request: Request, token: str, csrf_token: FormText = "") -> HTMLResponse:
        if not csrf.valid(request, csrf_token):
            return expired_form(request)
        with transaction(factory) as session:
            done = confirm(session, settings, token, now=utcnow())
        if done is None:
            return invalid_link(request, "confirm")
        # The same facts as the welcome email, in the page's language.
        welcome = done.welcome
        return page(request, "confirmed", {
            "wards": [] if welcome is None else first_digests(
                welcome.wards, ZoneInfo(settings.scheduler.timezone), request_language(request)),
            "preferences_url": None if welcome is None else welcome.preferences_url,
            "welcomed": done.welcomed,
        })

    def preferences_page(request: Request, subscription_id: int, token: str, *,
                         saved: bool = False, error: str = "", status: int = 200,
                         ) -> HTMLResponse:
        with factory() as session:
            preferences = load_preferences(session, subscription_id)
        return preferences_shown(request, preferences, token, saved=saved, error=error,
                                 status=status)

    def preferences_shown(request: Request, preferences: Preferences | None, token: str, *,
                          saved: bool = False, error: str = "", status: int = 200,
                          ) -> HTMLResponse:
        if preferences is None:
            return invalid_link(request, "preferences")
        # Residents with the same choices see the same page but for their link's token.
        shown = (preferences.frequency, preferences.paused, preferences.language,
                 tuple((w.code, w.name, w.status, w.language,
                        None if w.topics is None else tuple(w.topics))
                       for w in preferences.wards), saved, error)
        return page(request, "preferences", {
            "p": preferences, "saved": saved, "error": error,
            "topic_names": settings.topics.names,
            "languages": list(Language),
        }, status=status, with_form=True, own={"token": token}, shows=shown)

    # A link's page reads the token's row and the page in one session (one connection).
    def subscription_named(session: Session, purpose: Purpose, token: str) -> int | None:
        return verify_reference(settings.web.secret_key, purpose, token,
                                nonces_in(session, Subscription))

    # The pages a mail filter opens for every resident read the token's nonce with what
    # they show, in one statement.
    async def preferences_get(request: Request) -> HTMLResponse:
        token: str = request.path_params["token"]
        found = await reads(
            lambda session: preferences_for_link(session, settings.web.secret_key, token))
        return preferences_shown(request, None if found is None else found[1], token)

    add_page(router, "/preferences/{token}", preferences_get)

    @router.post("/preferences/{token}", response_class=HTMLResponse)
    def preferences_post(request: Request, token: str, wards: FormList = [],  # noqa: B006
                         frequency: FormText = "", paused: FormText = "",
                         topic_wards: FormList = [], all_topics: FormList = [],  # noqa: B006
                         topics: FormList = [], language: FormText = "",  # noqa: B006
                         csrf_token: FormText = "") -> HTMLResponse:
        with factory() as session:
            ident = subscription_named(session, Purpose.PREFERENCES, token)
        if ident is None:
            return invalid_link(request, "preferences")
        if not csrf.valid(request, csrf_token):
            return expired_form(request)
        if frequency not in {f.value for f in Frequency}:
            return preferences_page(request, ident, token)
        try:
            # Only wards the page showed topics for: a ward ticked just now keeps all.
            shown = set(topic_wards) & set(wards)
            followed = topics_by_ward(shown, all_topics, topics, settings.topics.names)
            chosen_language = parse_language(language) if language else None
        except (TopicError, LanguageError) as error:
            return preferences_page(request, ident, token, error=str(error), status=400)
        now = utcnow()
        consent = Consent(at=now, method=ConsentMethod.WEB_FORM, source=request.url.path)
        with transaction(factory) as session:
            found = update_preferences(session, ident, ward_codes=set(wards),
                                       frequency=Frequency(frequency), paused=paused == "yes",
                                       consent=consent, now=now, topics=followed,
                                       language=chosen_language)
        if not found:
            return invalid_link(request, "preferences")
        return preferences_page(request, ident, token, saved=True)

    async def unsubscribe_get(request: Request) -> HTMLResponse:
        token: str = request.path_params["token"]
        found = await reads(
            lambda session: leaving_for_link(session, settings.web.secret_key, token))
        if found is None:
            return invalid_link(request, "unsubscribe")
        leaving = found[1]
        # The same page for everyone leaving the same ward with the same others.
        return page(request, "unsubscribe", {"leaving": leaving}, with_form=True,
                    own={"token": token},
                    shows=(leaving.ward_name, tuple(leaving.other_wards)))

    add_page(router, "/unsubscribe/{token}", unsubscribe_get)

    @router.post("/unsubscribe/{token}")
    def unsubscribe_post(
        request: Request, token: str,
        one_click: Annotated[str, Form(alias="List-Unsubscribe")] = "",
        everywhere: FormText = "", csrf_token: FormText = "",
    ) -> Response:
        # RFC 8058: a mailbox provider posts this with no cookie and no page in between;
        # the signed token alone authorises it.
        is_one_click = one_click == ONE_CLICK
        with transaction(factory) as session:  # the token read and the change: one session
            found = leaving_for_link(session, settings.web.secret_key, token)
            if found is None:
                return invalid_link(request, "unsubscribe")
            if not is_one_click and not csrf.valid(request, csrf_token):
                return expired_form(request)
            ident, leaving = found
            leave(session, ident, leaving, everywhere=everywhere == "yes", now=utcnow())
        if is_one_click:
            return PlainTextResponse("Unsubscribed.\n", headers={"Cache-Control": "no-store"})
        return page(request, "unsubscribed", {"leaving": leaving,
                                              "everywhere": everywhere == "yes"})

    def my_data_form(request: Request, *, email: str, errors: dict[str, str],
                     status: int = 200) -> HTMLResponse:
        return page(request, "my_data", {"email": email, "errors": errors}, status=status,
                    with_form=True)

    async def my_data_get(request: Request) -> HTMLResponse:
        return my_data_form(request, email="", errors={})

    add_page(router, "/my-data", my_data_get)

    @router.post("/my-data", response_class=HTMLResponse)
    def my_data_post(request: Request, email: FormText = "",
                     csrf_token: FormText = "") -> HTMLResponse:
        if not csrf.valid(request, csrf_token):
            return expired_form(request)
        try:
            normalise_address(email)
        except AddressError:
            return my_data_form(request, email=email, status=400, errors={"email": BAD_EMAIL})
        with transaction(factory) as session:
            request_data(session, settings, email, now=utcnow())
        # The same page whatever happened, so the form tells no one whose data is held.
        return page(request, "my_data_sent", {"valid_hours": DATA_MAX_AGE_HOURS})

    def data_for_link(session: Session, token: str, now: datetime) -> dict[str, Any] | None:
        ident = read_data_link(session, settings, token)
        return export_data(session, ident, now=now) if ident is not None else None

    async def my_data_manage(request: Request) -> HTMLResponse:
        token: str = request.path_params["token"]
        now = utcnow()
        data = await reads(lambda session: data_for_link(session, token, now))
        if data is None:
            return invalid_link(request, "my-data")
        return page(request, "my_data_manage", {"data": data, "token": token})

    add_page(router, "/my-data/{token}", my_data_manage)

    async def my_data_download(request: Request) -> Response:
        token: str = request.path_params["token"]
        now = utcnow()
        data = await reads(lambda session: data_for_link(session, token, now))
        if data is None:
            return invalid_link(request, "my-data")
        body = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        disposition = f'attachment; filename="my-data-{now:%Y-%m-%d}.json"'
        return Response(body, media_type="application/json",
                        headers={**HEADERS, "Content-Disposition": disposition})

    add_page(router, "/my-data/{token}/download", my_data_download)

    # The page's "Erase everything" only opens this: what goes, what stays and why, and that
    # it cannot be undone; its own button (a second, explicit POST) erases.
    def erase_page(request: Request, token: str, data: dict[str, Any] | None) -> HTMLResponse:
        if data is None:
            return invalid_link(request, "my-data")
        return page(request, "my_data_erase", {"data": data, "token": token}, with_form=True)

    async def my_data_erase_get(request: Request) -> HTMLResponse:
        token: str = request.path_params["token"]
        now = utcnow()
        return erase_page(request, token,
                          await reads(lambda session: data_for_link(session, token, now)))

    add_page(router, "/my-data/{token}/erase", my_data_erase_get)

    @router.post("/my-data/{token}/erase", response_class=HTMLResponse)
    def my_data_erase(request: Request, token: str, csrf_token: FormText = "",
                      erase: FormText = "") -> HTMLResponse:
        if not csrf.valid(request, csrf_token):
            return expired_form(request)
        if erase != ERASE_CONFIRMED:  # not the confirmation page's button: ask first
            with factory() as session:
                data = data_for_link(session, token, utcnow())
            return erase_page(request, token, data)
        with transaction(factory) as session:
            ident = read_data_link(session, settings, token)
            erased = ident is not None and erase_data(session, ident, now=utcnow())
        if not erased:
            return invalid_link(request, "my-data")
        return page(request, "my_data_erased", {"switch_path": "/my-data"})

    return router
