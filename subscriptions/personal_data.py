"""A resident's own data: everything held about an address, as one JSON-ready dict, and its
erasure, which leaves only a hashed suppression entry behind.

Plain functions over a session; the caller commits. What `alerts` holds about the same
person (the deliveries sent to them) is added and erased by `alerts.usecases.my_data`, which calls
these: this package knows nothing of `alerts`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from subscriptions.addresses import AddressError, normalise_address
from subscriptions.consent import WORDING
from subscriptions.subscribers import Subscriber, Subscription, claim_send_slots
from subscriptions.suppression import Suppression, SuppressionReason, address_hash, suppress
from subscriptions.wards import Ward

# As for confirmations: the "my data" form must not be a way to mail-bomb an address.
DATA_REQUEST_INTERVAL = timedelta(hours=1)


def find_subscriber_id(session: Session, email: str) -> int | None:
    """The subscriber with this address; None if there is none or the text is no address."""
    try:
        address = normalise_address(email)
    except AddressError:
        return None
    return session.scalar(select(Subscriber.id).where(Subscriber.email == address))


def claim_data_request_slot(session: Session, subscriber_id: int, *, now: datetime) -> bool:
    """Take this hour's one "my data" email for the subscriber; False if already taken."""
    return subscriber_id in claim_send_slots(session, [subscriber_id], "data_request_sent_at",
                                             DATA_REQUEST_INTERVAL, now=now)


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def export_subscriber(session: Session, subscriber_id: int) -> dict[str, Any] | None:
    """Everything this package holds about the subscriber, JSON-ready; None if gone.

    Consent is given in full, with the wording the resident was shown, so the export
    answers "what did I agree to, when, and where".
    """
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return None
    rows = session.execute(
        select(Subscription, Ward.code, Ward.name)
        .join(Ward, Ward.id == Subscription.ward_id)
        .where(Subscription.subscriber_id == subscriber_id)
        .order_by(Ward.name)
    ).all()
    entry = session.get(Suppression, address_hash(subscriber.email))
    return {
        "subscriber": {
            "email": subscriber.email,
            "name": subscriber.name,
            "created_at": _when(subscriber.created_at),
            "confirmation_sent_at": _when(subscriber.confirmation_sent_at),
            "data_request_sent_at": _when(subscriber.data_request_sent_at),
        },
        "subscriptions": [
            {
                "ward": {"code": code, "name": name},
                "status": s.status,
                "frequency": s.frequency,
                "scheme": s.scheme,
                "created_at": _when(s.created_at),
                "confirmed_at": _when(s.confirmed_at),
                "unsubscribed_at": _when(s.unsubscribed_at),
                "consent": {
                    "at": _when(s.consent_at),
                    "method": s.consent_method,
                    "source": s.consent_source,
                    "wording_version": s.consent_wording,
                    "wording": WORDING.get(s.consent_wording),
                    "prior_consent_declared": s.consent_prior_declared,
                },
            }
            for s, code, name in rows
        ],
        "suppression": None if entry is None else {
            "reason": entry.reason,
            "detail": entry.detail,
            "created_at": _when(entry.created_at),
        },
    }


def erase_subscriber(session: Session, subscriber_id: int, *, now: datetime) -> bool:
    """Delete the subscriber and their subscriptions; keep only a hash of the address on
    the suppression list, so that no import or form can add it back unnoticed. False if
    the subscriber is already gone.

    Rows elsewhere that point at the subscriber (deliveries, digest progress) must be
    deleted first by their owners; the foreign keys cascade too, but only where the store
    enforces them.
    """
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return False
    email = subscriber.email
    session.execute(delete(Subscription).where(Subscription.subscriber_id == subscriber_id)
                    .execution_options(synchronize_session=False))
    session.execute(delete(Subscriber).where(Subscriber.id == subscriber_id)
                    .execution_options(synchronize_session=False))
    session.expunge(subscriber)
    # An entry kept for another reason (a bounce, a complaint) keeps that reason, but it
    # too loses the address.
    suppress(session, email, SuppressionReason.ERASURE, keep_address=False, now=now)
    return True
