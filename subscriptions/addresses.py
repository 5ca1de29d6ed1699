"""Email addresses: checked with email-validator and stored in one normal form."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email


class AddressError(ValueError):
    """Not a usable email address; the message says why."""


def normalise_address(raw: str) -> str:
    """Return the address as stored (lower-cased), or raise AddressError.

    Lower-casing the local part too is what residents expect: "Jo@X.org" and
    "jo@x.org" are one person, who must not get every digest twice.

    No DNS look-up: the product must work offline and on closed networks, and a
    bounce tells us more than an MX record does.
    """
    text = raw.strip()
    if not text:
        raise AddressError("is empty")
    if any(ch in text for ch in "\r\n"):
        raise AddressError("contains a line break")
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        reason = str(exc).rstrip(".")
        raise AddressError(f"{text!r} is not a valid address ({reason})") from None
    return checked.normalized.lower()
