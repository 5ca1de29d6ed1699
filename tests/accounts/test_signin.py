"""Signing in at the service level: the throttle (per account and per network address),
session tokens (tampering, expiry, sign-out, password change) and the emailed reset link
(once, within the hour, the same answer whatever the address, never a logged address)."""

from __future__ import annotations

import logging
import mailbox
import time
from datetime import timedelta
from pathlib import Path

import pytest
from itsdangerous import TimestampSigner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.accounts.audit import AuditEntry
from alerts.accounts.reset_mail import (
    EMAILS_PER_ACCOUNT,
    ResetError,
    complete_reset,
    request_reset,
)
from alerts.accounts.signin import (
    ACCOUNT_LIMIT,
    ADDRESS_LIMIT,
    SESSION_HOURS,
    WINDOW,
    Refusal,
    reset_token,
    session_token,
    sign_in,
    sign_out,
    user_for_reset,
    user_for_token,
)
from alerts.accounts.users import Role, User, add_user, set_password
from alerts.core.config import Settings
from alerts.delivery.sender import deliver_due
from subscriptions.base import utcnow
from tests.factories import make_ward

PASSWORD = "correct horse battery staple"
SECRET = "test-secret-key-for-tests"
HOME = "192.0.2.10"


@pytest.fixture
def officer(session: Session) -> User:
    make_ward(session, "RIV")
    user = add_user(session, "pc.bloggs@police.example", Role.OFFICER, ward_codes=["RIV"],
                    name="PC Jo Bloggs", password=PASSWORD)
    session.commit()
    return user


def test_the_right_password_signs_in(session: Session, officer: User) -> None:
    outcome = sign_in(session, "PC.Bloggs@police.example", PASSWORD, address=HOME)
    assert outcome.user is not None and outcome.user.id == officer.id
    assert outcome.refusal is None


def test_an_unknown_address_and_a_wrong_password_get_the_same_refusal(
        session: Session, officer: User) -> None:
    wrong = sign_in(session, officer.email, "not the password at all", address=HOME)
    unknown = sign_in(session, "nobody@police.example", PASSWORD, address=HOME)
    assert wrong.user is None and unknown.user is None
    assert wrong.refusal == unknown.refusal == Refusal.WRONG


def test_ten_wrong_passwords_lock_the_account_even_against_the_right_one_until_the_window_ends(
        session: Session, officer: User) -> None:
    start = utcnow()
    for n in range(ACCOUNT_LIMIT):
        assert sign_in(session, officer.email, f"wrong guess {n}", address=HOME,
                       now=start + timedelta(seconds=n)).refusal == Refusal.WRONG
    eleventh = sign_in(session, officer.email, PASSWORD, address=HOME,
                       now=start + timedelta(seconds=ACCOUNT_LIMIT))
    assert eleventh.user is None and eleventh.refusal == Refusal.LOCKED
    assert eleventh.retry_after is not None
    assert timedelta(minutes=14) < eleventh.retry_after <= WINDOW
    # From another network address too: the lock is on the account.
    assert sign_in(session, officer.email, PASSWORD, address="198.51.100.7",
                   now=start + timedelta(minutes=5)).refusal == Refusal.LOCKED
    later = sign_in(session, officer.email, PASSWORD, address=HOME,
                    now=start + WINDOW + timedelta(seconds=ACCOUNT_LIMIT))
    assert later.user is not None and later.user.id == officer.id


def test_thirty_wrong_passwords_from_one_address_lock_that_address_for_every_account(
        session: Session, officer: User) -> None:
    start = utcnow()
    for n in range(ADDRESS_LIMIT):
        sign_in(session, f"guess{n}@police.example", "wrong", address=HOME,
                now=start + timedelta(seconds=n))
    assert sign_in(session, officer.email, PASSWORD, address=HOME,
                   now=start + timedelta(minutes=1)).refusal == Refusal.LOCKED
    elsewhere = sign_in(session, officer.email, PASSWORD, address="198.51.100.7",
                        now=start + timedelta(minutes=1))
    assert elsewhere.user is not None


def full_width(text: str) -> str:
    """The text in full-width forms (U+FF01 to U+FF5E), as an East Asian keyboard may type it."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


@pytest.mark.parametrize("typed", ["pc.bloggs@police.example",
                                   f"pc.bloggs@{full_width('p')}olice.example"])
def test_a_locked_account_stays_locked_however_its_address_is_spelled(
        session: Session, officer: User, typed: str) -> None:
    # A full-width p in the domain signs in to the same account, so it meets the same lock,
    # and wrong passwords typed that way count towards it.
    start = utcnow()
    for n in range(ACCOUNT_LIMIT):
        assert sign_in(session, typed, f"wrong guess {n}", address=f"198.51.100.{n}",
                       now=start + timedelta(seconds=n)).refusal == Refusal.WRONG
    for spelling in (officer.email, f"pc.bloggs@{full_width('p')}olice.example",
                     "PC.Bloggs@POLICE.example"):
        locked = sign_in(session, spelling, PASSWORD, address=HOME,
                         now=start + timedelta(minutes=1))
        assert locked.user is None and locked.refusal == Refusal.LOCKED, spelling


def test_full_width_forms_of_an_address_are_that_address(
        session: Session, officer: User) -> None:
    for spelling in (f"{full_width('p')}c.bloggs@police.example",
                     f"pc.bloggs{full_width('@')}police.example",
                     full_width("PC.BLOGGS@POLICE.EXAMPLE")):
        assert sign_in(session, spelling, PASSWORD, address=HOME).user is officer, spelling


def test_a_session_token_names_its_user_until_they_sign_out(
        session: Session, officer: User) -> None:
    token = session_token(SECRET, officer)
    assert user_for_token(session, SECRET, token) is officer
    sign_out(session, officer)
    assert user_for_token(session, SECRET, token) is None
    assert user_for_token(session, SECRET, session_token(SECRET, officer)) is officer


def test_a_tampered_or_foreign_session_token_signs_nobody_in(
        session: Session, officer: User) -> None:
    admin = add_user(session, "admin@police.example", Role.ADMIN, password=PASSWORD)
    token = session_token(SECRET, officer)
    value, _, signature = token.rpartition(".")
    # The cookie is "user id.session version.timestamp.signature": name another user.
    forged = f"{admin.id}." + token.split(".", 1)[1]
    for bad in (forged, value + "." + signature[::-1], token + "x", "",
                session_token("another-secret", officer), None):
        assert user_for_token(session, SECRET, bad) is None


def test_a_session_token_expires_after_the_working_day(
        session: Session, officer: User, monkeypatch: pytest.MonkeyPatch) -> None:
    issued = int(time.time()) - SESSION_HOURS * 3600 - 60
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda _self: issued)
    token = session_token(SECRET, officer)
    monkeypatch.undo()
    assert user_for_token(session, SECRET, token) is None


def test_a_new_password_ends_every_session(session: Session, officer: User) -> None:
    token = session_token(SECRET, officer)
    set_password(session, officer, "a different long passphrase")
    assert user_for_token(session, SECRET, token) is None


def test_a_reset_link_works_once(session: Session, settings: Settings, officer: User) -> None:
    token = reset_token(settings.web.secret_key, officer)
    signed_in = session_token(settings.web.secret_key, officer)
    assert user_for_reset(session, settings.web.secret_key, token) is officer
    user = complete_reset(session, settings, token, "my brand new passphrase",
                          "my brand new passphrase")
    assert user is officer
    assert sign_in(session, officer.email, "my brand new passphrase", address=HOME).user
    assert user_for_token(session, settings.web.secret_key, signed_in) is None
    assert complete_reset(session, settings, token, "yet another passphrase",
                          "yet another passphrase") is None
    actions = session.scalars(select(AuditEntry.action).where(
        AuditEntry.user_id == officer.id)).all()
    assert "password.reset" in actions


def test_a_reset_link_ends_after_an_hour(session: Session, settings: Settings, officer: User,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    issued = int(time.time()) - 61 * 60
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda _self: issued)
    token = reset_token(settings.web.secret_key, officer)
    monkeypatch.undo()
    assert user_for_reset(session, settings.web.secret_key, token) is None


def test_a_reset_refuses_a_short_or_mistyped_password(
        session: Session, settings: Settings, officer: User) -> None:
    token = reset_token(settings.web.secret_key, officer)
    with pytest.raises(ResetError) as short:
        complete_reset(session, settings, token, "too short", "too short")
    assert "password" in short.value.errors
    with pytest.raises(ResetError) as mistyped:
        complete_reset(session, settings, token, "a long enough phrase", "a long enough phrasE")
    assert "repeated" in mistyped.value.errors
    assert user_for_reset(session, settings.web.secret_key, token) is officer  # not spent


def test_a_reset_request_mails_a_link_only_to_a_real_account_and_only_a_few_times(
        session: Session, settings: Settings, officer: User) -> None:
    now = utcnow()
    assert request_reset(session, settings, "nobody@police.example", address=HOME,
                         now=now) is None
    sent = [request_reset(session, settings, officer.email, address=HOME,
                          now=now + timedelta(seconds=n))
            for n in range(EMAILS_PER_ACCOUNT + 2)]
    assert all(sent[:EMAILS_PER_ACCOUNT])
    assert sent[EMAILS_PER_ACCOUNT:] == [None, None]
    assert request_reset(session, settings, officer.email, address=HOME,
                         now=now + WINDOW + timedelta(minutes=1)) is not None


def test_the_reset_email_carries_a_working_link_says_to_ignore_it_and_logs_no_address(
        session: Session, settings: Settings, officer: User, factory: sessionmaker[Session],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    mail = request_reset(session, settings, officer.email, address=HOME)
    session.commit()
    assert mail is not None and mail.recipient == officer.email
    assert deliver_due(factory, settings).sent == 1  # the outbox's sender sends it
    (message,) = list(mailbox.Maildir(Path(settings.mail.maildir), create=False))
    assert message["To"] == officer.email
    assert message["Auto-Submitted"] == "auto-generated"
    body = message.get_payload(decode=True).decode()
    assert "If this was not you, ignore this email" in body
    link = next(line for line in body.splitlines() if "/staff/reset/" in line)
    token = link.rsplit("/", 1)[1]
    with factory() as other:
        assert user_for_reset(other, settings.web.secret_key, token) is not None
    assert officer.email not in caplog.text
