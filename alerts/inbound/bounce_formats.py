"""Where mail systems put the failed address and the reason in bounces flufl.bounce cannot read.

`alerts.inbound.classify` reads RFC 3464 reports and whatever Mailman's detectors know; this
module holds what is left, as tables of (family, pattern) over a bounce's own words (its notice,
cut before the returned message), never per-family code:

- `RECIPIENT_LAYOUTS`: how each family names the failed address in its notice (RFC 3464 fields
  pasted into the text by Amazon WorkMail, Sendmail's `>>>` lines and V5 transcripts, qmail's and
  Yahoo's `<address>:` lines, Exchange 2003, DragonFly, KDDI, m-FILTER, Lotus Notes, Verizon,
  Apache James, Zoho and the unnamed layouts Sisimai calls X1 and X6).
- `BOUNCE_LAYOUTS`: notices that are bounces by their shape alone, even under a "Re:" subject
  from an ordinary-looking sender (Apache James and Verizon do both).
- `REMOTE_REPLIES`: a diagnostic that wraps the remote server's reply in the relay's own words
  (Amazon SES: "5.1.0 - Unknown address error 550-'5.2.2 ... Mailbox Full'"); the inner reply
  is what the severity is judged on.
- `said_by_words`: the severity the wording gives whatever the status code: a full mailbox or
  a message too big is soft (even under 5.1.1, as some relays write it), a refused *sender*
  address (5.1.7, 5.1.8) is soft, and "user unknown", "no such user", "invalid address",
  "mailbox unavailable", "account disabled", "host unknown" and their kin are hard.

Plain functions over text; the addresses found are returned to the caller, never logged.
"""

from __future__ import annotations

import re
from enum import Enum

_ADDRESS = r"[^\s<>@\"',;:()\[\]]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
_FLAGS = re.IGNORECASE | re.MULTILINE


def _layout(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern.replace("ADDRESS", f"(?P<address>{_ADDRESS})"), _FLAGS)


RECIPIENT_LAYOUTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("RFC 3464 fields in the text (Amazon WorkMail)",
     _layout(r"^\s*(?:final|original)-recipient:\s*rfc822;\s*<?ADDRESS")),
    ("Sendmail, ActiveHunter", _layout(r"^\s*>>>\s*\S+@\S+\s+<ADDRESS>")),
    ("Sendmail V5", _layout(r"^\d{3}[ -]<ADDRESS>\.\.\.\s")),
    ("qmail, Yahoo, EZweb", _layout(r"^\s*<ADDRESS>:?\s*$")),
    ("DragonFly", _layout(r"error delivering your mail to <ADDRESS>")),
    ("Exchange 2003", _layout(r"^\s+ADDRESS on \d")),
    ("KDDI", _layout(r"could not be delivered to:\s*<ADDRESS>")),
    # m-FILTER: "sending to the following address failed." (Japanese), then the address
    ("m-FILTER", _layout("\u9001\u4fe1\u306b\u5931\u6557\u3057\u307e\u3057\u305f\u3002"
                         r"\s*ADDRESS")),
    ("Lotus Notes", _layout(r"failure reasons\s*-+\s*\n[^\n]*\n\s*ADDRESS")),
    ("Verizon", _layout(r"could not be delivered to mobile\.[\s\S]*?^to:\s*ADDRESS")),
    ("Apache James, Verizon, EZweb", _layout(r"^\s*(?:>>>\s*)?RCPT TO:\s*<?ADDRESS")),
    ("X1", _layout(r"^ADDRESS \[[^\]\n]+\]\s*$")),
    ("X6", _layout(r"returned permanent errors: ADDRESS")),
    ("X6", _layout(r"rejected recipient <ADDRESS>")),
    ("Zoho", _layout(r"\baddress: <ADDRESS>")),
    # Last resort: Sendmail V5 names no address when it defers; the returned copy's To does.
    ("Sendmail V5", _layout(r"-+ unsent message follows -+\s*\n[\s\S]*?^to:\s*ADDRESS")),
)

BOUNCE_LAYOUTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Apache James, Verizon", re.compile(r"^error message below:\s*$[\s\S]*^message details:",
                                         _FLAGS)),
    ("Verizon", re.compile(r"message could not be delivered to mobile", _FLAGS)),
    ("KDDI", re.compile(r"could not be delivered to:\s*<", _FLAGS)),
    ("X6", re.compile(r"we had trouble delivering your message", _FLAGS)),
    ("DragonFly", re.compile(r"there was an error delivering your mail to <", _FLAGS)),
    ("m-FILTER", re.compile("m-FILTER\u300d\u304c\u81ea\u52d5\u7684\u306b\u751f\u6210")),
)

REMOTE_REPLIES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Amazon SES", re.compile(r"\d\.\d{1,3}\.\d{1,3} - [\w ]+ (?P<code>[245]\d\d)-'(?P<reply>.*)'",
                              re.IGNORECASE | re.DOTALL)),
)


class Said(Enum):
    """What the words alone say about the address."""

    BAD = "bad"  # the address itself: hard
    NOT_THE_ADDRESS = "not the address"  # full mailbox, size, the sender: soft


_NOT_THE_ADDRESS = re.compile(
    r"mailbox (is )?full|mailbox (size |quota )?exceeded|exceeded the local limit|"
    r"over ?(disk )?quota|quota (exceeded|violation)|insufficient (disk )?(space|storage)|"
    r"(mail|message) size limit|size limit exceeded|\b5\.1\.[78]\b|sender address rejected",
    re.IGNORECASE,
)
_ADDRESS_IS_GONE = re.compile(
    r"user unknown|unknown user|no such (user|mailbox|recipient|account|domain)|"
    r"invalid (recipient|address|user|mailbox|final delivery userid)|mailbox unavailable|"
    r"unknown recipient|recipient not found|user not found|no valid recipients|"
    r"account (is |has been )?(disabled|discontinued|suspended|deactivated|closed)|"
    r"host unknown|unknown host|host [\w.-]+ not found|domain (does not|doesn't) exist|"
    r"domain is not reachable\. please check the domain|"
    r"not listed in (public name & address book|domino directory)|"
    r"(doesn't|does not) have an? [\w.-]+ account|(mailbox|user) (does not|doesn't) exist",
    re.IGNORECASE,
)


def said_by_words(text: str) -> Said | None:
    """What `text` (a diagnostic or a stretch of a notice) says whatever its status code:
    a full mailbox, a size limit or a refused sender first, then a gone address, else None."""
    flat = " ".join(text.split())
    if _NOT_THE_ADDRESS.search(flat):
        return Said.NOT_THE_ADDRESS
    if _ADDRESS_IS_GONE.search(flat):
        return Said.BAD
    return None


def failed_addresses(notice: str) -> list[str]:
    """The failed addresses a bounce's own words name, by the first layout that finds any."""
    for _family, pattern in RECIPIENT_LAYOUTS:
        found = [match.group("address").lower().rstrip(".") for match in pattern.finditer(notice)]
        if found:
            return list(dict.fromkeys(found))
    return []


def is_bounce_layout(notice: str) -> bool:
    """Whether `notice` has the shape of a family's non-delivery notice."""
    return any(pattern.search(notice) for _family, pattern in BOUNCE_LAYOUTS)


def remote_reply(diagnostic: str) -> str:
    """The remote server's own reply inside a relay's diagnostic, or the diagnostic itself."""
    for _family, pattern in REMOTE_REPLIES:
        found = pattern.search(diagnostic)
        if found:
            return f"{found.group('code')} {found.group('reply')}"
    return diagnostic
