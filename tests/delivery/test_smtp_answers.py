"""What an SMTP server answers is kept (`last_error`, the suppression entry) and logged, but
never the resident's address in it: servers echo the recipient as given, in another case,
with the domain in IDNA form, or only its local part, and may name other addresses too."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.core.events import EventBus
from alerts.delivery.fanout import fan_out
from alerts.delivery.outbox import Delivery, DeliveryStatus
from alerts.delivery.sender import deliver_due
from alerts.mail.messages import Message
from alerts.usecases.pipeline import wire
from subscriptions.suppression import Suppression
from tests.factories import make_subscriber, make_ward
from tests.servers import SinkHandler

RESIDENT = "jose@café.example"  # the relay holds it as jose@xn--caf-dma.example


def send_one(factory: sessionmaker[Session], settings: Settings, address: str) -> None:
    """Queue one digest for `address` and run a delivery pass, as `alerts run` would."""
    with factory.begin() as session:
        ward = make_ward(session)
        make_subscriber(session, ward, address)
        message = Message(ward_id=ward.id, kind="digest", subject="News", html="<p>x</p>",
                          text="x")
        session.add(message)
        session.flush()
        fan_out(session, message)
    bus = EventBus()
    wire(bus, factory, settings)  # failures are logged by the pipeline's handler
    deliver_due(factory, settings, bus=bus)


def product_log(caplog: pytest.LogCaptureFixture) -> str:
    # aiosmtpd's own log ("mail.log") is the test server's, not the product's.
    return "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("mail"))


@pytest.mark.parametrize(("answer", "status"), [
    ("550 5.1.1 <jose@xn--caf-dma.example>: Recipient address rejected: User unknown",
     DeliveryStatus.FAILED),
    ("550 jose... User unknown", DeliveryStatus.FAILED),
    ("550 5.1.1 <JOSE@CAFÉ.EXAMPLE> moved; write to jose.garcia@elsewhere.example",
     DeliveryStatus.FAILED),
    ("451 4.2.1 mailbox for jose full (jose@xn--caf-dma.example), try later",
     DeliveryStatus.QUEUED),
])
def test_an_answer_echoing_the_address_in_any_form_is_kept_and_logged_without_it(
        factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings],
        caplog: pytest.LogCaptureFixture, answer: str, status: DeliveryStatus) -> None:
    sink, settings = smtp
    sink.reject[RESIDENT] = answer
    caplog.set_level(logging.DEBUG)
    send_one(factory, settings, RESIDENT)
    with factory() as session:
        delivery = session.scalars(select(Delivery)).one()
        details = session.scalars(select(Suppression.detail)).all()
    assert delivery.status == status
    assert delivery.last_error is not None and delivery.last_error[:4] == answer[:4]
    log = product_log(caplog)
    assert delivery.last_error in log  # what was kept is what was logged
    for kept in (delivery.last_error, log, *details):
        assert "jose" not in kept.lower() and "xn--" not in kept and "@" not in kept, kept


def test_a_hard_bounce_is_judged_on_the_servers_words_before_they_are_redacted(
        factory: sessionmaker[Session], smtp: tuple[SinkHandler, Settings]) -> None:
    # Redacted, "user" would leave "<recipient> unknown": no longer a hard bounce.
    sink, settings = smtp
    sink.reject["user@home.example"] = "550 User unknown"
    send_one(factory, settings, "user@home.example")
    with factory() as session:
        entry = session.scalars(select(Suppression)).one()
        delivery = session.scalars(select(Delivery)).one()
    assert entry.reason == "hard_bounce"
    assert delivery.last_error == "550 <recipient> unknown"
