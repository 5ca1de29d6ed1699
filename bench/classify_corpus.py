"""How well `alerts.inbound.classify` reads real bounces and auto-replies from many mail systems.

    python bench/classify_corpus.py [--misses]

Runs the classifier over every message in tests/inbound/corpus/ (real mail gathered from public
test corpora: flufl.bounce's Mailman collection, the bounce_email set bundled by `bounced`,
Sisimai's set-of-emails and Mail::DeliveryStatus::BounceParser; provenance in each folder's
README.md) and compares it with each folder's expected.toml. Prints, per mail system and per
source: messages, kind right, failed recipient found (bounces that name one), severity agreeing
(messages whose wording says hard or soft), and the totals as percentages, then the bounces'
figures against issue 17's bars (98% and 95%, over at least 20 MTA families). --misses lists
every disagreement. tests/inbound/test_classify_corpus.py holds the same figures to their bars.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alerts.core.config import MailSettings  # noqa: E402
from alerts.inbound.classify import Classification, classify  # noqa: E402
from alerts.inbound.mail import parse_mail  # noqa: E402

CORPUS = ROOT / "tests" / "inbound" / "corpus"
OURS = MailSettings(reply_domain="reply.example.org")


@dataclass(frozen=True)
class Case:
    source: str
    path: Path
    system: str
    kind: str
    recipients: tuple[str, ...]
    severity: str | None


@dataclass(frozen=True)
class Outcome:
    case: Case
    got: Classification

    @property
    def kind_right(self) -> bool:
        return self.got.kind.value == self.case.kind

    @property
    def recipient_found(self) -> bool:
        return set(self.case.recipients) <= set(self.got.failed_recipients)

    @property
    def severity_agrees(self) -> bool:
        return self.got.severity is not None and self.got.severity.value == self.case.severity


@dataclass
class Tally:
    messages: int = 0
    kind_right: int = 0
    with_recipient: int = 0
    recipient_found: int = 0
    with_severity: int = 0
    severity_agrees: int = 0
    misses: list[str] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        case = outcome.case
        self.messages += 1
        self.kind_right += outcome.kind_right
        if not outcome.kind_right:
            self.misses.append(f"{case.source}/{case.path.name}: kind {outcome.got.kind.value}, "
                               f"expected {case.kind} ({outcome.got.reason})")
        if case.kind == "bounce" and case.recipients:
            self.with_recipient += 1
            self.recipient_found += outcome.recipient_found
            if not outcome.recipient_found:
                self.misses.append(f"{case.source}/{case.path.name}: recipient not found")
        if case.kind == "bounce" and case.severity is not None:
            self.with_severity += 1
            self.severity_agrees += outcome.severity_agrees
            if not outcome.severity_agrees:
                got = outcome.got.severity.value if outcome.got.severity else "none"
                self.misses.append(f"{case.source}/{case.path.name}: severity {got}, expected "
                                   f"{case.severity} ({outcome.got.reason})")


def load_cases(corpus: Path = CORPUS) -> list[Case]:
    cases = []
    for expected in sorted(corpus.glob("*/expected.toml")):
        files = tomllib.loads(expected.read_text(encoding="utf-8"))["files"]
        for name, entry in sorted(files.items()):
            cases.append(Case(
                source=expected.parent.name, path=expected.parent / name,
                system=entry["system"], kind=entry["kind"],
                recipients=tuple(entry.get("recipients", ())), severity=entry.get("severity")))
    return cases


def run(cases: list[Case]) -> list[Outcome]:
    outcomes = []
    for case in cases:
        mail = parse_mail(case.path.read_bytes())
        outcomes.append(Outcome(case, classify(mail, new_text="", ours=OURS)))
    return outcomes


def tallies(outcomes: list[Outcome], by: str) -> dict[str, Tally]:
    grouped: dict[str, Tally] = defaultdict(Tally)
    for outcome in outcomes:
        grouped[getattr(outcome.case, by)].add(outcome)
        grouped["all"].add(outcome)
    return dict(grouped)


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:5.1f}%" if whole else "    -"


def table(grouped: dict[str, Tally], title: str) -> str:
    lines = [f"{title:<26} {'n':>4} {'kind right':>16} {'recipient found':>17} "
             f"{'severity agrees':>17}"]
    names = sorted((k for k in grouped if k != "all"), key=lambda k: (-grouped[k].messages, k))
    for name in [*names, "all"]:
        t = grouped[name]
        lines.append(
            f"{name:<26} {t.messages:>4} {t.kind_right:>4}/{t.messages:<4} "
            f"{percent(t.kind_right, t.messages)} {t.recipient_found:>4}/{t.with_recipient:<4} "
            f"{percent(t.recipient_found, t.with_recipient)} {t.severity_agrees:>4}/"
            f"{t.with_severity:<4} {percent(t.severity_agrees, t.with_severity)}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", action="store_true", help="list every disagreement")
    args = parser.parse_args()
    outcomes = run(load_cases())
    print(table(tallies(outcomes, "system"), "mail system"))
    print()
    print(table(tallies(outcomes, "source"), "source"))
    total = tallies(outcomes, "source")["all"]
    print()
    print(f"classified right (kind): {percent(total.kind_right, total.messages).strip()}   "
          f"failed recipient found: "
          f"{percent(total.recipient_found, total.with_recipient).strip()}   "
          f"severity agrees: {percent(total.severity_agrees, total.with_severity).strip()}")
    bounces = [outcome for outcome in outcomes if outcome.case.kind == "bounce"]
    held = tallies(bounces, "source")["all"]
    families = {outcome.case.system for outcome in bounces}
    print(f"bounces ({held.messages}, {len(families)} MTA families): failed recipient found "
          f"{percent(held.recipient_found, held.with_recipient).strip()} (bar 98%)   "
          f"severity agrees with the status class "
          f"{percent(held.severity_agrees, held.with_severity).strip()} (bar 95%)")
    if args.misses:
        print("\n".join(["", "misses:", *total.misses]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
