"""Signed references: a token names one stored row, for one purpose, for as long as that
row keeps its nonce; another row (even under the same id) or no row refuses it."""

from __future__ import annotations

from sqlalchemy.orm import Session

from subscriptions.base import utcnow
from subscriptions.links import Purpose, new_nonce, nonces_in, sign_reference, verify_reference
from subscriptions.personal_data import erase_subscriber
from subscriptions.subscribers import Subscription
from tests.factories import make_subscriber, make_ward, signed

SECRET = "a-secret-for-links"
NONCE = new_nonce()


def stored(ident: int) -> str:
    """Every row these tests name is stored, with NONCE."""
    return NONCE


def test_a_signed_reference_names_its_record() -> None:
    token = sign_reference(SECRET, Purpose.REPLY, 4711, NONCE)
    assert verify_reference(SECRET, Purpose.REPLY, token, stored) == 4711
    assert verify_reference(SECRET, Purpose.REPLY, token.upper(), stored) == 4711


def test_forged_altered_or_foreign_tokens_are_not_trusted() -> None:
    token = sign_reference(SECRET, Purpose.REPLY, 4711, NONCE)
    ident, tag = token.split("-")
    assert verify_reference(SECRET, Purpose.REPLY, f"4712-{tag}", stored) is None
    assert verify_reference(SECRET, Purpose.REPLY, f"{ident}-{'a' * len(tag)}", stored) is None
    assert verify_reference("another-secret", Purpose.REPLY, token, stored) is None
    assert verify_reference(SECRET, Purpose.UNSUBSCRIBE, token, stored) is None
    assert verify_reference(SECRET, Purpose.REPLY, "rubbish", stored) is None


def test_a_token_for_a_row_written_again_or_gone_is_refused() -> None:
    rows = {4711: NONCE}
    token = sign_reference(SECRET, Purpose.REPLY, 4711, NONCE)
    assert verify_reference(SECRET, Purpose.REPLY, token, rows.get) == 4711
    rows[4711] = new_nonce()  # deleted and written again under the same id
    assert verify_reference(SECRET, Purpose.REPLY, token, rows.get) is None
    del rows[4711]  # gone
    assert verify_reference(SECRET, Purpose.REPLY, token, rows.get) is None


def test_a_stored_rows_token_stops_working_when_its_nonce_is_replaced_or_the_row_is_erased(
        session: Session) -> None:
    subscription = make_subscriber(session, make_ward(session), "jo@home.example")
    ident, subscriber = subscription.id, subscription.subscriber_id
    token = signed(session, SECRET, Purpose.UNSUBSCRIBE, ident)
    assert verify_reference(SECRET, Purpose.UNSUBSCRIBE, token,
                            nonces_in(session, Subscription)) == ident
    subscription.nonce = new_nonce()
    session.flush()
    assert verify_reference(SECRET, Purpose.UNSUBSCRIBE, token,
                            nonces_in(session, Subscription)) is None
    renewed = signed(session, SECRET, Purpose.UNSUBSCRIBE, ident)
    assert erase_subscriber(session, subscriber, now=utcnow())
    assert nonces_in(session, Subscription)(ident) is None
    assert verify_reference(SECRET, Purpose.UNSUBSCRIBE, renewed,
                            nonces_in(session, Subscription)) is None


def test_tokens_fit_in_an_email_local_part() -> None:
    token = sign_reference(SECRET, Purpose.BOUNCE, 10**15, NONCE)
    assert len(f"bounces+{token}") <= 64
    assert token == token.lower()


def test_a_seal_is_the_unpadded_lower_case_base32_of_an_hmac_sha256_cut_to_12_bytes() -> None:
    """The tag every link already sent carries: a faster way of making it must not change
    one character (RFC 4648 base32, as base64.b32encode writes it)."""
    import base64
    import hashlib
    import hmac
    import random

    from subscriptions.links import LEGACY_NONCE, seal

    chance = random.Random(26)
    for _ in range(2000):
        ident, nonce = chance.randrange(10**18), chance.choice([LEGACY_NONCE, new_nonce()])
        purpose = chance.choice(list(Purpose))
        signed_text = f"{purpose.value}:{ident}" + (f":{nonce}" if nonce else "")
        mac = hmac.new(SECRET.encode(), signed_text.encode(), hashlib.sha256).digest()
        expected = base64.b32encode(mac[:12]).decode().rstrip("=").lower()
        assert seal(SECRET, purpose, ident, nonce) == expected
