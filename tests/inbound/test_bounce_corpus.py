"""Bounces from many MTA families: the failed recipient and the severity, where flufl.bounce
alone misses them (issue 17).

Over every labelled bounce in tests/inbound/corpus/ (sisimai_lhost/ holds Sisimai's samples of
the families the older folders lack: Office 365, Amazon SES and WorkMail, Zoho, OpenSMTPD,
Google Groups, Verizon, KDDI, m-FILTER, DragonFly, Sendmail V5 and more), the failed recipient
is found in at least 98% of bounces that name one, and the severity agrees with the status
class as the README reads it (hard when the address itself is bad; soft for 4.x.x, a full
mailbox, size, policy) in at least 95%, over at least 20 MTA families. The scoring is
bench/classify_corpus.py's, so `python bench/classify_corpus.py` prints the same figures.
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from alerts.inbound.classify import Classification, Kind, Severity, classify
from alerts.inbound.mail import parse_mail
from tests.inbound.test_classify_corpus import bench

NEW_FOLDER = "sisimai_lhost"


@pytest.fixture(scope="module")
def bounces() -> list[Any]:
    cases = [case for case in bench.load_cases() if case.kind == "bounce"]
    return cast(list[Any], bench.run(cases))


def _families(outcomes: list[Any]) -> str:
    return bench.table(bench.tallies(outcomes, "system"), "MTA family")


def test_the_index_spans_at_least_20_mta_families_of_bounces_and_20_new_ones() -> None:
    cases = bench.load_cases()
    new = {case.system for case in cases if case.source == NEW_FOLDER and case.kind == "bounce"}
    before = {case.system for case in cases
              if case.source != NEW_FOLDER and case.kind == "bounce"}
    assert len(new | before) >= 20
    assert len(new - before) >= 20, sorted(new - before)
    assert all(case.recipients and case.severity for case in cases
               if case.source == NEW_FOLDER)


def test_the_failed_recipient_is_found_in_at_least_98_percent_of_bounces(
        bounces: list[Any]) -> None:
    total = bench.tallies(bounces, "source")["all"]
    assert total.recipient_found >= 0.98 * total.with_recipient, _families(bounces)


def test_severity_agrees_with_the_status_class_in_at_least_95_percent_of_bounces(
        bounces: list[Any]) -> None:
    total = bench.tallies(bounces, "source")["all"]
    assert total.severity_agrees >= 0.95 * total.with_severity, _families(bounces)


def test_the_new_families_alone_hold_to_the_same_bars(bounces: list[Any]) -> None:
    """No family hides behind the others: the new folder alone holds to the same bars."""
    new = bench.tallies([o for o in bounces if o.case.source == NEW_FOLDER], "source")["all"]
    assert new.recipient_found >= 0.98 * new.with_recipient, _families(bounces)
    assert new.severity_agrees >= 0.95 * new.with_severity, _families(bounces)


# --- single formats, one real message each -----------------------------------------------

def _classify(name: str) -> Classification:
    raw = (bench.CORPUS / NEW_FOLDER / name).read_bytes()
    return classify(parse_mail(raw), new_text="", ours=bench.OURS)


@pytest.mark.parametrize(("name", "recipients"), [
    ("lhost-amazonworkmail-01.eml", ("kijitora@example.jp",)),  # DSN fields pasted as text
    ("lhost-dragonfly-01.eml", ("pseudo-local-part@google.example.com",)),
    ("lhost-exchange2003-04.eml", ("kijitora@example.com",)),
    ("lhost-kddi-02.eml", ("kijitora@00000000000000.dion.ne.jp",)),
    ("lhost-mfilter-01.eml", ("kijitora@example.com",)),
    ("lhost-notes-03.eml", ("kijitora@example.com",)),
    ("lhost-v5sendmail-04.eml", ("kijitora@example.ed.jp", "mikeneko@example.ac.jp")),
    ("lhost-yahoo-01.eml", ("kijitora@example.org",)),
    ("lhost-zoho-04.eml", ("kijitora@6kaku.example.co.jp",)),
])
def test_the_failed_address_is_read_from_a_layout_flufl_does_not_know(
        name: str, recipients: tuple[str, ...]) -> None:
    got = _classify(name)
    assert (got.kind, got.failed_recipients) == (Kind.BOUNCE, recipients)


@pytest.mark.parametrize("name", ["lhost-apachejames-01.eml", "lhost-verizon-02.eml"])
def test_a_no_such_user_notice_under_a_reply_subject_is_a_hard_bounce(name: str) -> None:
    got = _classify(name)
    assert (got.kind, got.severity) == (Kind.BOUNCE, Severity.HARD)
    assert len(got.failed_recipients) == 1


@pytest.mark.parametrize(("name", "severity"), [
    ("lhost-amazonses-01.eml", Severity.SOFT),  # 5.1.0 wrapper around 550 5.7.1 Access denied
    ("lhost-amazonses-02.eml", Severity.HARD),  # 5.3.0 wrapper around 550 Unknown user
    ("lhost-amazonses-03.eml", Severity.SOFT),  # 5.1.0 wrapper around 5.2.2 Mailbox Full
])
def test_amazon_ses_is_judged_on_the_remote_reply_it_wraps(name: str,
                                                           severity: Severity) -> None:
    assert _classify(name).severity is severity


@pytest.mark.parametrize(("name", "severity"), [
    ("lhost-x3-06.eml", Severity.SOFT),  # Status 5.1.1, "552 5.2.2 Over quota": full mailbox
    ("lhost-office365-05.eml", Severity.SOFT),  # 5.1.8: our sender address was refused
    ("lhost-bigfoot-02.eml", Severity.HARD),  # 5.7.1 with "553 Invalid recipient"
    ("lhost-ezweb-03.eml", Severity.HARD),  # "The user(s) account is disabled."
    ("lhost-v5sendmail-02.eml", Severity.HARD),  # "550 Host unknown"
])
def test_the_words_decide_where_the_status_says_otherwise(name: str,
                                                          severity: Severity) -> None:
    assert _classify(name).severity is severity
