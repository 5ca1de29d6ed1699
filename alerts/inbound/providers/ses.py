"""Amazon SES bounce and complaint notifications, delivered by Amazon SNS over HTTP(S).

A call is believed when its SNS signature verifies (SignatureVersion 1: SHA1withRSA, 2:
SHA256withRSA) with the certificate at its SigningCertURL, which must be an https address
on an `sns.<region>.amazonaws.com` host (fetched over verified TLS; any other host is
refused), when its topic is one of `webhooks.ses_topic_arns`, and when its Timestamp is
fresh. A SubscriptionConfirmation is answered by GETting its SubscribeURL (same host rule).

For tests, `webhooks.sns_trust_root` names a CA file: the certificate must then be that CA
or issued by it, and only then are the hosts of `webhooks.sns_local_hosts` also allowed
(over http too), so a test can serve its certificate on loopback while the host rule
stays whole wherever no trust root is configured.

The SES notification ("include original headers" on) carries the message's headers and
tags: the delivery is the one its `X-Alerts-Ref` header or `alerts_ref` tag names, or the
`bounces+` token of its envelope sender (`mail.source`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from alerts.core.config import WebhooksSettings
from alerts.inbound.classify import Kind, Severity
from alerts.inbound.providers.events import (
    REF_HEADER,
    REF_NAME,
    ProviderEvent,
    WebhookRefused,
    WebhookUnsigned,
    bounces_token,
    json_body,
    parse_time,
    require_fresh,
    safe_word,
)

PROVIDER = "ses"
SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
_SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                 "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                "TopicArn", "Type"),
}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
_MAX_FETCH = 64 * 1024
# Certificates fetched from SNS hosts, by address (they are few and long-lived).
_certificates: dict[str, x509.Certificate] = {}


@dataclass(frozen=True)
class SnsMessage:
    """A verified SNS call."""

    type: str
    message_id: str
    topic_arn: str
    message: str
    subscribe_url: str | None


def allowed_url(url: str, webhooks: WebhooksSettings) -> bool:
    """Whether the product may fetch `url` for SNS: https on an SNS host, or (with a trust
    root configured) a host of `sns_local_hosts`."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return False
    if parts.username or parts.password:
        return False
    if parts.scheme == "https" and SNS_HOST.match(host):
        return True
    return bool(webhooks.sns_trust_root) and parts.scheme in ("http", "https") \
        and host in {h.lower() for h in webhooks.sns_local_hosts}


def _get(url: str) -> bytes:
    try:
        response = httpx.get(url, timeout=10.0, follow_redirects=False)
    except httpx.HTTPError:
        raise WebhookRefused("the SNS address could not be fetched") from None
    if response.status_code != 200 or len(response.content) > _MAX_FETCH:
        raise WebhookRefused(f"the SNS address answered {response.status_code}")
    return response.content


def _trust_roots(webhooks: WebhooksSettings) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(Path(webhooks.sns_trust_root).read_bytes())


def _trusted(certificate: x509.Certificate, webhooks: WebhooksSettings, now: datetime) -> bool:
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        return False
    if not webhooks.sns_trust_root:
        return True  # it came over verified TLS from an SNS host
    for root in _trust_roots(webhooks):
        if root == certificate:
            return True
        try:
            certificate.verify_directly_issued_by(root)
            return True
        except (ValueError, TypeError, InvalidSignature):
            continue
    return False


def signing_certificate(url: str, webhooks: WebhooksSettings,
                        now: datetime) -> x509.Certificate:
    """The certificate at SigningCertURL, when its address and issuer are believed."""
    if not allowed_url(url, webhooks):
        raise WebhookRefused("the signing certificate is not on an SNS host")
    certificate = _certificates.get(url) if not webhooks.sns_trust_root else None
    if certificate is None:
        try:
            certificate = x509.load_pem_x509_certificate(_get(url))
        except ValueError:
            raise WebhookRefused("the signing certificate cannot be read") from None
        if not webhooks.sns_trust_root:
            _certificates[url] = certificate
    if not _trusted(certificate, webhooks, now):
        raise WebhookRefused("the signing certificate is not trusted")
    return certificate


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise WebhookRefused(f"the SNS message has no {key}")
    return value


def string_to_sign(data: dict[str, Any]) -> bytes:
    """The canonical text SNS signs: the type's fields in order, `Name\\nvalue\\n` each,
    those absent (a Notification's Subject) left out."""
    fields = _SIGNED_FIELDS.get(str(data.get("Type")))
    if fields is None:
        raise WebhookRefused("not an SNS message type this service takes")
    return "".join(f"{key}\n{data[key]}\n" for key in fields
                   if isinstance(data.get(key), str)).encode()


def read_sns(body: bytes, webhooks: WebhooksSettings, *, now: datetime) -> SnsMessage:
    """Verify an SNS call and return it; raises WebhookUnsigned or WebhookRefused."""
    data = json_body(body)
    if not isinstance(data, dict):
        raise WebhookRefused("not an SNS message")
    if not data.get("Signature") or not data.get("SigningCertURL"):
        raise WebhookUnsigned("the SNS message is not signed")
    if _text(data, "TopicArn") not in webhooks.ses_topic_arns:
        raise WebhookRefused("not a topic this service takes")
    algorithm = _HASHES.get(str(data.get("SignatureVersion")))
    if algorithm is None:
        raise WebhookRefused("an SNS signature version this service does not know")
    require_fresh(parse_time(data.get("Timestamp")), webhooks, now)
    signed = string_to_sign(data)
    key = signing_certificate(_text(data, "SigningCertURL"), webhooks, now).public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise WebhookRefused("the signing certificate is not an RSA certificate")
    try:
        signature = base64.b64decode(_text(data, "Signature"), validate=True)
        key.verify(signature, signed, padding.PKCS1v15(), algorithm())
    except (binascii.Error, InvalidSignature):
        raise WebhookRefused("the SNS signature does not verify") from None
    return SnsMessage(data["Type"], _text(data, "MessageId"), data["TopicArn"],
                      _text(data, "Message"), data.get("SubscribeURL"))


def confirm_subscription(message: SnsMessage, webhooks: WebhooksSettings) -> None:
    """Confirm a verified SubscriptionConfirmation by GETting its SubscribeURL."""
    url = message.subscribe_url or ""
    if not allowed_url(url, webhooks):
        raise WebhookRefused("the SubscribeURL is not on an SNS host")
    _get(url)


def _refs(mail: dict[str, Any]) -> tuple[str, ...]:
    refs: list[str] = []
    headers = mail.get("headers")
    for header in headers if isinstance(headers, list) else ():
        if isinstance(header, dict) and str(header.get("name", "")).lower() == \
                REF_HEADER.lower() and isinstance(header.get("value"), str):
            refs.append(header["value"])
    tags = mail.get("tags")
    if isinstance(tags, dict) and isinstance(tags.get(REF_NAME), list):
        refs.extend(value for value in tags[REF_NAME] if isinstance(value, str))
    token = bounces_token(mail.get("source"))
    if token is not None:
        refs.append(token)
    return tuple(refs)


def ses_events(message: SnsMessage) -> list[ProviderEvent]:
    """The bounce or complaint a verified SES notification reports (none for others)."""
    try:
        notification = json.loads(message.message)
    except ValueError:
        return []
    if not isinstance(notification, dict):
        return []
    kind = notification.get("notificationType") or notification.get("eventType")
    mail = notification.get("mail")
    refs = _refs(mail) if isinstance(mail, dict) else ()
    if kind == "Bounce" and isinstance(notification.get("bounce"), dict):
        bounce = notification["bounce"]
        recipients = bounce.get("bouncedRecipients")
        first = recipients[0] if isinstance(recipients, list) and recipients and \
            isinstance(recipients[0], dict) else {}
        status = safe_word(first.get("status"), 10) if first.get("status") else None
        bounce_type = safe_word(bounce.get("bounceType"))
        return [ProviderEvent(
            PROVIDER, message.message_id, Kind.BOUNCE, refs,
            f"bounce {bounce_type}/{safe_word(bounce.get('bounceSubType'))}",
            Severity.HARD if bounce_type == "Permanent" else Severity.SOFT, status)]
    if kind == "Complaint" and isinstance(notification.get("complaint"), dict):
        complaint = notification["complaint"]
        return [ProviderEvent(
            PROVIDER, message.message_id, Kind.COMPLAINT, refs,
            f"complaint {safe_word(complaint.get('complaintFeedbackType'))}")]
    return []
