"""CSRF tokens for every form: a random value in a cookie, and the same value signed (with a
timestamp) in the form. A POST passes only when the form's token is genuine, recent and
matches the cookie, which another site can neither read nor set.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "alerts_csrf"
SALT = "alerts.csrf"
MAX_AGE_SECONDS = 12 * 3600


class Csrf:
    def __init__(self, secret_key: str) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt=SALT)

    def token(self, request: Request) -> tuple[str, str | None]:
        """(the token for a form on this page, a new cookie value to set or None)."""
        value = request.cookies.get(COOKIE)
        fresh = None
        if not value:
            value = fresh = secrets.token_urlsafe(24)
        return str(self._serializer.dumps(value)), fresh

    @staticmethod
    def set_cookie(response: Response, value: str | None, request: Request) -> None:
        if value is not None:
            response.set_cookie(COOKIE, value, max_age=MAX_AGE_SECONDS, httponly=True,
                                samesite="lax", secure=request.url.scheme == "https")

    def valid(self, request: Request, token: str | None) -> bool:
        cookie = request.cookies.get(COOKIE)
        if not token or not cookie:
            return False
        try:
            value = self._serializer.loads(token, max_age=MAX_AGE_SECONDS)
        except BadSignature:
            return False
        return isinstance(value, str) and hmac.compare_digest(value, cookie)
