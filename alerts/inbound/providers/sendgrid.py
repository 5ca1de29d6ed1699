"""SendGrid's Event Webhook, signed: an ECDSA P-256 (SHA-256) signature over the timestamp
followed by the raw body, in `X-Twilio-Email-Event-Webhook-Signature` (base64 DER), the
timestamp in `X-Twilio-Email-Event-Webhook-Timestamp`, checked with the verification key
`webhooks.sendgrid_public_key` (base64 DER, as SendGrid shows it).

A call is a list of events. A `bounce` (its `type` "blocked" is soft, otherwise hard) and a
`spamreport` are acted on; the delivery is the one the `alerts_ref` unique argument names
(sent in `X-SMTPAPI` and echoed by SendGrid as a field of the event).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from alerts.core.config import WebhooksSettings
from alerts.inbound.classify import Kind, Severity
from alerts.inbound.providers.events import (
    REF_NAME,
    ProviderEvent,
    WebhookRefused,
    WebhookUnsigned,
    json_body,
    require_fresh_epoch,
    safe_word,
)

PROVIDER = "sendgrid"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


def verification_key(webhooks: WebhooksSettings) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_der_public_key(
            base64.b64decode(webhooks.sendgrid_public_key, validate=True))
    except (binascii.Error, ValueError):
        raise WebhookRefused("webhooks.sendgrid_public_key is not a key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise WebhookRefused("webhooks.sendgrid_public_key is not an ECDSA key")
    return key


def read_events(body: bytes, signature: str | None, timestamp: str | None,
                webhooks: WebhooksSettings, *, now: datetime) -> list[ProviderEvent]:
    """Verify a call and return its bounces and complaints."""
    if not signature or not timestamp:
        raise WebhookUnsigned("the call is not signed")
    require_fresh_epoch(timestamp, webhooks, now)
    try:
        verification_key(webhooks).verify(base64.b64decode(signature, validate=True),
                                          timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, InvalidSignature):
        raise WebhookRefused("the signature does not verify") from None
    data = json_body(body)
    if not isinstance(data, list):
        raise WebhookRefused("not a list of events")
    return [event for item in data if isinstance(item, dict)
            if (event := _event(item)) is not None]


def _ref(item: dict[str, Any]) -> tuple[str, ...]:
    args = item.get("unique_args")
    value = item.get(REF_NAME) or (args.get(REF_NAME) if isinstance(args, dict) else None)
    return (value,) if isinstance(value, str) else ()


def _event(item: dict[str, Any]) -> ProviderEvent | None:
    name = item.get("event")
    event_id = item.get("sg_event_id")
    if not isinstance(event_id, str) or not event_id:
        event_id = hashlib.sha256(json.dumps(item, sort_keys=True).encode()).hexdigest()
    if name == "bounce":
        kind = safe_word(item.get("type") or "bounce")
        status = safe_word(item["status"], 10) if item.get("status") else None
        return ProviderEvent(PROVIDER, event_id, Kind.BOUNCE, _ref(item), f"bounce {kind}",
                             Severity.SOFT if kind == "blocked" else Severity.HARD, status)
    if name == "spamreport":
        return ProviderEvent(PROVIDER, event_id, Kind.COMPLAINT, _ref(item), "spamreport")
    return None
