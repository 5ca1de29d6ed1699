import pytest
from sqlalchemy.orm import Session

from subscriptions.base import utcnow
from subscriptions.consent import CURRENT_WORDING, Consent, ConsentMethod
from subscriptions.csv_io import read_subscribers
from subscriptions.subscribers import (
    Frequency,
    Status,
    SubscriberError,
    check_name_and_scheme,
    iter_subscriptions,
    subscribe,
    unsubscribe_everywhere,
)
from tests.factories import make_ward


def consent(prior: bool = False) -> Consent:
    return Consent(at=utcnow(), method=ConsentMethod.CSV_IMPORT, source="members.csv",
                   prior_consent_declared=prior)


def test_a_new_subscription_waits_for_confirmation_unless_consent_is_declared(
        session: Session) -> None:
    ward = make_ward(session)
    pending = subscribe(session, "ann@home.example", ward.code, consent())
    confirmed = subscribe(session, "bob@home.example", ward.code, consent(True), confirmed=True)
    assert pending.status == Status.PENDING and pending.confirmed_at is None
    assert confirmed.status == Status.CONFIRMED and confirmed.consent_prior_declared


def test_consent_records_when_how_where_and_which_wording(session: Session) -> None:
    ward = make_ward(session)
    subscribe(session, "Ann@Home.Example", ward.code, consent(), frequency=Frequency.DAILY)
    [record] = list(iter_subscriptions(session))
    assert record.email == "ann@home.example"
    assert record.consent_method == "import"
    assert record.consent_source == "members.csv"
    assert record.consent_wording == CURRENT_WORDING
    assert record.frequency == "daily"


def test_removing_a_subscriber_unsubscribes_every_ward_and_keeps_the_record(
        session: Session) -> None:
    one, two = make_ward(session), make_ward(session)
    subscribe(session, "ann@home.example", one.code, consent(True), confirmed=True)
    subscribe(session, "ann@home.example", two.code, consent(True), confirmed=True)
    assert unsubscribe_everywhere(session, "ANN@home.example") == 2
    assert {r.status for r in iter_subscriptions(session)} == {"unsubscribed"}


def test_a_suppressed_address_cannot_be_subscribed_again_silently(session: Session) -> None:
    import pytest

    from subscriptions.subscribers import SubscriberError
    from subscriptions.suppression import SuppressionReason, suppress, unsuppress

    ward = make_ward(session)
    suppress(session, "bounced@home.example", SuppressionReason.HARD_BOUNCE, "550 5.1.1",
             keep_address=False)
    with pytest.raises(SubscriberError, match="suppression list"):
        subscribe(session, "Bounced@Home.example", ward.code, consent(True), confirmed=True)
    unsuppress(session, "bounced@home.example")
    assert subscribe(session, "bounced@home.example", ward.code, consent(True),
                     confirmed=True).status == Status.CONFIRMED


@pytest.mark.parametrize("name", [
    "Ann\nBcc: all@home.example", "Ann\r\nArcher", "Ann\rArcher", "Ann\tArcher",
    "Ann\x00", "Ann\x1b[31m", "Ann\x85Archer", "Ann\u2028Archer", "Ann\u2029Archer",
])
def test_a_name_with_a_line_break_or_any_control_character_is_refused_naming_the_field(
    session: Session, name: str,
) -> None:
    ward = make_ward(session)
    with pytest.raises(SubscriberError, match="name must not contain a line break"):
        check_name_and_scheme(name, None)
    with pytest.raises(SubscriberError, match="name must not contain a line break"):
        subscribe(session, "ann@home.example", ward.code, consent(), name=name)
    with pytest.raises(SubscriberError, match="scheme must not contain a line break"):
        check_name_and_scheme("Ann", name)
    rows, errors = read_subscribers('email,ward,name\nann@home.example,RIV,"' + name + '"\n')
    assert rows == [] and [e.reason.split(" ")[:3] for e in errors] == [
        ["name", "must", "not"]]


def test_a_name_is_trimmed_and_may_hold_any_printable_character() -> None:
    for name in ("  Ann Archer ", "Siân O'Brien-Jones", "李小龍", "=Ann", "Ann\u00a0Archer"):
        assert check_name_and_scheme(name, " Mill Lane Watch ") == (
            name.strip(), "Mill Lane Watch")
