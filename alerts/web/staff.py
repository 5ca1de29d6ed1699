"""What every officer and coordinator page shares: who is signed in, the staff page layout,
CSRF checks, and the answers to "not signed in", "not yours" and "form expired".

The session cookie holds a signed token (alerts.accounts.signin); it is HttpOnly,
SameSite=Lax, Secure over HTTPS, and ends after `SESSION_HOURS`. Every rule about what a
person may touch lives in the service layer (alerts.accounts.access); pages only call it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment
from sqlalchemy.orm import Session, sessionmaker

from alerts.accounts.access import Forbidden, Principal, principal_for
from alerts.accounts.signin import SESSION_HOURS, session_token, user_for_token
from alerts.accounts.users import User
from alerts.core.config import Settings
from alerts.core.errors import AlertsError
from alerts.mail.render import environment
from alerts.web.csrf import Csrf

SESSION_COOKIE = "alerts_staff"
# Staff pages show residents' names, addresses and words: never cached, never framed.
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
}


class SignInRequired(AlertsError):
    """No valid session: the page sends the browser to sign in, then back."""

    http_status = 401


class FormRefused(AlertsError):
    """A form came without a genuine, recent CSRF token."""

    http_status = 403


class StaffSite:
    def __init__(self, factory: sessionmaker[Session], settings: Settings) -> None:
        self.factory = factory
        self.settings = settings
        self.env: Environment = environment()
        self.csrf = Csrf(settings.web.secret_key)

    # --- who is signed in -------------------------------------------------------------

    def principal(self, request: Request) -> Principal | None:
        with self.factory() as session:
            user = user_for_token(session, self.settings.web.secret_key,
                                  request.cookies.get(SESSION_COOKIE))
            return principal_for(session, user) if user is not None else None

    def require(self, request: Request) -> Principal:
        who = self.principal(request)
        if who is None:
            raise SignInRequired()
        return who

    def start_session(self, response: Response, request: Request, user: User) -> None:
        response.set_cookie(SESSION_COOKIE, session_token(self.settings.web.secret_key, user),
                            max_age=SESSION_HOURS * 3600, httponly=True, samesite="lax",
                            secure=request.url.scheme == "https", path="/staff")

    @staticmethod
    def end_session(response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/staff")

    # --- forms and pages ----------------------------------------------------------------

    def check_form(self, request: Request, token: str | None) -> None:
        if not self.csrf.valid(request, token):
            raise FormRefused()

    def page(self, request: Request, name: str, context: dict[str, Any], *,
             who: Principal | None, status: int = 200) -> HTMLResponse:
        """Render templates/web/staff/NAME.html; every page gets a CSRF token for its forms
        (the sign-out button is one)."""
        token, fresh = self.csrf.token(request)
        body = self.env.get_template(f"web/staff/{name}.html").render(
            force=self.settings.force, who=who, csrf=token, **context)
        response = HTMLResponse(body, status_code=status, headers=HEADERS)
        Csrf.set_cookie(response, fresh, request)
        return response

    @staticmethod
    def redirect(url: str) -> RedirectResponse:
        return RedirectResponse(url, status_code=303, headers=HEADERS)


def install_handlers(app: FastAPI, site: StaffSite) -> None:
    """How the staff pages answer the three refusals, whichever page raised them."""

    @app.exception_handler(SignInRequired)
    def sign_in_first(request: Request, _exc: SignInRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return site.redirect(f"/staff/sign-in?next={quote(target, safe='')}")

    @app.exception_handler(Forbidden)
    def forbidden(request: Request, exc: Forbidden) -> Response:
        return site.page(request, "forbidden", {"reason": str(exc)},
                         who=site.principal(request), status=403)

    @app.exception_handler(FormRefused)
    def refused(request: Request, _exc: FormRefused) -> Response:
        return site.page(request, "form_refused", {}, who=site.principal(request), status=403)
