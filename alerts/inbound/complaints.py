"""Complaints: a resident told their mailbox provider that one of our emails was spam.

A complaint reaches us as an ARF report (RFC 5965) mailed to the `bounces+TOKEN@` envelope
sender of the delivery (or to a bare feedback-loop address, with the original attached), or
as a provider's webhook event tied to a delivery. Either way it is believed only about the
delivery a signed token names, never about an address a report quotes. That delivery's
resident is suppressed (`SuppressionReason.COMPLAINT`: nothing is sent to them again) and
their subscription to the ward the message came from ends, without a note: a complainer is
not mailed again. A complaint about staff mail, or naming no delivery we hold, suppresses
nobody and is only journalled.

The reason kept (in the suppression entry and the journal) is built from the report's
machine fields (Feedback-Type, User-Agent, Arrival-Date) or the provider's event name: never
an address, never text from the message.

`record_complaint` is the entry point for provider webhooks; intake calls `act_on_complaint`
and journals the email itself.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from sqlalchemy.orm import Session

from alerts.core.config import MailSettings
from alerts.delivery.outbox import Delivery
from alerts.inbound.classify import Kind
from alerts.inbound.commands import subscription_of
from alerts.inbound.journal import InboundRecord, Via, already_seen
from alerts.mail.addresses import AddressKind, parse_address, reply_token_in
from alerts.mail.messages import Message
from alerts.sources.sanitise import shorten
from subscriptions.links import Purpose, nonces_in, verify_reference
from subscriptions.subscribers import Status, Subscriber, Subscription
from subscriptions.suppression import SuppressionReason, suppress
from subscriptions.web_consent import unsubscribe_subscription


@dataclass(frozen=True)
class ComplaintOutcome:
    """What a complaint did, in words safe for the journal and logs."""

    action: str
    suppressed: bool
    subscriber_id: int | None = None
    ward_id: int | None = None
    # The journal row (`record_complaint` only).
    record_id: int | None = None
    # The same event was recorded before: nothing was done again.
    duplicate: bool = False


def act_on_complaint(session: Session, delivery: Delivery | None, *, detail: str,
                     now: datetime, subscription_id: int | None = None) -> ComplaintOutcome:
    """Suppress the resident of `delivery` and end their subscription to its ward.

    `delivery` is the one a verified token named (None when none did), or else
    `subscription_id`, the subscription a verified unsubscribe token named; `detail` says why,
    in safe words (kept in the suppression entry)."""
    named = session.get(Subscription, subscription_id) \
        if delivery is None and subscription_id is not None else None
    if delivery is None and named is None:
        return ComplaintOutcome("recorded: it names no delivery of this service; "
                                "nobody was suppressed", False)
    if delivery is not None and delivery.subscriber_id is None:
        return ComplaintOutcome("recorded: a complaint about staff mail; nobody was suppressed",
                                False)
    if delivery is not None:
        message = session.get(Message, delivery.message_id)
        subscriber_id = delivery.subscriber_id
        ward_id = message.ward_id if message is not None else None
    else:
        assert named is not None
        subscriber_id, ward_id = named.subscriber_id, named.ward_id
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return ComplaintOutcome("recorded: the resident is no longer held", False,
                                ward_id=ward_id)
    suppress(session, subscriber.email, SuppressionReason.COMPLAINT,
             shorten(f"complaint: {detail}", 300), now=now)
    ended = False
    ident = subscription_of(session, subscriber.id, ward_id) if ward_id is not None else None
    subscription = session.get(Subscription, ident) if ident is not None else None
    if subscription is not None and subscription.status != Status.UNSUBSCRIBED:
        ended = unsubscribe_subscription(session, subscription.id, everywhere=False, now=now)
    action = "suppressed (complaint); unsubscribed from the ward" if ended \
        else "suppressed (complaint)"
    return ComplaintOutcome(action, True, subscriber_id=subscriber.id, ward_id=ward_id)


def record_complaint(session: Session, delivery_id: int | None, *, source: str, detail: str,
                     now: datetime, event_id: str | None = None) -> ComplaintOutcome:
    """A complaint a provider reported about the delivery `delivery_id` (which the caller read
    from a signed reference it verified): act on it and journal it, once.

    `source` names the provider ("ses", "sendgrid", ...), `detail` the event in safe words
    (its type and feedback type, no address). `event_id`, the provider's own id for the
    event when it has one, makes a repeated call a no-op (`duplicate`); without one, the same
    source, delivery and detail count as the same event. Does not commit."""
    key = hashlib.sha256(
        f"complaint\n{source}\n{delivery_id}\n{event_id or detail}".encode()).hexdigest()
    seen = already_seen(session, key)
    if seen is not None:
        return ComplaintOutcome(f"already recorded as inbound #{seen.id}", False,
                                subscriber_id=seen.subscriber_id, ward_id=seen.ward_id,
                                record_id=seen.id, duplicate=True)
    delivery = session.get(Delivery, delivery_id) if delivery_id is not None else None
    outcome = act_on_complaint(session, delivery, detail=f"{source}: {detail}", now=now)
    record = InboundRecord(
        content_hash=key, received_at=now, via=Via.WEBHOOK, kind=Kind.COMPLAINT,
        action=shorten(outcome.action, 200), reason=shorten(f"{source}: {detail}", 300),
        delivery_id=delivery.id if delivery is not None else None,
        subscriber_id=outcome.subscriber_id, ward_id=outcome.ward_id)
    session.add(record)
    session.flush()
    return ComplaintOutcome(outcome.action, outcome.suppressed, outcome.subscriber_id,
                            outcome.ward_id, record.id)


def complained_of(session: Session, message: EmailMessage, *, ours: MailSettings,
                  secret: str) -> tuple[int | None, int | None]:
    """(delivery id, subscription id) that a genuine signed token in the original a report
    carries names: its Return-Path (`bounces+`), Reply-To (`reply+`), Message-ID (which holds
    the reply token) or List-Unsubscribe (`unsubscribe+`, naming a subscription). For reports
    sent to an address without a token of its own. Addresses alone are never looked up, and
    a token that does not verify names nothing."""
    original = _original(message)
    if original is None:
        return None, None
    deliveries = nonces_in(session, Delivery)
    candidates: list[tuple[Purpose, str]] = []
    for header, kind in _SIGNED_HEADERS:
        for value in original.get_all(header, []):
            for address in _ADDRESS_IN.findall(str(value)):
                signed = parse_address(ours, address)
                if signed is not None and signed.kind is kind:
                    candidates.append((kind.purpose, signed.token))
    for value in original.get_all("Message-ID", []):
        token = reply_token_in(str(value))
        if token is not None:
            candidates.append((Purpose.REPLY, token))
    for purpose, token in candidates:
        if purpose is Purpose.UNSUBSCRIBE:
            continue
        ident = verify_reference(secret, purpose, token, deliveries)
        if ident is not None:
            return ident, None
    subscriptions = nonces_in(session, Subscription)
    for purpose, token in candidates:
        if purpose is Purpose.UNSUBSCRIBE:
            ident = verify_reference(secret, purpose, token, subscriptions)
            if ident is not None:
                return None, ident
    return None, None


# Where our email carries a signed address, and what its token names.
_SIGNED_HEADERS = (("Return-Path", AddressKind.BOUNCES), ("Reply-To", AddressKind.REPLY),
                   ("List-Unsubscribe", AddressKind.UNSUBSCRIBE))
_ADDRESS_IN = re.compile(r"[^\s<>:,\"]+@[^\s<>,\"]+")


def _original(message: EmailMessage) -> EmailMessage | None:
    """The reported message (or its header block) a report carries, if it does."""
    for part in message.walk():
        if part.get_content_type() == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], EmailMessage):
                return payload[0]
        if part.get_content_type() == "text/rfc822-headers":
            text = part.get_payload(decode=True)
            if isinstance(text, bytes):
                parsed = BytesParser(policy=policy.default).parsebytes(text, headersonly=True)
                assert isinstance(parsed, EmailMessage)
                return parsed
    return None
