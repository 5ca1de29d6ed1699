"""An officer adds a scheme and its coordinator from the web (the page for `alerts schemes
add`): the coordinator is emailed a link to choose a password; no one adds a scheme to a
ward that is not theirs."""

from __future__ import annotations

import mailbox
import re
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.accounts.users import find_user
from alerts.core.config import Settings
from alerts.delivery.sender import deliver_due
from subscriptions.schemes import Scheme, find_scheme
from tests.web.test_officers import client_for, post, sign_in, with_passwords

LINK = re.compile(r"https://alerts\.example\.org(/staff/reset/\S+)")


def schemes(factory: sessionmaker[Session]) -> list[str]:
    with factory() as session:
        return list(session.scalars(select(Scheme.name).order_by(Scheme.name)))


def test_an_officer_adds_a_scheme_to_their_ward_and_its_coordinator_is_invited(
        factory: sessionmaker[Session], settings: Settings) -> None:
    with_passwords(factory)
    client = client_for(factory, settings)
    sign_in(client)
    answer = post(client, "/staff/schemes/", {
        "name": "Orchard Close Watch", "ward": "RIV", "coordinator": "Pat@Home.example",
        "coordinator_name": "Pat Reid"}, form_page="/staff/schemes/")
    assert answer.status_code == 200 and "emailed its coordinator" in answer.text
    with factory() as session:
        scheme = find_scheme(session, "Orchard Close Watch")
        assert scheme is not None and scheme.ward.code == "RIV"
        coordinator = find_user(session, "pat@home.example")
        assert coordinator is not None and coordinator.role == "coordinator"
        assert coordinator.password_hash is None
    deliver_due(factory, settings)  # as the delivery loop of `alerts run`, woken, does
    invitations = [m for m in mailbox.Maildir(Path(settings.mail.maildir), create=False)
                   if m["To"] == "pat@home.example"]
    assert len(invitations) == 1
    text = invitations[0].get_payload(decode=True).decode()
    assert "made you an account" in text
    link = LINK.search(text)
    assert link is not None
    assert client.get(link.group(1)).status_code == 200


def test_an_officer_cannot_add_a_scheme_to_another_ward_by_editing_the_form(
        factory: sessionmaker[Session], settings: Settings) -> None:
    with_passwords(factory)
    client = client_for(factory, settings)
    sign_in(client)
    before = schemes(factory)
    answer = post(client, "/staff/schemes/", {
        "name": "Hill Watch", "ward": "HIL", "coordinator": "hil@home.example"},
        form_page="/staff/schemes/")
    assert answer.status_code == 403
    assert schemes(factory) == before
    with factory() as session:
        assert find_user(session, "hil@home.example") is None


def test_a_coordinator_cannot_add_schemes_and_a_taken_name_is_named(
        factory: sessionmaker[Session], settings: Settings) -> None:
    with_passwords(factory)
    officer = client_for(factory, settings)
    sign_in(officer)
    taken = post(officer, "/staff/schemes/", {
        "name": "Mill Lane watch", "ward": "RIV", "coordinator": "x@home.example"},
        form_page="/staff/schemes/")
    assert taken.status_code == 400 and "already a scheme" in taken.text
    coordinator = client_for(factory, settings)
    sign_in(coordinator, "chair@watch.example")
    page = coordinator.get("/staff/schemes/")
    assert "Add a scheme" not in page.text
    refused = post(coordinator, "/staff/schemes/", {
        "name": "My Own Watch", "ward": "RIV", "coordinator": "chair@watch.example"},
        form_page="/staff/schemes/")
    assert refused.status_code == 403 and "My Own Watch" not in schemes(factory)
