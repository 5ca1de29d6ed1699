"""What every provider webhook shares: the refusals, the events read from a call, the ids
already seen, and acting on an event through the delivery its signed reference names.

An event is believed only about the delivery that a genuine `bounces+` token names (the
reference the product put into each resident's copy: `X-Alerts-Ref` and the header each
provider echoes back, or the envelope sender), never about an address the event quotes.
A bounce then goes the way of an inbound one (`alerts.inbound.bounces`), a complaint to
`record_complaint` (`alerts.inbound.complaints`).

Replays: each event id (SNS MessageId, SendGrid sg_event_id, Postmark record id, Mailgun
token) is kept in `webhook_events` when first acted on; a call whose events were all seen
before is refused and changes nothing. Calls older than `webhooks.max_age_seconds` are
refused as stale, so an id need only be kept that long: rows are pruned after twice that
window (a call may also be dated up to one window ahead of our clock).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import String, delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from alerts.core.config import Settings, WebhooksSettings
from alerts.core.errors import AlertsError
from alerts.delivery.outbox import Delivery
from alerts.inbound.bounces import record_bounce
from alerts.inbound.classify import Classification, Kind, Severity
from alerts.inbound.complaints import record_complaint
from alerts.mail.mime import REF_HEADER as REF_HEADER
from alerts.mail.mime import REF_METADATA as REF_METADATA
from alerts.mail.mime import REF_NAME as REF_NAME
from subscriptions.base import Base
from subscriptions.links import Purpose, nonces_in, verify_reference


class WebhookUnsigned(AlertsError):
    """A call without the credentials its provider always sends."""

    http_status = 401


class WebhookRefused(AlertsError):
    """A call whose signature or credentials are wrong, that is stale or seen before, or
    that names something this service does not take (a topic, a certificate host)."""

    http_status = 403


class SeenEvent(Base):
    """A provider event id acted on, kept while a replay of it could still be fresh."""

    __tablename__ = "webhook_events"

    provider: Mapped[str] = mapped_column(String(16), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(index=True)


@dataclass(frozen=True)
class ProviderEvent:
    """One bounce or complaint a provider reported, in safe words (no address, no text)."""

    provider: str
    event_id: str
    kind: Kind  # BOUNCE or COMPLAINT
    # The signed references the event carries: echoed custom data first, then the
    # envelope sender's bounces+ token where the provider reports it.
    refs: tuple[str, ...]
    detail: str
    severity: Severity | None = None
    status: str | None = None


def require_fresh(when: datetime, webhooks: WebhooksSettings, now: datetime) -> None:
    """Refuse a call dated outside `max_age_seconds` of `now` (either way)."""
    window = timedelta(seconds=webhooks.max_age_seconds)
    if not now - window <= when <= now + window:
        raise WebhookRefused("the call is stale: its time is outside the accepted window")


def require_fresh_epoch(timestamp: str, webhooks: WebhooksSettings, now: datetime) -> None:
    """`require_fresh` for a call dated in whole seconds since the epoch (SendGrid, Mailgun)."""
    try:
        when = datetime.fromtimestamp(int(timestamp), UTC)
    except (ValueError, OverflowError, OSError):
        raise WebhookRefused("the call's timestamp cannot be read") from None
    require_fresh(when, webhooks, now)


def json_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise WebhookRefused("the body is not JSON") from None


def parse_time(value: object) -> datetime:
    """An ISO 8601 time as the providers write it ("...Z", up to 7 decimals), in UTC."""
    if not isinstance(value, str):
        raise WebhookRefused("the call has no time")
    text = value.strip().replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # at most six decimals, whatever the provider writes
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:min(digits, 6)].ljust(6, '0')}{rest[digits:]}"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise WebhookRefused("the call's time cannot be read") from None
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def safe_word(value: object, limit: int = 40) -> str:
    """A provider's machine word (an event type, a status) kept to harmless characters."""
    text = "".join(c for c in str(value or "") if c.isascii() and (c.isalnum() or c in " ._/-"))
    return text.strip()[:limit] or "unspecified"


def bounces_token(address: object) -> str | None:
    """The token of a `bounces+TOKEN@` envelope sender (any domain: verified later)."""
    if not isinstance(address, str):
        return None
    local = address.strip().strip("<>").rpartition("@")[0].lower()
    word, plus, token = local.partition("+")
    return token if plus and word == "bounces" and token else None


def delivery_named(session: Session, secret: str, refs: tuple[str, ...]) -> int | None:
    """The one delivery the genuine references among `refs` name; None when none is
    genuine, or when genuine ones name different deliveries."""
    nonce_of = nonces_in(session, Delivery)
    named = {ident for ref in refs
             if (ident := verify_reference(secret, Purpose.BOUNCE, ref, nonce_of)) is not None}
    return named.pop() if len(named) == 1 else None


def first_sighting(session: Session, provider: str, event_id: str, *,
                   webhooks: WebhooksSettings, now: datetime) -> bool:
    """Record `event_id` as seen; False when it had been seen before (a replay)."""
    session.execute(delete(SeenEvent).where(
        SeenEvent.seen_at < now - timedelta(seconds=2 * webhooks.max_age_seconds)))
    if session.get(SeenEvent, (provider, event_id)) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(SeenEvent(provider=provider, event_id=event_id, seen_at=now))
    except IntegrityError:  # the same event, acted on by a concurrent call just now
        return False
    return True


def act_on_events(session: Session, settings: Settings, events: list[ProviderEvent], *,
                  now: datetime) -> list[str]:
    """Act on each event not seen before; what each did, in safe words. Raises
    WebhookRefused when every event of the call had been seen (a replay). Does not commit."""
    done: list[str] = []
    replays = 0
    for event in events:
        if len(event.event_id) > 255 or not first_sighting(
                session, event.provider, event.event_id, webhooks=settings.webhooks, now=now):
            replays += 1
            continue
        delivery_id = delivery_named(session, settings.web.secret_key, event.refs)
        if event.kind == Kind.COMPLAINT:
            done.append(record_complaint(session, delivery_id, source=event.provider,
                                         detail=event.detail, now=now,
                                         event_id=event.event_id).action)
        else:
            classification = Classification(Kind.BOUNCE, severity=event.severity,
                                            reason=f"{event.provider}: {event.detail}",
                                            status=event.status)
            done.append(record_bounce(session, settings.inbound, classification, delivery_id,
                                      source=event.provider, event_id=event.event_id,
                                      now=now).action)
    if events and replays == len(events):
        raise WebhookRefused("these events were received before")
    return done
