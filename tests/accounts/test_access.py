"""Who may touch what, at the service level: officers their own wards, coordinators their own
schemes, administrators everything; a refusal is `Forbidden` and says what, not whose."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from alerts.accounts.access import (
    Forbidden,
    Principal,
    can_use_ward,
    principal_for,
    require_role,
    require_scheme,
    require_ward,
)
from alerts.accounts.users import Role, add_user
from subscriptions.schemes import add_scheme
from tests.factories import make_ward


def principal(session: Session, email: str, role: Role, **kwargs: list[str]) -> Principal:
    return principal_for(session, add_user(session, email, role, **kwargs))


def test_an_officer_uses_only_the_wards_they_serve(session: Session) -> None:
    riv, hil = make_ward(session, "RIV"), make_ward(session, "HIL")
    officer = principal(session, "pc@police.example", Role.OFFICER, ward_codes=["RIV"])
    assert can_use_ward(officer, riv.id)
    require_ward(officer, riv.id)
    assert not can_use_ward(officer, hil.id)
    with pytest.raises(Forbidden, match="you do not serve that ward"):
        require_ward(officer, hil.id)


def test_an_administrator_uses_every_ward_and_a_coordinator_none(session: Session) -> None:
    riv = make_ward(session, "RIV")
    add_scheme(session, "Mill Lane watch", "RIV")
    admin = principal(session, "admin@police.example", Role.ADMIN)
    coordinator = principal(session, "chair@watch.example", Role.COORDINATOR,
                            scheme_names=["Mill Lane watch"])
    require_ward(admin, riv.id)
    with pytest.raises(Forbidden):
        require_ward(coordinator, riv.id)


def test_a_scheme_is_kept_by_its_coordinators_and_its_wards_officers_only(
        session: Session) -> None:
    make_ward(session, "RIV")
    make_ward(session, "HIL")
    mill = add_scheme(session, "Mill Lane watch", "RIV")
    hill = add_scheme(session, "Hill Top watch", "HIL")
    coordinator = principal(session, "chair@watch.example", Role.COORDINATOR,
                            scheme_names=["Mill Lane watch"])
    riverside_officer = principal(session, "pc@police.example", Role.OFFICER,
                                  ward_codes=["RIV"])
    require_scheme(coordinator, mill)
    require_scheme(riverside_officer, mill)
    for who in (coordinator, riverside_officer):
        with pytest.raises(Forbidden, match="not one of your schemes"):
            require_scheme(who, hill)


def test_a_role_check_lets_administrators_through(session: Session) -> None:
    make_ward(session, "RIV")
    officer = principal(session, "pc@police.example", Role.OFFICER, ward_codes=["RIV"])
    admin = principal(session, "admin@police.example", Role.ADMIN)
    require_role(officer, Role.OFFICER)
    require_role(admin, Role.OFFICER)
    with pytest.raises(Forbidden):
        require_role(officer, Role.COORDINATOR)
