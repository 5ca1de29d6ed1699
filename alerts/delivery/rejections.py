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

# 5.1.x: addressing (bad mailbox, bad domain, moved, no MX); 5.2.1: mailbox disabled.
_HARD_ENHANCED = {("1", None), ("2", "1")}


def is_hard_bounce(code: int | None, text: str) -> bool:
    enhanced = _ENHANCED.search(text)
    if enhanced is not None:
        subject, detail = enhanced.groups()
        return (subject, None) in _HARD_ENHANCED or (subject, detail) in _HARD_ENHANCED
    return code in (550, 551, 553) and _NO_SUCH_USER.search(text) is not None
