"""Subscribing again after erasing one's data, on both stores: a resident who erased may
come back by asking at /subscribe and pressing the emailed link (new consent, asked for:
the erasure's entry on the suppression list goes then, not before); an address a mailbox
refused or reported stays unmailed, and the form's answer is the same for every address."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.delivery.sender import deliver_due
from alerts.usecases.my_data import erase_data
from subscriptions.base import utcnow
from subscriptions.consent import Consent, ConsentMethod
from subscriptions.csv_io import import_rows, read_subscribers
from subscriptions.subscribers import Status, find_subscriber
from subscriptions.suppression import Suppression, SuppressionReason, address_hash, suppress
from tests.factories import make_subscriber, make_ward
from tests.servers import Received, SinkHandler
from tests.web.test_residents import (
    client_for,
    confirm_by_button,
    confirm_link,
    csrf_of,
    sign_up,
    subscriptions_of,
)


def mail_to(sink: SinkHandler, email: str) -> list[Received]:
    return [r for r in sink.received if r.rcpt_tos == [email]]


def held(factory: sessionmaker[Session], email: str) -> list[Status]:
    return [Status(s.status) for s in subscriptions_of(factory, email)]


@pytest.fixture
def riverside(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        riv = make_ward(session, "RIV", "Riverside")
        make_subscriber(session, riv, "jo@home.example", name="Jo")
        make_subscriber(session, riv, "ann@home.example")


def erase(factory: sessionmaker[Session], email: str) -> None:
    with factory.begin() as session:
        subscriber = find_subscriber(session, email)
        assert subscriber is not None
        assert erase_data(session, subscriber.id, now=utcnow())


@pytest.mark.usefixtures("riverside")
def test_a_resident_who_erased_comes_back_by_asking_and_pressing_the_emailed_link(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]
) -> None:
    sink, settings = smtp
    client = client_for(factory, settings)
    erase(factory, "jo@home.example")

    assert sign_up(client, "jo@home.example", "RIV")[0] == 200
    deliver_due(factory, settings)
    [confirmation] = mail_to(sink, "jo@home.example")
    assert held(factory, "jo@home.example") == [Status.PENDING]
    # Until they press the link, the erasure still keeps lists and imports out.
    rows, _ = read_subscribers("email,ward\njo@home.example,RIV\n")
    consent = Consent(at=utcnow(), method=ConsentMethod.CSV_IMPORT, source="members.csv")
    with factory.begin() as session:
        assert import_rows(session, rows, consent, confirmed=True)[0] == 0
    assert held(factory, "jo@home.example") == [Status.PENDING]

    assert confirm_by_button(client, confirm_link(confirmation)).status_code == 200
    assert held(factory, "jo@home.example") == [Status.CONFIRMED]
    with factory() as session:
        assert session.get(Suppression, address_hash("jo@home.example")) is None, \
            "the erasure's entry goes once they confirm"


@pytest.mark.usefixtures("riverside")
def test_a_refused_address_still_gets_nothing_and_the_form_answers_the_same_for_all(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]
) -> None:
    sink, settings = smtp
    client = client_for(factory, settings)
    erase(factory, "jo@home.example")
    erase(factory, "ann@home.example")
    with factory.begin() as session:
        suppress(session, "bounced@home.example", SuppressionReason.HARD_BOUNCE, "550 5.1.1")
        suppress(session, "reported@home.example", SuppressionReason.COMPLAINT)
        # Ann's address bounced after her erasure: the entry holds it again, and stays.
        suppress(session, "ann@home.example", SuppressionReason.HARD_BOUNCE, "550 5.1.1")
    answers = {email: sign_up(client, email, "RIV") for email in (
        "jo@home.example", "bounced@home.example", "reported@home.example",
        "ann@home.example", "new@home.example")}
    assert len(set(answers.values())) == 1, "one status, one body: it tells no one anything"
    assert answers["new@home.example"][0] == 200
    deliver_due(factory, settings)
    assert sorted(r.rcpt_tos[0] for r in sink.received) == [
        "jo@home.example", "new@home.example"]
    with factory() as session:
        reasons = {e.reason for e in session.scalars(select(Suppression))}
    assert reasons == {SuppressionReason.HARD_BOUNCE, SuppressionReason.COMPLAINT,
                       SuppressionReason.ERASURE}, "nothing is lifted by asking"


def test_the_answer_says_truthfully_that_a_refused_address_gets_nothing(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    with factory.begin() as session:
        make_ward(session, "RIV", "Riverside")
        suppress(session, "bounced@home.example", SuppressionReason.HARD_BOUNCE, "550 5.1.1")
    client = client_for(factory, settings)
    answers = {email: sign_up(client, email, "RIV")
               for email in ("bounced@home.example", "new@home.example")}
    assert len(set(answers.values())) == 1
    status, body = answers["new@home.example"]
    assert status == 200
    assert "We send no email to an address whose mailbox has refused our emails or " \
        "reported them as spam." in body
    assert f'href="mailto:{settings.force.contact_email}"' in body
    welsh = client.post("/subscribe?lang=cy", data={
        "email": "new@home.example", "wards": ["RIV"], "frequency": "weekly",
        "csrf_token": csrf_of(client.get("/subscribe").text)})
    assert "Nid ydym yn anfon e-bost at gyfeiriad" in welsh.text
