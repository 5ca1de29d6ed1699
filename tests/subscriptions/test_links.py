from subscriptions.links import Purpose, sign_reference, verify_reference

SECRET = "a-secret-for-links"


def test_a_signed_reference_names_its_record() -> None:
    token = sign_reference(SECRET, Purpose.REPLY, 4711)
    assert verify_reference(SECRET, Purpose.REPLY, token) == 4711
    assert verify_reference(SECRET, Purpose.REPLY, token.upper()) == 4711


def test_forged_altered_or_foreign_tokens_are_not_trusted() -> None:
    token = sign_reference(SECRET, Purpose.REPLY, 4711)
    ident, tag = token.split("-")
    assert verify_reference(SECRET, Purpose.REPLY, f"4712-{tag}") is None
    assert verify_reference(SECRET, Purpose.REPLY, f"{ident}-{'a' * len(tag)}") is None
    assert verify_reference("another-secret", Purpose.REPLY, token) is None
    assert verify_reference(SECRET, Purpose.UNSUBSCRIBE, token) is None
    assert verify_reference(SECRET, Purpose.REPLY, "rubbish") is None


def test_tokens_fit_in_an_email_local_part() -> None:
    token = sign_reference(SECRET, Purpose.BOUNCE, 10**15)
    assert len(f"bounces+{token}") <= 64
    assert token == token.lower()
