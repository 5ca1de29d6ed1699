"""A resident whose subscription was still waiting to be confirmed, and who accepts a scheme
coordinator's invitation, is confirmed by that press and welcomed as a confirmation's button
welcomes: exactly one welcome email however often the button is pressed (twice, or twice at
once), on both stores, saying when the first digest comes, with their preferences and
unsubscribe links and how to report a crime. A resident who was confirmed already gets none.
"""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.core.db import transaction
from alerts.delivery.outbox import Delivery
from alerts.delivery.sender import deliver_due
from alerts.mail.messages import Message
from alerts.usecases.scheme_invitations import accept, queue_invitations
from subscriptions.base import utcnow
from subscriptions.schemes import add_scheme
from subscriptions.subscribers import Subscriber, Subscription
from tests.factories import make_subscriber, make_ward
from tests.processes import twice_at_once
from tests.servers import SinkHandler
from tests.web.test_residents import client_for
from tests.web.test_welcome import CRON, welcome_reads_right, welcomes

INVITE_LINK = re.compile(r"https://alerts\.example\.org(/scheme-invitation/[^\s<\"]+)")
WELCOME = "Welcome to neighbourhood alerts for Riverside"


def invited(factory: sessionmaker[Session], settings: Settings, *, confirmed: bool) -> str:
    """Eve, subscribed to Riverside (waiting to confirm unless `confirmed`), invited to join
    Mill Lane Watch; the path of her invitation's link."""
    with transaction(factory) as session:
        riverside = make_ward(session, "RIV", "Riverside")
        riverside.digest_cron = CRON
        scheme = add_scheme(session, "Mill Lane Watch", "RIV")
        eve = make_subscriber(session, riverside, "eve@home.example", confirmed=confirmed)
        assert queue_invitations(session, settings, scheme, [eve.id], now=utcnow()).queued == 1
    with factory() as session:
        [text] = session.scalars(
            select(Message.text).join(Delivery)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Subscriber.email == "eve@home.example"))
    found = INVITE_LINK.search(text)
    assert found, text
    return found.group(1)


def eve(factory: sessionmaker[Session]) -> tuple[str | None, str]:
    with factory() as session:
        subscription = session.scalars(select(Subscription).join(Subscriber).where(
            Subscriber.email == "eve@home.example")).one()
        return subscription.scheme, subscription.status


def test_accepting_while_waiting_confirms_and_brings_one_welcome_email(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings],
) -> None:
    sink, settings = smtp
    link = invited(factory, settings, confirmed=False)
    resident = client_for(factory, settings)

    assert resident.get(link).status_code == 200  # opening it changes nothing
    assert eve(factory) == (None, "pending") and welcomes(factory) == []
    for _ in range(2):  # the button, then a double click or a scanner pressing too
        assert resident.post(link).status_code == 200

    assert eve(factory) == ("Mill Lane Watch", "confirmed")
    assert welcomes(factory) == [(WELCOME, 1)]
    deliver_due(factory, settings)
    [mail] = [r for r in sink.received if r.message["Subject"] == WELCOME]
    assert mail.rcpt_tos == ["eve@home.example"]
    assert welcome_reads_right(mail)


def test_two_acceptances_at_once_queue_one_welcome(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings],
) -> None:
    _sink, settings = smtp
    token = invited(factory, settings, confirmed=False).rsplit("/", 1)[1]
    def press() -> None:
        with transaction(factory) as session:
            assert accept(session, settings, token, now=utcnow()) is not None

    twice_at_once(press)
    assert eve(factory) == ("Mill Lane Watch", "confirmed")
    assert welcomes(factory) == [(WELCOME, 1)]


def test_a_resident_confirmed_already_joins_without_a_welcome(
    factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings],
) -> None:
    _sink, settings = smtp
    link = invited(factory, settings, confirmed=True)
    resident: TestClient = client_for(factory, settings)

    assert resident.post(link).status_code == 200

    assert eve(factory) == ("Mill Lane Watch", "confirmed")
    assert welcomes(factory) == []
