"""Mailgun's webhooks: a JSON body whose `signature` object holds a timestamp, a token and
the HMAC-SHA256 (hex) of timestamp + token keyed by `webhooks.mailgun_signing_key`.

The token is the id that refuses a replay. A `failed` event (severity permanent: hard,
temporary: soft) and a `complained` event are acted on; the delivery is the one the
`alerts_ref` user variable names (sent in `X-Mailgun-Variables`), or the `bounces+` token
of the envelope sender.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any

from alerts.core.config import WebhooksSettings
from alerts.inbound.classify import Kind, Severity
from alerts.inbound.providers.events import (
    REF_NAME,
    ProviderEvent,
    WebhookRefused,
    WebhookUnsigned,
    bounces_token,
    json_body,
    require_fresh_epoch,
    safe_word,
)

PROVIDER = "mailgun"


def _signature(data: dict[str, Any]) -> tuple[str, str, str]:
    signature = data.get("signature")
    if not isinstance(signature, dict):
        raise WebhookUnsigned("the call is not signed")
    fields = tuple(signature.get(key) for key in ("timestamp", "token", "signature"))
    if not all(isinstance(value, str) and value for value in fields):
        raise WebhookUnsigned("the call is not signed")
    return fields  # type: ignore[return-value]


def read_events(body: bytes, webhooks: WebhooksSettings, *,
                now: datetime) -> list[ProviderEvent]:
    """Verify a call and return the bounce or complaint it reports."""
    data = json_body(body)
    if not isinstance(data, dict):
        raise WebhookRefused("not a Mailgun event")
    timestamp, token, signature = _signature(data)
    expected = hmac.new(webhooks.mailgun_signing_key.encode(), (timestamp + token).encode(),
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise WebhookRefused("the signature does not verify")
    require_fresh_epoch(timestamp, webhooks, now)
    event = data.get("event-data")
    if not isinstance(event, dict):
        return []
    refs = _refs(event)
    if event.get("event") == "failed":
        severity = safe_word(event.get("severity"))
        status = event.get("delivery-status")
        code = safe_word(status.get("code"), 10) if isinstance(status, dict) else "unspecified"
        return [ProviderEvent(PROVIDER, token, Kind.BOUNCE, refs,
                              f"failed {severity} {code}",
                              Severity.HARD if severity == "permanent" else Severity.SOFT)]
    if event.get("event") == "complained":
        return [ProviderEvent(PROVIDER, token, Kind.COMPLAINT, refs, "complained")]
    return []


def _refs(event: dict[str, Any]) -> tuple[str, ...]:
    refs: list[str] = []
    variables = event.get("user-variables")
    if isinstance(variables, dict) and isinstance(variables.get(REF_NAME), str):
        refs.append(variables[REF_NAME])
    envelope = event.get("envelope")
    token = bounces_token(envelope.get("sender")) if isinstance(envelope, dict) else None
    if token is not None:
        refs.append(token)
    return tuple(refs)
