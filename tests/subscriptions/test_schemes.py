"""Schemes and their members (subscriptions.schemes): reading a coordinator's CSV (pure, with
line numbers), joining residents to a scheme (only addresses new to us are added; residents
already subscribed are invited and join when they accept), the members a coordinator sees
(only those who joined), the export rows, who is suppressed, and removing a member.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from subscriptions.base import utcnow
from subscriptions.consent import COORDINATOR_WORDING, WORDING, Consent, ConsentMethod
from subscriptions.csv_io import CsvError, SubscriberRow
from subscriptions.personal_data import erase_subscriber
from subscriptions.schemes import (
    Scheme,
    SchemeError,
    accept_invitation,
    add_scheme,
    invitation_open,
    join_scheme,
    list_members,
    member_row,
    read_scheme_file,
    scheme_records,
    suppressed_members,
    unsubscribe_member,
)
from subscriptions.subscribers import (
    MAX_CONSENT_SOURCE,
    Frequency,
    Status,
    Subscriber,
    Subscription,
)
from subscriptions.suppression import SuppressionReason, suppress
from tests.factories import make_subscriber, make_ward

NOW = utcnow()


def read(text: str) -> tuple[list[tuple[int, str, str, str, str | None]], list[tuple[int, str]]]:
    rows, errors = read_scheme_file(text, scheme_name="Mill Lane Watch", ward_code="RIV",
                                    ward_name="Riverside")
    return ([(r.line, r.email, r.ward, r.frequency.value, r.scheme) for r in rows],
            [(e.line, e.reason) for e in errors])


def test_a_scheme_file_needs_only_an_email_column_and_implies_the_ward_and_scheme() -> None:
    assert read("email\nAnn@Home.example\n\nbob@home.example\n") == ([
        (2, "ann@home.example", "RIV", "weekly", "Mill Lane Watch"),
        (4, "bob@home.example", "RIV", "weekly", "Mill Lane Watch")], [])


def test_a_ward_or_scheme_column_must_name_this_scheme_or_be_empty() -> None:
    rows, errors = read(
        "email,ward,scheme,frequency\n"
        "a@home.example,RIV,Mill Lane Watch,daily\n"
        "b@home.example,riverside, mill  lane watch ,\n"
        "c@home.example,,,\n"
        "d@home.example,HIL,,\n"
        "e@home.example,RIV,Church Street Watch,\n")
    assert [r[1] for r in rows] == ["a@home.example", "b@home.example", "c@home.example"]
    assert rows[0][3] == "daily"
    assert errors == [(5, "ward 'HIL' is not this scheme's ward (RIV)"),
                      (6, "scheme 'Church Street Watch' is not Mill Lane Watch")]


def test_each_bad_line_is_named_by_its_number_and_the_last_line_for_an_address_wins() -> None:
    rows, errors = read(
        "name;email;frequency\n"
        "Ann;ann@home.example;weekly\n"
        "Nobody;not an address;weekly\n"
        '"Multi\nline";bob@home.example;hourly\n'
        "Ann again;ann@home.example;immediate\n"
        f"{'x' * 201};cat@home.example;\n")
    assert rows == [(6, "ann@home.example", "RIV", "immediate", "Mill Lane Watch")]
    assert [line for line, _ in errors] == [3, 5, 7]
    assert errors[1] == (5, "frequency 'hourly' is not one of immediate, daily, weekly")
    assert errors[2] == (7, "name is longer than 200 characters")


@pytest.mark.parametrize(("text", "says"), [
    ("", "the file is empty"),
    ("name,ward\nAnn,RIV\n", "lacks the column email"),
])
def test_a_scheme_file_without_an_email_column_cannot_be_read(text: str, says: str) -> None:
    with pytest.raises(CsvError, match=says):
        read(text)


def test_the_coordinators_declaration_is_kept_with_its_own_wording_version() -> None:
    assert ConsentMethod("coordinator") is ConsentMethod.COORDINATOR
    assert "asked to join this Neighbourhood Watch scheme" in WORDING[COORDINATOR_WORDING]
    assert len(COORDINATOR_WORDING) <= 32 and len(ConsentMethod.COORDINATOR) <= 16


def consent(*, prior: bool = False) -> Consent:
    return Consent(at=NOW, method=ConsentMethod.COORDINATOR, source="tests",
                   wording_version=COORDINATOR_WORDING, prior_consent_declared=prior)


def subscription_of(session: Session, email: str) -> Subscription:
    return session.scalars(select(Subscription).join(Subscriber)
                           .where(Subscriber.email == email)).one()


def rows_for(scheme: Scheme, *emails: str) -> list[SubscriberRow]:
    return [SubscriberRow(line, email, scheme.ward.code, email.split("@")[0].title(),
                          Frequency.WEEKLY, scheme.name)
            for line, email in enumerate(emails, start=2)]


def test_joining_adds_only_addresses_new_to_us_and_invites_those_already_subscribed(
    session: Session,
) -> None:
    ward, hill = make_ward(session, "RIV", "Riverside"), make_ward(session, "HIL")
    mill = add_scheme(session, "Mill Lane Watch", "RIV")
    add_scheme(session, "Church Street Watch", "RIV")
    eve = make_subscriber(session, ward, "eve@home.example", frequency=Frequency.DAILY)
    pen = make_subscriber(session, ward, "pen@home.example", confirmed=False)
    make_subscriber(session, ward, "dan@home.example").scheme = "Church Street Watch"
    make_subscriber(session, ward, "old@home.example").status = Status.UNSUBSCRIBED
    make_subscriber(session, ward, "pau@home.example").status = Status.PAUSED
    make_subscriber(session, hill, "far@home.example", name="Far Away")
    suppress(session, "kim@home.example", SuppressionReason.COMPLAINT)
    erased = make_subscriber(session, ward, "gone@home.example")
    erase_subscriber(session, erased.subscriber_id, now=NOW)
    before = {s.id: (s.status, s.scheme, s.frequency, s.consent_method)
              for s in session.scalars(select(Subscription))}

    joined = join_scheme(session, mill, rows_for(
        mill, "new@home.example", "eve@home.example", "pen@home.example", "dan@home.example",
        "old@home.example", "pau@home.example", "far@home.example", "kim@home.example",
        "gone@home.example"), consent(prior=True), confirmed=True)

    assert (joined.invite, joined.errors) == (sorted([eve.id, pen.id]), [])
    # Nobody already subscribed was changed, written consent or not.
    assert {s.id: (s.status, s.scheme, s.frequency, s.consent_method)
            for s in session.scalars(select(Subscription)) if s.id in before} == before
    new = subscription_of(session, "new@home.example")
    assert (new.scheme, new.status, new.consent_wording, new.subscriber.name) == (
        "Mill Lane Watch", "confirmed", COORDINATOR_WORDING, "New")
    # Known to us in another ward: asked to confirm here, whatever the coordinator declared.
    far = session.scalars(select(Subscription).join(Subscriber).where(
        Subscriber.email == "far@home.example", Subscription.ward_id == ward.id)).one()
    assert (far.scheme, far.status, far.consent_prior_declared, far.subscriber.name) == (
        "Mill Lane Watch", "pending", False, "Far Away")
    for gone in ("kim@home.example", "gone@home.example"):
        assert session.scalar(select(Subscriber).where(Subscriber.email == gone)) is None
    assert [m.email for m in list_members(session, mill)] == ["new@home.example"]


def test_an_invitation_once_accepted_makes_a_member_and_confirms_one_still_waiting(
    session: Session,
) -> None:
    ward = make_ward(session, "RIV")
    mill = add_scheme(session, "Mill Lane Watch", "RIV")
    eve = make_subscriber(session, ward, "eve@home.example", frequency=Frequency.DAILY)
    pen = make_subscriber(session, ward, "pen@home.example", confirmed=False)
    joined = join_scheme(session, mill, rows_for(mill, "eve@home.example", "pen@home.example"),
                         consent(), confirmed=False)
    assert list_members(session, mill) == []
    for subscription in (eve, pen):
        assert accept_invitation(session, subscription, mill, now=NOW)
        assert accept_invitation(session, subscription, mill, now=NOW)  # again: no change
    assert sorted(joined.invite) == sorted([eve.id, pen.id])
    assert [(m.email, m.status, m.frequency) for m in list_members(session, mill)] == [
        ("eve@home.example", "confirmed", "daily"), ("pen@home.example", "confirmed", "weekly")]
    assert pen.confirmed_at == NOW and pen.consent_method == ConsentMethod.OFFICER_CLI


def test_an_invitation_cannot_be_accepted_once_the_resident_left_or_was_suppressed(
    session: Session,
) -> None:
    ward = make_ward(session, "RIV")
    mill = add_scheme(session, "Mill Lane Watch", "RIV")
    church = add_scheme(session, "Church Street Watch", "RIV")
    left, paused, other, bounced = (make_subscriber(session, ward) for _ in range(4))
    left.status, paused.status, other.scheme = (Status.UNSUBSCRIBED, Status.PAUSED,
                                                church.name)
    suppress(session, bounced.subscriber.email, SuppressionReason.HARD_BOUNCE)
    for subscription in (left, paused, other, bounced):
        assert not invitation_open(session, subscription, mill)
        assert not accept_invitation(session, subscription, mill, now=NOW)
    assert [s.scheme for s in (left, paused, other, bounced)] == [None, None, church.name, None]
    assert (left.status, paused.status) == ("unsubscribed", "paused")


def test_a_row_for_another_ward_or_scheme_is_refused_even_when_built_by_hand(
    session: Session,
) -> None:
    make_ward(session, "RIV")
    make_ward(session, "HIL")
    mill = add_scheme(session, "Mill Lane Watch", "RIV")
    rows = [SubscriberRow(2, "a@home.example", "HIL", "", Frequency.WEEKLY, "Mill Lane Watch"),
            SubscriberRow(3, "b@home.example", "RIV", "", Frequency.WEEKLY, "Other")]
    joined = join_scheme(session, mill, rows, consent(), confirmed=False)
    assert joined.invite == [] and [e.line for e in joined.errors] == [2, 3]
    assert session.scalar(select(Subscriber.id)) is None


def test_members_export_rows_and_the_suppressed_show_who_is_not_sent_to(
    session: Session,
) -> None:
    ward = make_ward(session, "RIV")
    mill = add_scheme(session, "Mill Lane Watch", "RIV")
    for email in ("ann@home.example", "bob@home.example"):
        make_subscriber(session, ward, email).scheme = mill.name
    make_subscriber(session, ward, "eve@home.example")
    # Added by a coordinator, never confirmed: no member (and no one learns it was new).
    make_subscriber(session, ward, "pat@home.example", confirmed=False).scheme = mill.name
    suppress(session, "bob@home.example", SuppressionReason.HARD_BOUNCE, "user unknown",
             now=NOW - timedelta(days=2))
    members = list_members(session, mill)
    assert [(m.email, m.status, m.state) for m in members] == [
        ("ann@home.example", "confirmed", "confirmed"),
        ("bob@home.example", "confirmed", "suppressed")]
    assert [(r.email, r.ward, r.scheme, r.status) for r in scheme_records(session, mill)] == [
        ("ann@home.example", "RIV", "Mill Lane Watch", "confirmed"),
        ("bob@home.example", "RIV", "Mill Lane Watch", "suppressed")]
    [bob] = suppressed_members(session, mill)
    assert (bob.member.email, bob.reason, bob.detail, bob.since) == (
        "bob@home.example", "hard_bounce", "user unknown", NOW - timedelta(days=2))


def test_removing_a_member_unsubscribes_them_and_only_a_member_can_be_removed(
    session: Session,
) -> None:
    ward = make_ward(session, "RIV")
    mill = add_scheme(session, "Mill Lane Watch", "RIV")
    ann = make_subscriber(session, ward, "ann@home.example")
    ann.scheme = mill.name
    eve = make_subscriber(session, ward, "eve@home.example")
    session.flush()
    unsubscribe_member(session, mill, ann.id, now=NOW)
    unsubscribe_member(session, mill, ann.id, now=NOW + timedelta(hours=1))
    assert (ann.status, ann.unsubscribed_at, ann.scheme) == (
        "unsubscribed", NOW, "Mill Lane Watch")
    with pytest.raises(SchemeError):
        unsubscribe_member(session, mill, eve.id, now=NOW)
    assert eve.status == "confirmed"


def test_a_long_consent_source_is_cut_to_fit(session: Session) -> None:
    make_ward(session, "RIV")
    mill = add_scheme(session, "Mill Lane Watch", "RIV")
    long = Consent(at=NOW, method=ConsentMethod.COORDINATOR, source="p" * 400,
                   wording_version=COORDINATOR_WORDING)
    join_scheme(session, mill, [member_row(mill, "ann@home.example")], long, confirmed=False)
    assert len(subscription_of(session, "ann@home.example").consent_source) \
        == MAX_CONSENT_SOURCE
