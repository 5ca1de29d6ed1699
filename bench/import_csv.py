"""Importing a large CSV: 1,000,000 rows with a few bad ones, through `alerts subscribers
import`, on SQLite and on PostgreSQL: rows a second and peak memory (the process's maximum
resident set, from wait4), and the same file imported again (every row already there).

    python bench/import_csv.py [--rows 1000000] [--small 10000] [--store sqlite|postgresql]

Baselines measured in the same run: the peak memory of a bare `python -c "import
alerts.cli.app"` and of a --small import (flat memory: the big import's peak is about the
small one's), and Python's csv module reading and email-validator checking the same file
with no database at all (the floor any import pays). Checks that every good row landed,
once, and that every bad line was named.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from email_validator import EmailNotValidError, validate_email  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from alerts.core.db import make_engine  # noqa: E402
from subscriptions.subscribers import Subscription  # noqa: E402
from tests.postgres import postgres_cluster  # noqa: E402

BAD_LINES = {1_001: "not-an-address", 7_777: "two@@signs.example",
             523_456: "spaces in@x.org"}


def write_csv(path: Path, rows: int) -> int:
    """The file, Excel-style (UTF-8 with BOM, CRLF), written as it goes; returns how many
    rows are good."""
    good = 0
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["email", "ward", "name", "frequency", "scheme"])
        for n in range(rows):
            line = n + 2
            email = BAD_LINES.get(line, f"resident{n}@home.example")
            writer.writerow([email, f"W{n % 20:02d}", f"Resident {n}",
                             ("weekly", "daily")[n % 2], f"Street {n % 300}"])
            good += line not in BAD_LINES
    return good


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_mb: float
    stderr: str


def measured(*command: str) -> Run:
    """Run a command to its end: its time and its peak resident memory (wait4's ru_maxrss,
    the process's own, kilobytes on Linux)."""
    with tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        took = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return Run(took, usage.ru_maxrss / 1024, err.read())


def alerts(config: Path, *args: str) -> Run:
    return measured(sys.executable, "-m", "alerts.cli", "--config", str(config), *args)


NewDatabase = Callable[[Path, str], str]


@contextlib.contextmanager
def stores(names: list[str]) -> Iterator[dict[str, NewDatabase]]:
    """Each store's way to make a new empty database and name its URL (PostgreSQL: in a
    throw-away cluster)."""
    with contextlib.ExitStack() as stack:
        made: dict[str, NewDatabase] = {}
        if "sqlite" in names:
            made["sqlite"] = lambda folder, tag: f"sqlite:///{folder / (tag + '.db')}"
        if "postgresql" in names:
            cluster = stack.enter_context(postgres_cluster())
            made["postgresql"] = lambda folder, tag: cluster.url(cluster.create_database())
        yield made


def prepared(url: str, folder: Path, tag: str) -> Path:
    config = folder / f"{tag}.toml"
    config.write_text(f'[database]\nurl = "{url}"\n')
    alerts(config, "init")
    wards = folder / "wards.csv"
    wards.write_text("code,name,team_email\n" + "".join(
        f"W{n:02d},Ward {n},team{n}@police.example\n" for n in range(20)))
    alerts(config, "wards", "import", str(wards))
    return config


def subscriptions(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return connection.scalar(select(func.count()).select_from(Subscription)) or 0
    finally:
        engine.dispose()


def checked(run: Run, url: str, good: int, bad: int, what: str) -> None:
    named = [line for line in run.stderr.splitlines() if ": line " in line]
    landed = subscriptions(url)
    if landed != good or len(named) != bad:
        raise SystemExit(f"wrong result ({what}): {landed} subscriptions (want {good}), "
                         f"{len(named)} bad lines named (want {bad})\n{run.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--store", action="append", choices=["sqlite", "postgresql"])
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, stores(options.store or
                                                      ["sqlite", "postgresql"]) as made:
        folder = Path(tmp)
        big, small = folder / "members.csv", folder / "small.csv"
        good, small_good = write_csv(big, options.rows), write_csv(small, options.small)
        size_mb = big.stat().st_size / 1e6

        started = time.perf_counter()
        with big.open(encoding="utf-8-sig", newline="") as handle:
            for record in csv.DictReader(handle):
                with contextlib.suppress(EmailNotValidError):
                    validate_email(record["email"], check_deliverability=False)
        floor = time.perf_counter() - started
        bare = measured(sys.executable, "-c", "import alerts.cli.app")

        print(f"CSV import: {options.rows:,} rows ({options.rows - good} bad, {size_mb:.0f} MB),"
              f" {os.cpu_count()} cores")
        print(f"  baseline, csv + email-validator alone: {floor:.1f} s, "
              f"{options.rows / floor:,.0f} rows/s")
        print(f"  baseline, `python -c 'import alerts.cli.app'`: {bare.peak_mb:.0f} MB peak")
        for store, new_url in made.items():
            url = new_url(folder, f"{store}-small")
            first = alerts(prepared(url, folder, f"{store}-small"), "subscribers", "import",
                           str(small), "--confirmed")
            checked(first, url, small_good, options.small - small_good, "small")
            url = new_url(folder, store)
            config = prepared(url, folder, store)
            once = alerts(config, "subscribers", "import", str(big), "--confirmed")
            checked(once, url, good, options.rows - good, "import")
            again = alerts(config, "subscribers", "import", str(big), "--confirmed")
            checked(again, url, good, options.rows - good, "again")
            print(f"  {store}: {options.small:,} rows: {first.seconds:.1f} s, "
                  f"{first.peak_mb:.0f} MB peak")
            for what, run in (("import", once), ("again", again)):
                print(f"  {store}: {options.rows:,} rows, {what}: {run.seconds:.1f} s, "
                      f"{options.rows / run.seconds:,.0f} rows/s "
                      f"({floor / run.seconds:.2f} x the floor), {run.peak_mb:.0f} MB peak "
                      f"({run.peak_mb / first.peak_mb:.2f} x the {options.small:,}-row "
                      f"import, {run.peak_mb / bare.peak_mb:.2f} x the bare process)")
        print(f"  every good row landed once ({good:,}); each bad line named")


if __name__ == "__main__":
    main()
