"""Wards: the unit residents subscribe to and officers post for."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from subscriptions.addresses import AddressError, normalise_address
from subscriptions.base import Base, utcnow
from subscriptions.errors import AlertsError

WARD_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
MAX_NAME = 200
MAX_CRON = 100


class WardError(AlertsError, ValueError):
    """A ward cannot be added or changed; the message says why."""

    http_status = 400


class Ward(Base):
    __tablename__ = "wards"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(MAX_NAME))
    team_email: Mapped[str] = mapped_column(String(320))
    digest_cron: Mapped[str | None] = mapped_column(String(MAX_CRON), default=None)
    # What the ward's residents are sent in unless they chose otherwise (see languages).
    language: Mapped[str] = mapped_column(String(16), default="en", server_default="en")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


@dataclass(frozen=True)
class WardRow:
    """One ward as read from a CSV file, before it is stored."""

    line: int
    code: str
    name: str
    team_email: str


def check_ward(code: str, name: str, team_email: str) -> tuple[str, str, str]:
    """Validate and normalise a ward's fields; raise WardError naming the bad one."""
    code = code.strip()
    if not WARD_CODE.match(code):
        raise WardError(
            f"ward code {code!r} must be 1-32 letters, digits, '-' or '_', starting with a "
            "letter or digit"
        )
    name = " ".join(name.split())
    if not name:
        raise WardError(f"ward {code}: the name is empty")
    if len(name) > MAX_NAME:
        raise WardError(f"ward {code}: the name is longer than {MAX_NAME} characters")
    try:
        team = normalise_address(team_email)
    except AddressError as exc:
        raise WardError(f"ward {code}: team email {exc}") from None
    return code, name, team


def add_ward(session: Session, code: str, name: str, team_email: str) -> Ward:
    code, name, team = check_ward(code, name, team_email)
    if find_ward(session, code) is not None:
        raise WardError(f"ward code {code!r} is already taken")
    ward = Ward(code=code, name=name, team_email=team)
    session.add(ward)
    session.flush()
    return ward


def ward_key(code: str) -> str:
    """A ward code as looked up: people type "riv" for RIV, so case does not count."""
    return code.strip().casefold()


def find_ward(session: Session, code: str) -> Ward | None:
    """The ward with this code, whatever its case (every lookup by code comes here); an
    exact match first, should two codes differ only in case."""
    code = code.strip()
    return session.scalar(select(Ward).where(Ward.code == code)) or session.scalar(
        select(Ward).where(func.lower(Ward.code) == ward_key(code)).order_by(Ward.id).limit(1))


def ward_ids(session: Session) -> dict[str, int]:
    """Every ward's id by `ward_key` of its code, for reading many rows that name wards."""
    return {ward_key(code): ident for code, ident in
            session.execute(select(Ward.code, Ward.id).order_by(Ward.id.desc())).all()}


def get_ward(session: Session, code: str) -> Ward:
    ward = find_ward(session, code)
    if ward is None:
        raise WardError(f"no ward with code {code!r} (see `alerts wards list`)")
    return ward


def list_wards(session: Session) -> list[Ward]:
    return list(session.scalars(select(Ward).order_by(Ward.code)))


def ward_names(session: Session) -> list[tuple[str, str]]:
    """Every ward's (code, name), by code: two columns, for pages that list every ward
    (no ORM object per ward)."""
    return [(code, name) for code, name in
            session.execute(select(Ward.code, Ward.name).order_by(Ward.code))]


def import_wards(session: Session, rows: list[WardRow]) -> tuple[int, list[str]]:
    """Store new wards; a code already taken is reported, not overwritten."""
    added = 0
    errors: list[str] = []
    for row in rows:
        if find_ward(session, row.code) is not None:
            errors.append(f"line {row.line}: ward code {row.code!r} is already taken")
            continue
        session.add(Ward(code=row.code, name=row.name, team_email=row.team_email))
        added += 1
    session.flush()
    return added, errors
