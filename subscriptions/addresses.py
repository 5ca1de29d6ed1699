"""Email addresses: checked with email-validator and stored in one normal form."""

from __future__ import annotations

import unicodedata

from subscriptions.errors import AlertsError


class AddressError(AlertsError, ValueError):
    """Not a usable email address; the message says why."""

    http_status = 400


def normalise_address(raw: str) -> str:
    """Return the address as stored (lower-cased), or raise AddressError.

    Lower-casing the local part too is what residents expect: "Jo@X.org" and
    "jo@x.org" are one person, who must not get every digest twice. Compatibility forms
    are folded first (NFKC: a full-width p, U+FF50, is a "p"), so every way of typing one address
    gives one stored form; whatever looks an address up or keys on it (the sign-in throttle
    too) calls this one function. Case is lowered, not Unicode-folded: folding would make
    "straße@" "strasse@", which may be someone else's mailbox.

    No DNS look-up: the product must work offline and on closed networks, and a
    bounce tells us more than an MX record does.
    """
    # email-validator compiles its grammar on import: a command that never reads an address
    # (`alerts wards list`) does not pay for it.
    from email_validator import EmailNotValidError, validate_email

    text = unicodedata.normalize("NFKC", raw).strip()
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
