"""Whether a resident's reply comes from the resident: the domain rule, pure functions.

A reply reaches the ward team under the resident's name because its `reply+TOKEN@` address
names the delivery, and the token is signed. Its From is not: anyone who has seen the
address can write to it as anyone. So the team is told "sender not verified" when either

- the receiving MTA checked the From domain's DMARC policy and the message failed it, read
  from the `Authentication-Results` header (RFC 8601) that MTA wrote: only one whose
  authserv-id is `inbound.trusted_authserv_id`, because a sender can write its own header
  saying "pass" under any other name, and the MTA removes forged ones under its own; or
- the From address is not the address of the subscriber the token names.

`dmarc=none` (the domain publishes no policy), `temperror`/`permerror` and no trusted result
at all do not mark a reply: most residents write from domains without a DMARC policy, and a
mark on most replies would teach the team to ignore it. Only a failed check is evidence.
"""

from __future__ import annotations

from email.message import EmailMessage

import authres  # type: ignore[import-untyped]

from alerts.inbound.mail import addresses

__all__ = ["dmarc_result", "sender_verified"]


def dmarc_result(message: EmailMessage, authserv_id: str) -> str | None:
    """The `dmarc=` result ("pass", "fail", "none"…) the MTA named `authserv_id` recorded,
    lower-cased; None when it recorded none or `authserv_id` is "" (trust no header).

    A message can carry several of its headers (one a hop); a "fail" in any of them wins.
    """
    trusted = authserv_id.strip().lower()
    if not trusted:
        return None
    found: list[str] = []
    for value in message.get_all("Authentication-Results", []) or []:
        text = " ".join(str(value).split())
        try:
            header = authres.AuthenticationResultsHeader.parse_value(text)
        except Exception:  # authres raises its own errors and plain ones alike
            continue  # unreadable: no verdict from it, whoever wrote it
        if str(header.authserv_id).lower() != trusted:
            continue
        found += [str(result.result).lower() for result in header.results
                  if str(result.method).lower() == "dmarc"]
    if "fail" in found:
        return "fail"
    return found[0] if found else None


def sender_verified(message: EmailMessage, *, subscriber_email: str, authserv_id: str) -> bool:
    """False when the trusted MTA says the From failed DMARC, or the From is not (only) the
    address of the subscriber the reply's token names; True otherwise."""
    if dmarc_result(message, authserv_id) == "fail":
        return False
    return addresses(message, "From") == [subscriber_email.strip().lower()]
