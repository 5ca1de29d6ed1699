"""The signed address scheme: what the product hands out at its reply domain, and how a
recipient is read back. Pure: no store, no server."""

from __future__ import annotations

import pytest

from alerts.core.config import MailSettings
from alerts.mail.addresses import (
    AddressKind,
    SignedAddress,
    at_our_domain,
    bounce_address,
    claimed_kind,
    copy_message_id,
    issued_address,
    parse_address,
    reply_address,
    reply_token_in,
    signed_address,
    staff_bounce_address,
    unsubscribe_address,
    ward_list_id,
)
from subscriptions.links import Purpose, sign_reference

OURS = MailSettings(from_address="alerts@example.org", reply_domain="reply.example.org")
TOKEN = sign_reference("secret", Purpose.REPLY, 1700000401, "nonce")


def test_each_address_is_its_kind_a_plus_and_the_token_at_the_reply_domain() -> None:
    assert reply_address(OURS, TOKEN) == f"reply+{TOKEN}@reply.example.org"
    assert bounce_address(OURS, TOKEN) == f"bounces+{TOKEN}@reply.example.org"
    assert unsubscribe_address(OURS, TOKEN) == f"unsubscribe+{TOKEN}@reply.example.org"


def test_staff_mail_bounces_to_the_bare_address_and_a_ward_lists_under_the_domain() -> None:
    assert staff_bounce_address(OURS) == "bounces@reply.example.org"
    assert ward_list_id(OURS, "RIV") == "riv.reply.example.org"


@pytest.mark.parametrize("kind", list(AddressKind))
def test_every_address_built_reads_back_as_its_kind_and_token(kind: AddressKind) -> None:
    address = signed_address(OURS, kind, TOKEN)
    assert parse_address(OURS, address) == SignedAddress(kind, TOKEN)
    assert claimed_kind(OURS, address) is kind
    assert issued_address(OURS, address)


def test_the_domain_and_the_local_part_are_read_without_case() -> None:
    shouted = f"REPLY+{TOKEN.upper()}@Reply.Example.ORG"
    assert parse_address(OURS, shouted) == SignedAddress(AddressKind.REPLY, TOKEN)
    assert parse_address(MailSettings(reply_domain="Reply.Example.Org"),
                         reply_address(OURS, TOKEN)) == SignedAddress(AddressKind.REPLY, TOKEN)
    assert at_our_domain(OURS, "someone@REPLY.example.org")


@pytest.mark.parametrize("address", [
    f"reply+{TOKEN}@elsewhere.example.net",
    f"reply+{TOKEN}@sub.reply.example.org",
    f"reply+{TOKEN}@example.org",
    f"reply+{TOKEN}",
])
def test_an_address_at_another_domain_is_not_ours(address: str) -> None:
    assert parse_address(OURS, address) is None
    assert claimed_kind(OURS, address) is None
    assert not issued_address(OURS, address)


@pytest.mark.parametrize("address", [
    "bounces@reply.example.org",  # the staff envelope: names no one
    "postmaster@reply.example.org",
    f"forward+{TOKEN}@reply.example.org",
    f"reply-{TOKEN}@reply.example.org",
    "reply+@reply.example.org",
    f"x.reply+{TOKEN}@reply.example.org",
])
def test_other_local_parts_are_no_signed_address(address: str) -> None:
    assert parse_address(OURS, address) is None
    assert claimed_kind(OURS, address) is None
    assert not issued_address(OURS, address)


@pytest.mark.parametrize("token", [
    "not-a-token", "1700000401", "1700000401-", "-mfrggzdfmztwq2lk", "1700000401-mfrg0189",
    "1700000401_mfrggzdfmztwq2lk", "1700000401-mfrg gzdf",
])
def test_a_malformed_token_is_not_read_back_but_the_address_still_claims_its_kind(
        token: str) -> None:
    address = f"unsubscribe+{token}@reply.example.org"
    assert parse_address(OURS, address) is None
    # Mail to it is still taken in (and held as forged by intake), as it always was.
    assert claimed_kind(OURS, address) is AddressKind.UNSUBSCRIBE
    assert issued_address(OURS, address)


def test_the_from_address_is_issued_too_but_is_no_signed_address() -> None:
    assert issued_address(OURS, " Alerts@Example.org ")
    assert parse_address(OURS, "alerts@example.org") is None


def test_a_copys_message_id_carries_its_reply_token_and_reads_back() -> None:
    message_id = copy_message_id(OURS, 42, TOKEN)
    assert message_id == f"<alerts.42.{TOKEN}@example.org>"
    assert reply_token_in(f"Message-ID: {message_id.upper()}") == TOKEN
    assert reply_token_in("<CAF=abc@mail.gmail.com>") is None


def test_each_kind_says_what_its_token_is_signed_for() -> None:
    assert [kind.purpose for kind in AddressKind] == [Purpose.REPLY, Purpose.BOUNCE,
                                                      Purpose.UNSUBSCRIBE]
