"""The signed address scheme: the addresses the product hands out at its reply domain
(`mail.reply_domain`), built from a token and read back from a recipient. The one module that
reads the reply domain and knows the shapes of the local parts.

- `reply+TOKEN@`: the Reply-To of each email; TOKEN names the delivery a reply answers.
- `bounces+TOKEN@`: the envelope sender of each email; TOKEN names the delivery that bounced.
- `unsubscribe+TOKEN@`: the mailto of List-Unsubscribe; TOKEN names the subscription.
- `bounces@`: the envelope sender of staff mail, whose bounces match no one.
- `CODE.` + the domain: a ward's List-Id (an identifier in address form, not a mailbox).
- `<alerts.MESSAGE.TOKEN@from-domain>`: each copy's Message-ID, carrying the reply TOKEN too,
  so that a report quoting only the original's Message-ID still names its delivery.

TOKENs are signed references (`subscriptions.links`, `ID-TAG` in lower-case base32) made and
verified by the callers; here they are only placed and read back. The domain is compared
without case; a local part is read as mail systems may fold its case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from alerts.core.config import MailSettings
from subscriptions.links import Purpose


class AddressKind(StrEnum):
    """What a signed address is for: the word before its `+`."""

    REPLY = "reply"
    BOUNCES = "bounces"
    UNSUBSCRIBE = "unsubscribe"

    @property
    def purpose(self) -> Purpose:
        """What the token of such an address is signed for, and so what it names."""
        return _PURPOSES[self]


@dataclass(frozen=True)
class SignedAddress:
    """A signed address read back: its kind and its token (lower-cased), not yet verified."""

    kind: AddressKind
    token: str


_PURPOSES = {AddressKind.REPLY: Purpose.REPLY, AddressKind.BOUNCES: Purpose.BOUNCE,
             AddressKind.UNSUBSCRIBE: Purpose.UNSUBSCRIBE}
_CLAIMED = re.compile(r"^(reply|bounces|unsubscribe)\+([^@]+)$")
# The shape of a signed reference as it travels: DIGITS-base32 (padding tolerated).
_TOKEN_SHAPE = re.compile(r"^\d+-[a-z2-7]+=*$")
_STAFF_BOUNCES = "bounces"


def _at(mail: MailSettings, local: str) -> str:
    return f"{local}@{mail.reply_domain}"


def envelope_domain(mail: MailSettings) -> str:
    """The domain of every signed address and envelope sender: where SPF and the MX apply."""
    return mail.reply_domain.strip().rstrip(".").lower()


def signed_address(mail: MailSettings, kind: AddressKind, token: str) -> str:
    """`KIND+TOKEN@` the reply domain."""
    return _at(mail, f"{kind.value}+{token}")


def reply_address(mail: MailSettings, token: str) -> str:
    """The Reply-To of an email: `reply+TOKEN@`."""
    return signed_address(mail, AddressKind.REPLY, token)


def bounce_address(mail: MailSettings, token: str) -> str:
    """The envelope sender of an email: `bounces+TOKEN@`."""
    return signed_address(mail, AddressKind.BOUNCES, token)


def unsubscribe_address(mail: MailSettings, token: str) -> str:
    """The mailto of List-Unsubscribe: `unsubscribe+TOKEN@`."""
    return signed_address(mail, AddressKind.UNSUBSCRIBE, token)


def staff_bounce_address(mail: MailSettings) -> str:
    """The envelope sender of staff mail: the bare `bounces@`, which names no one."""
    return _at(mail, _STAFF_BOUNCES)


def ward_list_id(mail: MailSettings, ward_code: str) -> str:
    """A ward's List-Id identifier (RFC 2919): its code, lower-cased, under the domain."""
    return f"{ward_code.lower()}.{mail.reply_domain}"


def at_our_domain(mail: MailSettings, address: str) -> bool:
    """Whether `address` is at the reply domain, in any case: mail from there is our own."""
    return address.strip().rpartition("@")[2].lower() == mail.reply_domain.lower()


def claimed_kind(mail: MailSettings, address: str) -> AddressKind | None:
    """The kind of signed address `address` claims to be (`KIND+anything@` the reply domain),
    whatever its token: mail to it is the product's to read, and to hold when the token is
    not genuine. None for any other address."""
    local, _, _domain = address.strip().lower().rpartition("@")
    match = _CLAIMED.match(local)
    if match is None or not at_our_domain(mail, address):
        return None
    return AddressKind(match[1])


def parse_address(mail: MailSettings, address: str) -> SignedAddress | None:
    """`address` read back as a signed address: its kind and token, when it is at the reply
    domain and its token is shaped like a signed reference; None otherwise."""
    kind = claimed_kind(mail, address)
    if kind is None:
        return None
    token = address.strip().lower().rpartition("@")[0].partition("+")[2]
    return SignedAddress(kind, token) if _TOKEN_SHAPE.match(token) else None


def issued_address(mail: MailSettings, address: str) -> bool:
    """Whether the product hands this address out: a signed address at the reply domain
    (`claimed_kind`), or the From address. Mail to any other address is not ours."""
    address = address.strip().lower()
    return address == mail.from_address.lower() or claimed_kind(mail, address) is not None


def copy_message_id(mail: MailSettings, message_id: int, reply_token: str) -> str:
    """The Message-ID of one copy: stable per delivery, so a resend after a crash is
    recognisably the same email."""
    return f"<alerts.{message_id}.{reply_token}@{mail.from_address.rpartition('@')[2]}>"


def reply_token_in(message_id: str) -> str | None:
    """The reply token a Message-ID written by `copy_message_id` carries, not yet verified."""
    found = _COPY_MESSAGE_ID.search(message_id.lower())
    return None if found is None else found.group(1)


_COPY_MESSAGE_ID = re.compile(r"<alerts\.\d+\.(\d+-[a-z2-7]+=*)@")
