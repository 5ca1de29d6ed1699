"""Who may touch what: the rules every officer and coordinator action passes through, in the
service layer, whatever page or URL asked. A refusal is `Forbidden` (the web answers 403).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.accounts.users import Role, User, UserScheme, UserWard
from alerts.core.errors import AlertsError
from subscriptions.schemes import Scheme


class Forbidden(AlertsError, PermissionError):
    """The signed-in person may not do this; the message says what, never whose data."""

    http_status = 403


@dataclass(frozen=True)
class Principal:
    """A signed-in person, as the rules see them."""

    user_id: int
    email: str
    name: str
    role: Role
    ward_ids: frozenset[int]
    scheme_ids: frozenset[int]

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


def command_line_principal(actor: str) -> Principal:
    """The operator at the command line, who may do what an administrator may (they hold the
    database already); the audit log names them by `actor`, with no user id."""
    return Principal(user_id=0, email=actor, name=actor, role=Role.ADMIN,
                     ward_ids=frozenset(), scheme_ids=frozenset())


def principal_for(session: Session, user: User) -> Principal:
    wards = frozenset(session.scalars(select(UserWard.ward_id).where(UserWard.user_id == user.id)))
    schemes = frozenset(session.scalars(
        select(UserScheme.scheme_id).where(UserScheme.user_id == user.id)))
    return Principal(user.id, user.email, user.name, Role(user.role), wards, schemes)


def can_use_ward(who: Principal, ward_id: int) -> bool:
    """Post to, read the replies of and see the figures of this ward."""
    return who.is_admin or (who.role == Role.OFFICER and ward_id in who.ward_ids)


def require_ward(who: Principal, ward_id: int) -> None:
    if not can_use_ward(who, ward_id):
        raise Forbidden("you do not serve that ward")


def can_keep_scheme(who: Principal, scheme: Scheme) -> bool:
    """See and change the scheme's members and message them: its coordinators, the officers
    of its ward, administrators."""
    return (who.is_admin or (who.role == Role.COORDINATOR and scheme.id in who.scheme_ids)
            or (who.role == Role.OFFICER and scheme.ward_id in who.ward_ids))


def require_scheme(who: Principal, scheme: Scheme) -> None:
    if not can_keep_scheme(who, scheme):
        raise Forbidden("that is not one of your schemes")


def require_role(who: Principal, *roles: Role) -> None:
    if who.role not in roles and not who.is_admin:
        raise Forbidden("your role cannot do that")
