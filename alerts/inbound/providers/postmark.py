"""Postmark's bounce and spam complaint webhooks, authenticated by HTTP basic auth
(`webhooks.postmark_username` / `webhooks.postmark_password`, compared in constant time).

Basic auth says nothing of when a call was made, so a record is fresh when its own time
(`BouncedAt`) is within `webhooks.max_age_seconds`; its `RecordType` and `ID` make the id
that refuses a replay. The delivery is the one the `alerts-ref` metadata names (sent as
`X-PM-Metadata-alerts-ref`). Hard: HardBounce, BadEmailAddress; soft: SoftBounce,
Transient, DnsError; a SpamComplaint is a complaint; other records are not acted on.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from datetime import datetime
from typing import Any

from alerts.core.config import WebhooksSettings
from alerts.inbound.classify import Kind, Severity
from alerts.inbound.providers.events import (
    REF_METADATA,
    ProviderEvent,
    WebhookRefused,
    WebhookUnsigned,
    json_body,
    parse_time,
    require_fresh,
    safe_word,
)

PROVIDER = "postmark"
_HARD = frozenset({"HardBounce", "BadEmailAddress"})
_SOFT = frozenset({"SoftBounce", "Transient", "DnsError"})


def check_credentials(authorization: str | None, webhooks: WebhooksSettings) -> None:
    """Refuse a call without the configured basic-auth credentials."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise WebhookUnsigned("the call has no credentials")
    try:
        username, colon, password = base64.b64decode(encoded, validate=True).partition(b":")
    except binascii.Error:
        raise WebhookUnsigned("the call's credentials cannot be read") from None
    # Both compared, whatever the first gives, so the time says nothing of either.
    name_ok = hmac.compare_digest(username, webhooks.postmark_username.encode())
    password_ok = hmac.compare_digest(password, webhooks.postmark_password.encode())
    if not (colon and name_ok and password_ok):
        raise WebhookRefused("wrong credentials")


def read_events(body: bytes, authorization: str | None, webhooks: WebhooksSettings, *,
                now: datetime) -> list[ProviderEvent]:
    """Check a call's credentials and return the bounce or complaint it reports."""
    check_credentials(authorization, webhooks)
    record = json_body(body)
    if not isinstance(record, dict):
        raise WebhookRefused("not a Postmark record")
    record_type, bounce_type = record.get("RecordType"), record.get("Type")
    if record_type == "SpamComplaint" or bounce_type == "SpamComplaint":
        kind, severity = Kind.COMPLAINT, None
    elif record_type == "Bounce" and bounce_type in _HARD | _SOFT:
        kind, severity = Kind.BOUNCE, Severity.HARD if bounce_type in _HARD else Severity.SOFT
    else:
        return []
    require_fresh(parse_time(record.get("BouncedAt")), webhooks, now)
    event_id = f"{safe_word(record_type)}:{safe_word(record.get('ID'), 64)}"
    word = "complaint" if kind == Kind.COMPLAINT else "bounce"
    return [ProviderEvent(PROVIDER, event_id, kind, _ref(record),
                          f"{word} {safe_word(bounce_type)}", severity)]


def _ref(record: dict[str, Any]) -> tuple[str, ...]:
    metadata = record.get("Metadata")
    if not isinstance(metadata, dict):
        return ()
    return tuple(value for key, value in metadata.items()
                 if str(key).lower() == REF_METADATA and isinstance(value, str))
