"""The classifier on real mail: bounces and auto-replies from many mail systems, gathered from
public test corpora (tests/inbound/corpus/, provenance and licences in its README files).

The issue's bar: at least 95% classified right, and the failed recipient found for at least 95%
of the bounces that name one. Severity (hard or soft, as a person reading the bounce would
judge it) is held to 95% too; the few disagreements are listed by `python
bench/classify_corpus.py --misses`. The scoring lives in that script, so the figures printed
here and there are the same.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "classify_corpus.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("classify_corpus", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("classify_corpus", module)
    spec.loader.exec_module(module)
    return module


bench = _bench()


@pytest.fixture(scope="module")
def outcomes() -> list[Any]:
    return cast(list[Any], bench.run(bench.load_cases()))


def _report(outcomes: list[Any]) -> str:
    total = bench.tallies(outcomes, "source")["all"]
    return "\n".join([bench.table(bench.tallies(outcomes, "system"), "mail system"), "",
                      bench.table(bench.tallies(outcomes, "source"), "source"), "",
                      "misses:", *total.misses])


def test_every_corpus_file_has_an_expectation_and_every_expectation_a_file() -> None:
    cases = bench.load_cases()
    listed = {case.path for case in cases}
    assert all(path.is_file() for path in listed)
    on_disk = {path for path in bench.CORPUS.glob("*/*")
               if path.name not in ("README.md", "LICENSE", "expected.toml")}
    assert on_disk == listed
    assert len(cases) >= 170


def test_the_corpus_spans_the_major_mail_systems_and_auto_replies() -> None:
    cases = bench.load_cases()
    systems = {case.system for case in cases if case.kind == "bounce"}
    assert {"Postfix", "Exim", "Sendmail", "qmail", "Microsoft Exchange", "Gmail",
            "Yahoo"} <= systems
    assert sum(case.kind in ("auto_reply", "complaint") for case in cases) >= 8


def test_at_least_95_percent_of_real_mail_is_classified_right(outcomes: list[Any]) -> None:
    total = bench.tallies(outcomes, "source")["all"]
    assert total.kind_right >= 0.95 * total.messages, _report(outcomes)


def test_the_failed_recipient_is_found_for_at_least_95_percent_of_bounces(
        outcomes: list[Any]) -> None:
    total = bench.tallies(outcomes, "source")["all"]
    assert total.recipient_found >= 0.95 * total.with_recipient, _report(outcomes)


def test_severity_agrees_with_the_wording_for_at_least_95_percent_of_bounces(
        outcomes: list[Any]) -> None:
    total = bench.tallies(outcomes, "source")["all"]
    assert total.severity_agrees >= 0.95 * total.with_severity, _report(outcomes)


def test_no_reason_or_status_carries_an_address_or_the_messages_words(
        outcomes: list[Any]) -> None:
    for outcome in outcomes:
        for text in (outcome.got.reason, outcome.got.status or ""):
            assert "@" not in text, outcome.case.path.name
