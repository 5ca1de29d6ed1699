"""The "my data" pages on both stores: ask by address (no enumeration, one email an hour),
open the emailed link (signed, expiring, its own salt), download everything held as JSON,
erase it (after a page that asks to confirm, see test_my_data_erase.py), and a re-import
that does not re-add the erased address.
"""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.delivery.outbox import Delivery
from alerts.delivery.sender import deliver_due
from alerts.digests.ledger import SubscriptionProgress
from alerts.mail.messages import Message, MessageKind
from alerts.usecases.confirmations import CONFIRM_SALT
from alerts.usecases.my_data import DATA_SALT, data_token
from alerts.usecases.posting import post_urgent
from subscriptions.base import utcnow
from subscriptions.consent import CURRENT_WORDING, WORDING, Consent, ConsentMethod
from subscriptions.csv_io import import_rows, read_subscribers
from subscriptions.links import new_nonce
from subscriptions.subscribers import Status, Subscriber, Subscription, unsubscribe_everywhere
from subscriptions.suppression import (
    Suppression,
    SuppressionReason,
    address_hash,
    suppress,
)
from subscriptions.wards import get_ward
from tests.factories import make_subscriber, make_ward, stored_nonce
from tests.servers import Received, SinkHandler
from tests.web.test_residents import client_for, csrf_of, sign_up, subscriptions_of

DATA_LINK = re.compile(r"https://alerts\.example\.org(/my-data/\S+)")


def ask(client: TestClient, email: str) -> tuple[int, str]:
    token = csrf_of(client.get("/my-data").text)
    response = client.post("/my-data", data={"email": email, "csrf_token": token})
    return response.status_code, response.text


def data_link(received: Received) -> str:
    body = received.message.get_body(("plain",))
    assert body is not None
    match = DATA_LINK.search(body.get_content())
    assert match, "the email carries the link"
    return match.group(1)


def count(factory: sessionmaker[Session], table: type[object]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


@pytest.fixture
def resident(factory: sessionmaker[Session]) -> int:
    """Jo: confirmed for Riverside, unsubscribed from Hillcrest; Ann: confirmed for Riverside."""
    with factory.begin() as session:
        riv, hil = make_ward(session, "RIV", "Riverside"), make_ward(session, "HIL", "Hillcrest")
        make_ward(session, "OLD", "Old Town")
        jo = make_subscriber(session, riv, "jo@home.example", name="Jo")
        make_subscriber(session, hil, "jo@home.example")
        make_subscriber(session, riv, "ann@home.example")
        session.flush()
        hillcrest = session.scalars(select(Subscription).where(
            Subscription.subscriber_id == jo.subscriber_id,
            Subscription.ward_id == hil.id)).one()
        hillcrest.status = Status.UNSUBSCRIBED
        session.add(SubscriptionProgress(subscription_id=jo.id, last_item_id=0))
        return jo.subscriber_id


@pytest.mark.usefixtures("resident")
def test_the_answer_is_the_same_whether_or_not_the_address_is_held_and_only_one_an_hour(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]
) -> None:
    sink, settings = smtp
    with factory.begin() as session:
        suppress(session, "blocked@home.example", SuppressionReason.COMPLAINT)
    client = client_for(factory, settings)
    page = client.get("/my-data")
    assert page.status_code == 200 and "999" in page.text and 'for="email"' in page.text
    answers = {email: ask(client, email) for email in (
        "Jo@Home.example", "nobody@home.example", "blocked@home.example")}
    assert len(set(answers.values())) == 1, "no enumeration: one status, one body"
    assert [ask(client, "jo@home.example") for _ in range(2)] == [answers["Jo@Home.example"]] * 2
    deliver_due(factory, settings)
    assert [r.rcpt_tos for r in sink.received] == [["jo@home.example"]], \
        "one email, to the address held, however often the form is sent"
    [mail] = sink.received
    assert mail.message["Subject"] == "Your neighbourhood alerts data"
    text = mail.message.get_body(("plain",))
    assert text is not None
    assert "999" in text.get_content() and "Crimestoppers" in text.get_content()
    with factory.begin() as session:
        jo = session.scalars(select(Subscriber).where(Subscriber.email == "jo@home.example")).one()
        assert jo.data_request_sent_at is not None
        assert jo.confirmation_sent_at is None, "its own throttle, not the sign-up's"
        jo.data_request_sent_at -= timedelta(minutes=61)
    ask(client, "jo@home.example")
    deliver_due(factory, settings)
    assert len(sink.received) == 2, "an hour later another may go"


@pytest.mark.usefixtures("resident")
def test_a_bad_address_is_named_and_a_post_without_csrf_sends_nothing(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    client = client_for(factory, settings)
    token = csrf_of(client.get("/my-data").text)
    bad = client.post("/my-data", data={"email": "not an address", "csrf_token": token})
    assert bad.status_code == 400 and 'id="email-error"' in bad.text
    assert 'value="not an address"' in bad.text
    stranger = client_for(factory, settings)
    refused = stranger.post("/my-data", data={"email": "jo@home.example", "csrf_token": token})
    assert refused.status_code == 400 and "Please try again" in refused.text
    assert count(factory, Delivery) == 0


def test_download_holds_everything_and_erasure_leaves_only_a_hash(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings], resident: int
) -> None:
    sink, settings = smtp
    with factory.begin() as session:
        post_urgent(session, settings, ward_code="RIV", title="Road closed",
                    body="Avoid the high street.", now=utcnow())
    deliver_due(factory, settings)
    client = client_for(factory, settings)
    ask(client, "jo@home.example")
    deliver_due(factory, settings)
    [link] = [data_link(r) for r in sink.received if r.rcpt_tos == ["jo@home.example"]
              and r.message["Subject"] == "Your neighbourhood alerts data"]

    page = client.get(link)
    assert page.status_code == 200
    assert "jo@home.example" in page.text and "Riverside: confirmed" in page.text
    assert f'href="{link}/download"' in page.text and "Erase everything" in page.text
    download = client.get(f"{link}/download")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/json"
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.headers["cache-control"] == "no-store"
    data = json.loads(download.text)
    assert data["subscriber"]["email"] == "jo@home.example" and data["subscriber"]["name"] == "Jo"
    assert [(s["ward"]["code"], s["status"], s["frequency"]) for s in data["subscriptions"]] == [
        ("HIL", "unsubscribed", "weekly"), ("RIV", "confirmed", "weekly")]
    consent = data["subscriptions"][1]["consent"]
    assert consent == {"at": consent["at"], "method": "cli", "source": "tests",
                       "wording_version": CURRENT_WORDING, "wording": WORDING[CURRENT_WORDING],
                       "prior_consent_declared": True}
    assert data["suppression"] is None
    sent = {(d["kind"], d["status"]) for d in data["deliveries"]}
    assert sent == {("alert", "sent"), ("data_request", "sent")}
    assert all(d["subject"] and d["queued_at"] for d in data["deliveries"])
    assert "Avoid the high street" not in download.text, "subjects, not bodies"
    assert "ann@home.example" not in download.text

    stranger = client_for(factory, settings)  # no CSRF cookie: nothing is erased
    assert stranger.post(f"{link}/erase", data={}).status_code == 400
    assert subscriptions_of(factory, "jo@home.example")
    # What the button of the page that asks to confirm sends (test_my_data_erase.py).
    token = csrf_of(client.get("/my-data").text)
    erased = client.post(f"{link}/erase", data={"csrf_token": token, "erase": "everything"})
    assert erased.status_code == 200 and "Your data is erased" in erased.text

    with factory() as session:
        assert session.scalar(select(Subscriber).where(
            Subscriber.email == "jo@home.example")) is None
        assert session.scalar(select(func.count()).select_from(Subscription).where(
            Subscription.subscriber_id == resident)) == 0
        assert session.scalar(select(func.count()).select_from(Delivery).where(
            Delivery.subscriber_id == resident)) == 0
        assert session.scalar(select(func.count()).select_from(SubscriptionProgress)) == 0
        assert session.scalar(select(func.count()).select_from(Message).where(
            Message.kind == MessageKind.DATA_REQUEST)) == 0, "a message written for Jo alone"
        assert session.scalar(select(func.count()).select_from(Message).where(
            Message.kind == MessageKind.ALERT)) == 1, "the ward's alert stays, for Ann"
        [entry] = session.scalars(select(Suppression))
        assert (entry.address_hash, entry.email, entry.reason) == (
            address_hash("jo@home.example"), None, SuppressionReason.ERASURE)
    assert len(subscriptions_of(factory, "ann@home.example")) == 1
    again = client.get(link)
    assert again.status_code == 400 and 'href="/my-data"' in again.text, "the link is spent"
    assert client.get(f"{link}/download").status_code == 400

    rows, _ = read_subscribers("email,ward\nJO@home.example,RIV\nnew@home.example,RIV\n")
    consent = Consent(at=utcnow(), method=ConsentMethod.CSV_IMPORT, source="members.csv")
    with factory.begin() as session:
        imported, errors = import_rows(session, rows, consent, confirmed=True)
    assert imported == 1
    assert [(e.line, "suppression list (erasure)" in e.reason) for e in errors] == [(2, True)]
    sign_up(client, "jo@home.example", "RIV")
    assert [s.status for s in subscriptions_of(factory, "jo@home.example")] == [
        Status.PENDING], "the web form asks Jo to confirm (test_subscribe_after_erasure.py)"


def test_a_resident_who_left_every_ward_still_gets_the_link(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings], resident: int
) -> None:
    sink, settings = smtp
    with factory.begin() as session:
        unsubscribe_everywhere(session, "jo@home.example")
    ask(client_for(factory, settings), "jo@home.example")
    deliver_due(factory, settings)
    assert [r.rcpt_tos for r in sink.received] == [["jo@home.example"]]
    # Nothing else goes to an address that has left, as before.
    with factory.begin() as session:
        post_urgent(session, settings, ward_code="RIV", title="Road closed", body="Detour.",
                    now=utcnow())
    deliver_due(factory, settings)
    assert [r.rcpt_tos for r in sink.received][1:] == [["ann@home.example"]]


def test_expired_forged_foreign_and_reused_links_are_refused_and_change_nothing(
    factory: sessionmaker[Session], settings: Settings, resident: int
) -> None:
    payload_of = {"s": resident}
    with factory() as session:
        genuine = data_token(settings, resident, stored_nonce(session, Subscriber, resident))

    class LongAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 25 * 3600

    sealed = URLSafeTimedSerializer(settings.web.secret_key, salt=DATA_SALT).loads(
        genuine)["n"]
    payload = {**payload_of, "n": sealed}
    expired = URLSafeTimedSerializer(settings.web.secret_key, salt=DATA_SALT,
                                     signer=LongAgo).dumps(payload)
    forged = URLSafeTimedSerializer("another-key", salt=DATA_SALT).dumps(payload)
    confirm_salt = URLSafeTimedSerializer(settings.web.secret_key, salt=CONFIRM_SALT).dumps(
        payload)
    # A link for an erased row (its nonce) must not open the data of whoever is held under
    # that id or address next.
    someone_else = data_token(settings, resident, new_nonce())
    altered = genuine[:-3] + ("aaa" if not genuine.endswith("aaa") else "bbb")
    client = client_for(factory, settings)
    for token in (expired, forged, confirm_salt, someone_else, altered, "nonsense"):
        page = client.get(f"/my-data/{token}")
        assert page.status_code == 400, token
        assert "This link does not work" in page.text and "Nothing has been changed" in page.text
        assert client.get(f"/my-data/{token}/download").status_code == 400
    csrf = csrf_of(client.get("/my-data").text)
    for token in (expired, forged, someone_else, altered):
        assert client.post(f"/my-data/{token}/erase",
                           data={"csrf_token": csrf, "erase": "everything"}).status_code == 400
    assert len(subscriptions_of(factory, "jo@home.example")) == 2
    assert count(factory, Suppression) == 0


def test_erasure_keeps_an_earlier_reason_but_drops_the_address(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    from alerts.usecases.my_data import erase_data

    with factory.begin() as session:
        subscription = make_subscriber(session, make_ward(session, "RIV", "Riverside"),
                                       "jo@home.example")
        suppress(session, "jo@home.example", SuppressionReason.HARD_BOUNCE, "550 5.1.1")
        ident = subscription.subscriber_id
    with factory.begin() as session:
        assert erase_data(session, ident, now=utcnow())
        assert not erase_data(session, ident, now=utcnow()), "twice is harmless"
    with factory() as session:
        [entry] = session.scalars(select(Suppression))
        assert (entry.email, entry.reason) == (None, SuppressionReason.HARD_BOUNCE)
        assert get_ward(session, "RIV") is not None
