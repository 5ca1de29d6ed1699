"""Signing in and staying signed in: password checks throttled per account and per network
address, a signed session token that expires, and the signed, short-lived reset link.

Throttling: `ACCOUNT_LIMIT` wrong passwords for one account, or `ADDRESS_LIMIT` from one
network address, within `WINDOW` lock sign-in for that account or address until the oldest
of them is older than `WINDOW`. Failures are kept as hashed keys, never as the address or
the password tried.

Sessions: the cookie holds `user id.session version.seal`, signed with a timestamp
(itsdangerous), valid for `SESSION_HOURS`; the seal binds it to the user's row nonce, so a
cookie never signs in as another account given the same id. Signing out bumps the version,
and changing the password replaces the nonce too: either voids every cookie issued before.
Reset links (and invitations, which are reset links for an account with no password yet)
carry the user id and a seal of the row's nonce and current password hash, so a link works
once, only for an hour, and only for the account it was made for.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import String, delete, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from alerts.accounts.users import User, find_user, verify_password
from subscriptions.addresses import AddressError, normalise_address
from subscriptions.base import Base, utcnow
from subscriptions.links import Purpose, seal, seal_matches

ACCOUNT_LIMIT = 10
ADDRESS_LIMIT = 30
WINDOW = timedelta(minutes=15)
SESSION_HOURS = 8
RESET_MINUTES = 60


class SignInFailure(Base):
    __tablename__ = "sign_in_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)


def _key(kind: str, value: str) -> str:
    """The stored key of a failure: `value` is an address already normalised by the caller
    (what the account lookup uses too), so no other spelling escapes the count."""
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()


class Refusal(StrEnum):
    WRONG = "wrong"  # unknown address or wrong password: the page says the same for both
    LOCKED = "locked"


@dataclass(frozen=True)
class SignIn:
    user: User | None
    refusal: Refusal | None = None
    retry_after: timedelta | None = None


def _failures(session: Session, key: str, now: datetime) -> tuple[int, datetime | None]:
    count, oldest = session.execute(
        select(func.count(), func.min(SignInFailure.at))
        .where(SignInFailure.key == key, SignInFailure.at > now - WINDOW)).one()
    return int(count or 0), oldest


def sign_in(session: Session, email: str, password: str, *, address: str,
            now: datetime | None = None) -> SignIn:
    """Check a password, within the throttle; the caller commits (failures are recorded)."""
    at = now or utcnow()
    try:
        # One normal form for the throttle key and the account lookup alike.
        normal: str | None = normalise_address(email)
    except AddressError:
        normal = None  # no account has it; counted on the text as typed
    # Case-folded on top: the lock may only be coarser than the lookup, never finer, so no
    # spelling that reaches an account escapes its lock (folding "ß" to "ss" merges locks,
    # never accounts).
    account = _key("account", (normal or email.strip()).casefold())
    network = _key("address", address)
    for key, limit in ((account, ACCOUNT_LIMIT), (network, ADDRESS_LIMIT)):
        count, oldest = _failures(session, key, at)
        if count >= limit and oldest is not None:
            return SignIn(None, Refusal.LOCKED, oldest + WINDOW - at)
    user = find_user(session, normal) if normal is not None else None
    if not verify_password(session, user, password):
        session.add_all([SignInFailure(key=account, at=at), SignInFailure(key=network, at=at)])
        session.execute(delete(SignInFailure).where(SignInFailure.at < at - 2 * WINDOW))
        session.flush()
        return SignIn(None, Refusal.WRONG)
    session.execute(delete(SignInFailure).where(SignInFailure.key == account))
    return SignIn(user)


def _signer(secret: str) -> TimestampSigner:
    return TimestampSigner(secret, salt="alerts.staff-session")


def session_token(secret: str, user: User) -> str:
    sealed = seal(secret, Purpose.SESSION, user.id, user.nonce)
    return _signer(secret).sign(f"{user.id}.{user.session_version}.{sealed}").decode()


def user_for_token(session: Session, secret: str, token: str | None) -> User | None:
    """The user a genuine, unexpired session token names, or None for anything else."""
    if not token:
        return None
    try:
        value = _signer(secret).unsign(token, max_age=SESSION_HOURS * 3600).decode()
    except (BadSignature, SignatureExpired, UnicodeDecodeError):
        return None
    ident, version, sealed = [*value.split("."), "", ""][:3]
    if not ident.isdigit() or not version.isdigit():
        return None
    user = session.get(User, int(ident))
    if user is None or user.session_version != int(version) \
            or not seal_matches(secret, Purpose.SESSION, user.id, user.nonce, sealed):
        return None
    return user


def sign_out(session: Session, user: User) -> None:
    """End every session of the user (this browser's and any other)."""
    user.session_version += 1
    session.flush()


def _resets(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt="alerts.password-reset")


def _fingerprint(secret: str, user: User) -> str:
    # Bound to the row (its nonce) and to the password now, so a link works once and never
    # for another account, with or without a password, that was given this id.
    password = hashlib.sha256((user.password_hash or "none").encode()).hexdigest()
    return seal(secret, Purpose.RESET, user.id, f"{user.nonce}:{password}")


def reset_token(secret: str, user: User) -> str:
    return str(_resets(secret).dumps({"u": user.id, "f": _fingerprint(secret, user)}))


def user_for_reset(session: Session, secret: str, token: str) -> User | None:
    """The user a genuine, unused reset link of the last hour names, or None."""
    try:
        data = _resets(secret).loads(token, max_age=RESET_MINUTES * 60)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("u"), int):
        return None
    user = session.get(User, data["u"])
    if user is None or not hmac.compare_digest(str(data.get("f")), _fingerprint(secret, user)):
        return None
    return user
