"""Forgotten passwords: the emailed reset link for staff, and choosing a new password with it.

`request_reset` answers the same way whether or not the address has an account (the page
never says which); it only prepares an email for a real account, and at most
`EMAILS_PER_ACCOUNT` a `WINDOW` for one account and `REQUESTS_PER_ADDRESS` a `WINDOW` from one
network address, so the form cannot be used to flood a mailbox. Requests are counted in the
sign-in throttle's table under keys of their own (hashed, never the address itself).

The email is queued in the outbox with the request (staff mail, kinds "reset" and
"invitation": no resident rule applies to it) and sent by the one sender, which the page
wakes. Nothing here logs an address.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from alerts.accounts.audit import record
from alerts.accounts.signin import (
    ADDRESS_LIMIT,
    RESET_MINUTES,
    WINDOW,
    SignInFailure,
    reset_token,
    user_for_reset,
)
from alerts.accounts.users import MAX_PASSWORD, MIN_PASSWORD, User, find_user, set_password
from alerts.core.config import Settings
from alerts.core.errors import AlertsError
from alerts.delivery.fanout import queue_staff_mail
from alerts.mail.messages import MessageKind
from alerts.mail.staff import staff_email
from subscriptions.base import utcnow

EMAILS_PER_ACCOUNT = 3
# Someone waits at the page for it: ahead of digests, as a confirmation is.
RESET_PRIORITY = 5
REQUESTS_PER_ADDRESS = ADDRESS_LIMIT


def _key(kind: str, value: str) -> str:
    return hashlib.sha256(f"reset-{kind}:{value.strip().lower()}".encode()).hexdigest()


def _recent(session: Session, key: str, now: datetime) -> int:
    return session.scalar(select(func.count()).select_from(SignInFailure).where(
        SignInFailure.key == key, SignInFailure.at > now - WINDOW)) or 0


@dataclass(frozen=True)
class ResetMail:
    """A reset or invitation email queued in the outbox (`message_id`); `recipient` is never
    for logs."""

    recipient: str
    message_id: int


def build_reset_mail(settings: Settings, user: User, link: str, *,
                     now: datetime, invited_by: str | None = None) -> EmailMessage:
    mail = settings.mail
    message = staff_email(mail, to=user.email, now=now, kind="reset",
                          subject="Your neighbourhood alerts account: choose a password"
                          if invited_by else "Choose a new password for neighbourhood alerts")
    greeting = f"Hello {user.name}," if user.name else "Hello,"
    opening = [
        f"{invited_by} made you an account on neighbourhood alerts, to keep your",
        "Neighbourhood Watch scheme's list of members and to message them.",
    ] if invited_by else [
        "Someone asked to reset the password of your neighbourhood alerts account",
        "(the pages where your team posts to residents and reads their replies).",
    ]
    message.set_content("\n".join([
        greeting,
        "",
        *opening,
        "",
        f"To choose a {'' if invited_by else 'new '}password, open this link within "
        f"{RESET_MINUTES} minutes.",
        "It works once" + (" (later, use \"Forgotten your password?\" on the sign-in page):"
                           if invited_by else ":"),
        "",
        link,
        "",
        *(["If you did not expect this, ignore this email: nobody can sign in as you",
           "without choosing a password through it."] if invited_by else [
          "If this was not you, ignore this email: your password stays as it is, and",
          "nobody can use the link without reading this email. If you keep getting",
          "these without asking, tell whoever runs the service for your force."]),
        "",
        "--",
        "Neighbourhood alerts",
    ]) + "\n", cte="quoted-printable")
    return message


def request_reset(session: Session, settings: Settings, email: str, *, address: str,
                  now: datetime | None = None) -> ResetMail | None:
    """Count the request and, for a real account within the limits, queue its email; the
    caller commits (and wakes the sender). Returns None in every other case, which the page
    must not tell apart."""
    at = now or utcnow()
    network = _key("address", address)
    session.execute(delete(SignInFailure).where(SignInFailure.at < at - 2 * WINDOW))
    if _recent(session, network, at) >= REQUESTS_PER_ADDRESS:
        return None
    session.add(SignInFailure(key=network, at=at))
    user = find_user(session, email)
    if user is None:
        session.flush()
        return None
    account = _key("account", user.email)
    if _recent(session, account, at) >= EMAILS_PER_ACCOUNT:
        session.flush()
        return None
    session.add(SignInFailure(key=account, at=at))
    link = f"{settings.web.base_url.rstrip('/')}/staff/reset/" \
           f"{reset_token(settings.web.secret_key, user)}"
    record(session, user.email, "password.reset_requested", f"user {user.id}",
           user_id=user.id, now=at)
    session.flush()
    message_id = queue_staff_mail(session, MessageKind.RESET,
                                  build_reset_mail(settings, user, link, now=at),
                                  to=user.email, priority=RESET_PRIORITY, now=at)
    return ResetMail(user.email, message_id)


def invitation(session: Session, settings: Settings, user: User, *, invited_by: str,
               now: datetime | None = None) -> ResetMail:
    """Queue the first "choose a password" email of an account made for someone (a
    coordinator added with their scheme); the caller commits (and wakes the sender)."""
    at = now or utcnow()
    link = f"{settings.web.base_url.rstrip('/')}/staff/reset/" \
           f"{reset_token(settings.web.secret_key, user)}"
    mail = build_reset_mail(settings, user, link, now=at, invited_by=invited_by)
    message_id = queue_staff_mail(session, MessageKind.INVITATION, mail, to=user.email,
                                  priority=RESET_PRIORITY, now=at)
    return ResetMail(user.email, message_id)


class ResetError(AlertsError, ValueError):
    """The new password cannot be used; `errors` maps each form field to what is wrong."""

    http_status = 400

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def account_for_reset(session: Session, settings: Settings, token: str) -> User | None:
    """The account a genuine, unused, recent reset link names; None for any other link."""
    return user_for_reset(session, settings.web.secret_key, token)


def complete_reset(session: Session, settings: Settings, token: str, password: str,
                   repeated: str, *, now: datetime | None = None) -> User | None:
    """Set the new password a reset link allows (None if the link is not good), which
    ends every session of the account and spends the link; audited. The caller commits."""
    user = account_for_reset(session, settings, token)
    if user is None:
        return None
    if len(password) < MIN_PASSWORD:
        raise ResetError({"password": f"Your password must be at least {MIN_PASSWORD} "
                                      "characters long"})
    if len(password) > MAX_PASSWORD:
        raise ResetError({"password": f"Your password must be {MAX_PASSWORD} characters "
                                      "or fewer"})
    if password != repeated:
        raise ResetError({"repeated": "The two passwords are not the same"})
    set_password(session, user, password)
    record(session, user.email, "password.reset", f"user {user.id}", user_id=user.id,
           now=now or utcnow())
    return user
