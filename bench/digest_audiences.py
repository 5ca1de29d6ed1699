"""What residents' own choices cost when digests are queued: topics followed and language
(English, Welsh, bilingual) split a ward's list into audiences, each rendered once.

    python bench/digest_audiences.py [--subscribers 20000] [--wards 10]

Setup (not timed): a fresh SQLite database per run (`alerts init`'s migrations) with
`--wards` wards and `--subscribers` confirmed weekly subscribers spread evenly; each ward
gets six posts, each tagged with one of three topics, plus two untagged posts.

Measured, `queue_digests` for every ward (what `alerts digest send --all` does: compose,
render, INSERT ... SELECT fan-out, ledger), best of three runs on a fresh copy each time:
  Baseline  every resident follows everything and reads the ward's language: 1 audience a ward.
  Choices   residents spread over 4 topic choices (all, scams, burglary, scams+burglary) and
            3 languages (English, Welsh, bilingual): 12 audiences a ward, so 12 renders.
The ratio Choices / Baseline is what the choices cost; the deliveries must be equal.

No timed unit tests: this script prints its figures; nothing asserts a speed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

TOPIC_CHOICES = [None, "scams", "burglary", "burglary,scams"]
LANGUAGES = [None, "cy", "bilingual"]
POSTS = [("Courier fraud calls", "scams"), ("Doorstep traders", "scams"),
         ("Sheds forced open", "burglary"), ("Garage break-in", "burglary"),
         ("Catalytic converters taken", "vehicle crime"), ("Vans broken into", "vehicle crime"),
         ("New PCSO for the ward", ""), ("Thank you for coming to the meeting", "")]


def populate(url: str, wards: int, subscribers: int, *, choices: bool) -> None:
    from deliver import add_residents

    from alerts.core.db import make_engine, migrate, session_factory
    from alerts.sources.items import ItemKind, store_items
    from alerts.sources.officer import officer_item
    from alerts.sources.registry import officer_source
    from subscriptions.wards import Ward, add_ward

    engine = make_engine(url)
    migrate(engine)
    factory = session_factory(engine)
    joined = datetime.now(UTC) - timedelta(days=2)
    with factory() as session, session.begin():
        ward_ids = [add_ward(session, f"W{n:03d}", f"Ward {n:03d}",
                             f"team-w{n:03d}@police.example").id for n in range(wards)]
    add_residents(
        engine, ward_ids, subscribers, joined=joined, source="bench/digest_audiences.py",
        # Every twelve residents a ward, so that each ward has all 12 audiences.
        homes=[ward_ids[(n // 12) % wards] for n in range(subscribers)],
        language=lambda n: LANGUAGES[(n // len(TOPIC_CHOICES)) % 3] if choices else None,
        topics=lambda n: TOPIC_CHOICES[n % len(TOPIC_CHOICES)] if choices else None)
    now = datetime.now(UTC)
    known = ("scams", "burglary", "vehicle crime")
    with factory() as session, session.begin():
        for ward_id in ward_ids:
            ward = session.get(Ward, ward_id)
            assert ward is not None
            store_items(session, officer_source(session, ward), [
                officer_item(title=title, body=f"<p>{title}: what happened and what to do.</p>",
                             kind=ItemKind.POST, starts=None, ends=None, location=None,
                             now=now, topics=[topic] if topic else [], known_topics=known)
                for title, topic in POSTS])
    engine.dispose()


def measure(template: Path, folder: Path) -> tuple[float, int, int]:
    from alerts.core.config import Settings
    from alerts.core.db import make_engine, session_factory
    from alerts.usecases.digest_rounds import queue_digests

    best, deliveries, messages = float("inf"), 0, 0
    for run in range(3):
        copy = folder / f"run{run}.db"
        shutil.copy(template, copy)
        engine = make_engine(f"sqlite:///{copy}")
        factory = session_factory(engine)
        started = time.perf_counter()
        outcomes = queue_digests(factory, Settings())
        best = min(best, time.perf_counter() - started)
        deliveries = sum(o.deliveries for o in outcomes)
        messages = sum(len(o.message_ids) for o in outcomes)
        engine.dispose()
    return best, deliveries, messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--wards", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        results = {}
        for name, choices in (("baseline", False), ("choices", True)):
            template = folder / f"{name}.db"
            populate(f"sqlite:///{template}", args.wards, args.subscribers, choices=choices)
            results[name] = measure(template, folder)
    (base_s, base_d, base_m), (choice_s, choice_d, choice_m) = results.values()
    print(f"{args.subscribers:,} subscribers in {args.wards} wards, queue_digests for every "
          "ward, SQLite, best of 3")
    print(f"  baseline (everyone follows all, ward language): {base_s:6.2f} s, "
          f"{base_m} messages rendered, {base_d:,} deliveries queued")
    print(f"  choices (4 topic sets x 3 languages):            {choice_s:6.2f} s, "
          f"{choice_m} messages rendered, {choice_d:,} deliveries queued")
    print(f"  ratio choices / baseline: {choice_s / base_s:.2f}")
    if base_d != choice_d:
        sys.exit(f"deliveries differ: {base_d} vs {choice_d}")


if __name__ == "__main__":
    main()
