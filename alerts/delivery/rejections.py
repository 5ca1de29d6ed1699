"""What an SMTP server's permanent rejection says about the address itself.

A hard bounce (the mailbox or domain does not exist or is disabled) puts the address on the
suppression list; other permanent refusals (a policy or spam block, a message too large)
fail that one delivery but say nothing against the address. Enhanced status codes
(RFC 3463) decide where the server gives them; otherwise the classic replies and wording.
"""

from __future__ import annotations

import re

_ENHANCED = re.compile(r"\b5\.(\d{1,3})\.(\d{1,3})\b")
_NO_SUCH_USER = re.compile(
    r"user unknown|unknown user|no such (user|mailbox|recipient)|does not exist|"
    r"recipient (address )?rejected|mailbox unavailable|invalid (recipient|mailbox)|"
    r"address rejected|not found",
    re.IGNORECASE,
)
# Wording that names the address itself as bad whatever status code the server chose: many
# servers answer a missing mailbox with 5.7.1 or 554 (seen in the real bounces under
# tests/inbound/corpus). Only unambiguous phrases: "recipient address rejected" alone is
# also how Postfix words a policy refusal, so it stays with the code.
_ADDRESS_IS_BAD = re.compile(
    r"user unknown|unknown user|no such (user|mailbox|recipient)|"
    r"non-?existent (user|mailbox|recipient|account)|addressee unknown|address unknown|"
    r"no mailbox here by that name|(doesn't|does not) have an? [\w.-]+ account|"
    r"mailbox (does not|doesn't) exist|(user|recipient|account) (does not|doesn't) exist|"
    r"recipientnotfound",
    re.IGNORECASE,
)

# 5.1.x: addressing (bad mailbox, bad domain, moved, no MX); 5.2.1: mailbox disabled;
# 5.4.4: no route to the domain at all.
_HARD_ENHANCED = {("1", None), ("2", "1"), ("4", "4")}


def is_hard_bounce(code: int | None, text: str) -> bool:
    if _ADDRESS_IS_BAD.search(text) is not None:
        return True
    enhanced = _ENHANCED.search(text)
    if enhanced is not None:
        subject, detail = enhanced.groups()
        return (subject, None) in _HARD_ENHANCED or (subject, detail) in _HARD_ENHANCED
    return code in (550, 551, 553, 554) and _NO_SUCH_USER.search(text) is not None
