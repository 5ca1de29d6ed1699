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
