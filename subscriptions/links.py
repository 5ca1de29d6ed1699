"""Signed references: the tokens in Reply-To, envelope senders and email links.

A token names one record (a delivery, a subscription) and carries an HMAC-SHA256 tag
keyed by `web.secret_key` and bound to a purpose, so a reply token cannot be replayed as
an unsubscribe token. Tokens are lower-case base32 so that they survive mail systems that
fold the case of local parts, and short enough for a 64-character local part.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from enum import StrEnum

_TAG_BYTES = 12
_TOKEN = re.compile(r"^([0-9]{1,18})-([a-z2-7]{20})$")


class Purpose(StrEnum):
    REPLY = "reply"
    BOUNCE = "bounce"
    UNSUBSCRIBE = "unsubscribe"
    PREFERENCES = "preferences"


def _tag(secret: str, purpose: Purpose, ident: int) -> str:
    mac = hmac.new(secret.encode(), f"{purpose.value}:{ident}".encode(), hashlib.sha256)
    return base64.b32encode(mac.digest()[:_TAG_BYTES]).decode().rstrip("=").lower()


def sign_reference(secret: str, purpose: Purpose, ident: int) -> str:
    """Return `ID-TAG` for the record `ident`."""
    if ident < 0:
        raise ValueError("references are to stored records with positive ids")
    return f"{ident}-{_tag(secret, purpose, ident)}"


def verify_reference(secret: str, purpose: Purpose, token: str) -> int | None:
    """Return the id a genuine token names, or None for a forged, altered or foreign one."""
    match = _TOKEN.match(token.strip().lower())
    if match is None:
        return None
    ident = int(match.group(1))
    if hmac.compare_digest(match.group(2), _tag(secret, purpose, ident)):
        return ident
    return None
