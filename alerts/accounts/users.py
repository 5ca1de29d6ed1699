"""Staff users and their roles: an officer serves one or more wards, a coordinator keeps one
or more schemes, an administrator runs the service. Passwords are hashed with argon2id
(argon2-cffi's defaults, rehashed when those change); no password is ever stored or logged.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import ForeignKey, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from alerts.core.errors import AlertsError
from subscriptions.addresses import normalise_address
from subscriptions.base import NEVER_REUSED, Base, id_never_reused, utcnow
from subscriptions.links import new_nonce, nonce_column
from subscriptions.schemes import Scheme, get_scheme
from subscriptions.wards import Ward, get_ward

MIN_PASSWORD = 12
MAX_PASSWORD = 1024
_HASHER = PasswordHasher()


@functools.cache
def _decoy_hash() -> str:
    """Verified against when the address is unknown, so a wrong address costs as long as a
    wrong password and sign-in does not reveal which addresses have accounts. Made on the
    first sign-in of a process (of either kind), not at import: a command that never checks
    a password does not pay for an argon2 hash."""
    return _HASHER.hash("not a password anyone has")


class Role(StrEnum):
    OFFICER = "officer"
    COORDINATOR = "coordinator"
    ADMIN = "admin"


class UserError(AlertsError, ValueError):
    """A user cannot be added or changed as asked; the message says why."""

    http_status = 400


class User(Base):
    __tablename__ = "users"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = id_never_reused()
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(200), default=None)
    # Bumped on sign-out and password change: every session cookie issued before is void.
    session_version: Mapped[int] = mapped_column(default=1)
    # Sessions, reset links and invitations are bound to it; replaced on password change
    # and removal, so none of them outlives what it was issued for.
    nonce: Mapped[str] = nonce_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UserWard(Base):
    __tablename__ = "user_wards"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    ward_id: Mapped[int] = mapped_column(ForeignKey("wards.id", ondelete="CASCADE"),
                                         primary_key=True)


class UserScheme(Base):
    __tablename__ = "user_schemes"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    scheme_id: Mapped[int] = mapped_column(ForeignKey("schemes.id", ondelete="CASCADE"),
                                           primary_key=True)


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise UserError(f"a password is at most {MAX_PASSWORD} characters")
    return password


def hash_password(password: str) -> str:
    return _HASHER.hash(check_password(password))


def find_user(session: Session, email: str) -> User | None:
    try:
        address = normalise_address(email)
    except ValueError:
        return None
    return session.scalars(select(User).where(User.email == address)).first()


def get_user(session: Session, email: str) -> User:
    user = find_user(session, email)
    if user is None:
        raise UserError("no user with that address (see `alerts users list`)")
    return user


def add_user(session: Session, email: str, role: Role, *, ward_codes: Sequence[str] = (),
             scheme_names: Sequence[str] = (), name: str = "",
             password: str | None = None) -> User:
    """Add a user, or give an existing one more wards or schemes (same role only)."""
    address = normalise_address(email)
    if role == Role.OFFICER and not ward_codes:
        raise UserError("an officer needs at least one ward (--ward CODE)")
    if role == Role.COORDINATOR and not scheme_names:
        raise UserError("a coordinator needs at least one scheme (--scheme NAME)")
    if role == Role.ADMIN and (ward_codes or scheme_names):
        raise UserError("an administrator has every ward and scheme; give no --ward or --scheme")
    if role != Role.OFFICER and ward_codes:
        raise UserError("only officers have wards")
    if role != Role.COORDINATOR and scheme_names:
        raise UserError("only coordinators have schemes")
    wards = [get_ward(session, code) for code in ward_codes]
    schemes = [get_scheme(session, name_) for name_ in scheme_names]
    user = find_user(session, address)
    if user is None:
        user = User(email=address, name=" ".join(name.split())[:200], role=role)
        session.add(user)
        session.flush()
    elif user.role != role:
        raise UserError(f"that address already has the role {user.role}; remove it first")
    if password is not None:
        user.password_hash = hash_password(password)
    for ward in wards:
        if session.get(UserWard, (user.id, ward.id)) is None:
            session.add(UserWard(user_id=user.id, ward_id=ward.id))
    for scheme in schemes:
        if session.get(UserScheme, (user.id, scheme.id)) is None:
            session.add(UserScheme(user_id=user.id, scheme_id=scheme.id))
    session.flush()
    return user


def set_password(session: Session, user: User, password: str) -> None:
    user.password_hash = hash_password(password)
    user.session_version += 1  # sessions signed in with the old password end
    user.nonce = new_nonce()  # and so do reset links and invitations issued before
    session.flush()


def remove_user(session: Session, user: User) -> None:
    session.execute(delete(UserWard).where(UserWard.user_id == user.id))
    session.execute(delete(UserScheme).where(UserScheme.user_id == user.id))
    session.delete(user)
    session.flush()


def verify_password(session: Session, user: User | None, password: str) -> bool:
    """Whether `password` is the user's; rehashes it when argon2's parameters changed."""
    decoy = _decoy_hash()
    if user is None or user.password_hash is None or len(password) > MAX_PASSWORD:
        with contextlib.suppress(VerificationError):
            _HASHER.verify(decoy, password[:MAX_PASSWORD])
        return False
    try:
        _HASHER.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = _HASHER.hash(password)
        session.flush()
    return True


@dataclass(frozen=True)
class UserRow:
    email: str
    name: str
    role: str
    wards: tuple[str, ...]
    schemes: tuple[str, ...]
    has_password: bool


def list_users(session: Session) -> list[UserRow]:
    rows = []
    for user in session.scalars(select(User).order_by(User.role, User.email)):
        wards = tuple(session.scalars(
            select(Ward.code).join(UserWard, UserWard.ward_id == Ward.id)
            .where(UserWard.user_id == user.id).order_by(Ward.code)))
        schemes = tuple(session.scalars(
            select(Scheme.name).join(UserScheme, UserScheme.scheme_id == Scheme.id)
            .where(UserScheme.user_id == user.id).order_by(Scheme.name)))
        rows.append(UserRow(user.email, user.name, user.role, wards, schemes,
                            user.password_hash is not None))
    return rows
