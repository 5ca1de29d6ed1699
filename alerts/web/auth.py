"""Signing staff in and out, and the forgotten-password pages.

`/staff/sign-in` checks the password through `alerts.accounts.signin.sign_in`, throttled
per account and per network address, and says the same for an unknown address as for a
wrong password. `/staff/sign-out` ends every session of the account. `/staff/reset` emails
a one-use link (the page reads the same whatever the address), `/staff/reset/{token}`
chooses the new password.

Handlers parse the form, call the services, render; they are plain `def`s, so FastAPI runs
them in worker threads. No address or password is written to a log.
"""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Form, Request
from fastapi.responses import Response

from alerts.accounts.audit import record
from alerts.accounts.reset_mail import (
    ResetError,
    account_for_reset,
    complete_reset,
    request_reset,
)
from alerts.accounts.signin import RESET_MINUTES, Refusal, sign_in, sign_out
from alerts.accounts.users import MIN_PASSWORD, User
from alerts.core.db import transaction
from alerts.core.events import EventBus, MailQueued
from alerts.mail.messages import MessageKind
from alerts.web.staff import StaffSite
from subscriptions.base import utcnow

FormText = Annotated[str, Form()]
HOME = "/staff/"


def safe_next(target: str) -> str:
    """Where to go after signing in: a path of the staff pages, never another site."""
    if (target.startswith("/staff/") and "//" not in target and "\\" not in target
            and target.isprintable()):
        return target
    return HOME


def client_address(request: Request) -> str:
    """The network address the throttle counts: the peer, or what a trusted proxy says it
    forwarded for (decided once, in alerts/web/app.py; never the raw header)."""
    return request.client.host if request.client is not None else "unknown"


def auth_router(site: StaffSite, bus: EventBus | None = None) -> APIRouter:
    """The sign-in, sign-out and reset pages; a reset email queued wakes the delivery loop
    through `bus` (the one `alerts run` gives the app), else the next poll finds it."""
    router = APIRouter()

    def sign_in_page(request: Request, *, email: str = "", next_: str = HOME,
                     errors: dict[str, str] | None = None, status: int = 200,
                     notice: str = "") -> Response:
        return site.page(request, "sign_in", {
            "email": email, "next": safe_next(next_), "errors": errors or {},
            "notice": notice}, who=None, status=status)

    @router.get("/staff/sign-in")
    def sign_in_get(request: Request, next: str = HOME, reset: str = "") -> Response:
        if site.principal(request) is not None:
            return site.redirect(safe_next(next))
        notice = "Your password is changed. Sign in with it." if reset == "done" else ""
        return sign_in_page(request, next_=next, notice=notice)

    @router.post("/staff/sign-in")
    def sign_in_post(request: Request, email: FormText = "", password: FormText = "",
                     next: FormText = HOME, csrf_token: FormText = "") -> Response:
        site.check_form(request, csrf_token)
        errors: dict[str, str] = {}
        if not email.strip():
            errors["email"] = "Enter your email address"
        if not password:
            errors["password"] = "Enter your password"
        if errors:
            return sign_in_page(request, email=email, next_=next, errors=errors, status=400)
        now = utcnow()
        with transaction(site.factory) as session:
            outcome = sign_in(session, email, password, address=client_address(request),
                              now=now)
            user = outcome.user
            if user is not None:
                record(session, user.email, "sign_in", f"user {user.id}", user_id=user.id,
                       now=now)
        if user is None:
            if outcome.refusal == Refusal.LOCKED and outcome.retry_after is not None:
                minutes = max(1, math.ceil(outcome.retry_after.total_seconds() / 60))
                message = (f"Sign-in is locked after too many wrong passwords. Try again in "
                           f"{minutes} minute{'s' if minutes != 1 else ''}.")
            else:
                message = "The email address or the password is not right"
            return sign_in_page(request, email=email, next_=next, errors={"email": message},
                                status=429 if outcome.refusal == Refusal.LOCKED else 400)
        response = site.redirect(safe_next(next))
        site.start_session(response, request, user)
        return response

    @router.post("/staff/sign-out")
    def sign_out_post(request: Request, csrf_token: FormText = "") -> Response:
        site.check_form(request, csrf_token)
        who = site.principal(request)
        if who is not None:
            with transaction(site.factory) as session:
                user = session.get(User, who.user_id)
                if user is not None:
                    sign_out(session, user)
                    record(session, user.email, "sign_out", f"user {user.id}",
                           user_id=user.id)
        response = site.redirect("/staff/sign-in")
        site.end_session(response)
        return response

    # --- a forgotten password -------------------------------------------------------

    @router.get("/staff/reset")
    def reset_get(request: Request) -> Response:
        return site.page(request, "reset_request", {"email": "", "errors": {}}, who=None)

    @router.post("/staff/reset")
    def reset_post(request: Request, background: BackgroundTasks, email: FormText = "",
                   csrf_token: FormText = "") -> Response:
        site.check_form(request, csrf_token)
        if not email.strip():
            return site.page(request, "reset_request", {
                "email": email, "errors": {"email": "Enter your email address"}},
                who=None, status=400)
        with transaction(site.factory) as session:
            mail = request_reset(session, site.settings, email,
                                 address=client_address(request))
        if mail is not None and bus is not None:
            # After the answer, so that how long the page takes says nothing about whether
            # the address has an account.
            background.add_task(bus.publish, MailQueued(MessageKind.RESET, (mail.message_id,)))
        return site.page(request, "reset_sent", {"minutes": RESET_MINUTES}, who=None)

    def choose_page(request: Request, token: str, errors: dict[str, str],
                    status: int = 200) -> Response:
        return site.page(request, "reset_choose", {
            "token": token, "errors": errors, "min_length": MIN_PASSWORD}, who=None,
            status=status)

    def link_spent(request: Request) -> Response:
        return site.page(request, "reset_invalid", {"minutes": RESET_MINUTES}, who=None,
                         status=400)

    @router.get("/staff/reset/{token}")
    def reset_choose_get(request: Request, token: str) -> Response:
        with site.factory() as session:
            if account_for_reset(session, site.settings, token) is None:
                return link_spent(request)
        return choose_page(request, token, {})

    @router.post("/staff/reset/{token}")
    def reset_choose_post(request: Request, token: str, password: FormText = "",
                          repeated: FormText = "", csrf_token: FormText = "") -> Response:
        site.check_form(request, csrf_token)
        try:
            with transaction(site.factory) as session:
                user = complete_reset(session, site.settings, token, password, repeated)
        except ResetError as error:
            return choose_page(request, token, error.errors, status=400)
        if user is None:
            return link_spent(request)
        response = site.redirect("/staff/sign-in?reset=done")
        site.end_session(response)
        return response

    return router
