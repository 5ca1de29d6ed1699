"""Small factories that build test data through the product's own services."""

from __future__ import annotations

import itertools
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from alerts.core.config import Settings
from subscriptions.base import utcnow
from subscriptions.consent import Consent, ConsentMethod
from subscriptions.links import Purpose, nonces_in, sign_reference
from subscriptions.subscribers import Frequency, Subscription, subscribe
from subscriptions.wards import Ward, add_ward

_counter = itertools.count(1)


def smtp_config(folder: Path, settings: Settings, extra: str = "") -> Path:
    """A config file for the `alerts` command: the test's database and its SMTP server
    (`settings` from the `smtp` fixture), the test's secret key, then `extra` TOML."""
    config = folder / "alerts.toml"
    config.write_text(
        f'[database]\nurl = "{settings.database.url}"\n'
        f'[mail]\ntransport = "smtp"\nsmtp_host = "127.0.0.1"\n'
        f'smtp_port = {settings.mail.smtp_port}\n'
        f'[web]\nsecret_key = "{settings.web.secret_key}"\n'
        f'base_url = "https://alerts.example.org"\n{extra}')
    return config


def make_ward(session: Session, code: str | None = None, name: str | None = None) -> Ward:
    n = next(_counter)
    code = code or f"W{n:03d}"
    return add_ward(session, code, name or f"Ward {code}", f"team-{code.lower()}@police.example")


def make_subscriber(
    session: Session,
    ward: Ward,
    email: str | None = None,
    *,
    confirmed: bool = True,
    frequency: Frequency = Frequency.WEEKLY,
    name: str = "",
    at: datetime | None = None,
) -> Subscription:
    email = email or f"resident{next(_counter)}@home.example"
    consent = Consent(at=at or utcnow(), method=ConsentMethod.OFFICER_CLI, source="tests",
                      prior_consent_declared=confirmed)
    return subscribe(session, email, ward.code, consent, frequency=frequency, name=name,
                     confirmed=confirmed)


def make_sent_message(session: Session, ward: Ward, subscriptions: list[Subscription], *,
                      subject: str = "Riverside: your neighbourhood news",
                      kind: str = "digest") -> dict[int, int]:
    """A message already delivered to these subscriptions; returns subscriber id → delivery id."""
    from sqlalchemy import select

    from alerts.delivery.fanout import queue_for_subscriber
    from alerts.delivery.outbox import Delivery, DeliveryStatus
    from alerts.mail.messages import Message

    message = Message(ward_id=ward.id, kind=kind, subject=subject, html="<p>news</p>",
                      text="news", calendar=None)
    session.add(message)
    session.flush()
    for subscription in subscriptions:
        queue_for_subscriber(session, message, subscription.subscriber_id)
    deliveries = session.scalars(select(Delivery).where(Delivery.message_id == message.id)).all()
    for delivery in deliveries:
        delivery.status = DeliveryStatus.SENT
        delivery.sent_at = utcnow()
    session.flush()
    return {delivery.subscriber_id: delivery.id for delivery in deliveries}


def stored_nonce(session: Session, table: Any, ident: int) -> str:
    """The nonce of `table`'s stored row `ident`, which every token naming it is bound to."""
    nonce = nonces_in(session, table)(ident)
    assert nonce is not None, f"no {table.__tablename__} row {ident}"
    return nonce


def signed(session: Session, secret: str, purpose: Purpose, ident: int) -> str:
    """The token the product signs for stored row `ident`: bound to the nonce of its
    delivery (reply, bounce) or subscription (unsubscribe, preferences)."""
    from alerts.delivery.outbox import Delivery

    table = {Purpose.REPLY: Delivery, Purpose.BOUNCE: Delivery,
             Purpose.UNSUBSCRIBE: Subscription, Purpose.PREFERENCES: Subscription}[purpose]
    return sign_reference(secret, purpose, ident, stored_nonce(session, table, ident))
