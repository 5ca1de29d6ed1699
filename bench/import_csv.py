"""Importing a coordinator's CSV: 50,000 rows with a few bad ones, through `alerts
subscribers import`, timed from the command's start to its exit.

    python bench/import_csv.py [--rows 50000]

In the same run it measures a baseline: Python's csv module reading and email-validator
checking the same file, with no database at all (the floor any import pays). Prints
rows a second for both and their ratio, and checks that every good row landed and every
bad line was named.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

BAD_LINES = {1_001: "not-an-address", 7_777: "two@@signs.example", 23_456: "spaces in@x.org"}


def write_csv(path: Path, rows: int) -> int:
    """The file, Excel-style (UTF-8 with BOM, CRLF); returns how many rows are good."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["email", "ward", "name", "frequency", "scheme"])
    good = 0
    for n in range(rows):
        line = n + 2
        email = BAD_LINES.get(line, f"resident{n}@home.example")
        ward = f"W{n % 20:02d}"
        writer.writerow([email, ward, f"Resident {n}", ("weekly", "daily")[n % 2],
                         f"Street {n % 300}"])
        good += line not in BAD_LINES
    path.write_bytes("\ufeff".encode() + out.getvalue().encode("utf-8"))
    return good


def alerts(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "alerts.cli", "--config", str(config), *args],
                          capture_output=True, text=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = folder / "alerts.toml"
        config.write_text(f'[database]\nurl = "sqlite:///{folder / "alerts.db"}"\n')
        alerts(config, "init")
        wards = folder / "wards.csv"
        wards.write_text("code,name,team_email\n" + "".join(
            f"W{n:02d},Ward {n},team{n}@police.example\n" for n in range(20)))
        alerts(config, "wards", "import", str(wards))
        members = folder / "members.csv"
        good = write_csv(members, options.rows)

        started = time.perf_counter()
        with members.open(encoding="utf-8-sig", newline="") as handle:
            for record in csv.DictReader(handle):
                with contextlib.suppress(EmailNotValidError):
                    validate_email(record["email"], check_deliverability=False)
        floor = time.perf_counter() - started

        started = time.perf_counter()
        result = alerts(config, "subscribers", "import", str(members), "--confirmed")
        took = time.perf_counter() - started
        named = [line for line in result.stderr.splitlines() if ": line " in line]
        exported = alerts(config, "subscribers", "export").stdout.count("\n") - 1
        bad = options.rows - good
        if exported != good or len(named) != bad:
            raise SystemExit(f"wrong result: {exported} rows exported (want {good}), "
                             f"{len(named)} bad lines named (want {bad})\n"
                             f"{result.stderr[-2000:]}")
        print(f"CSV import: {options.rows:,} rows ({bad} bad), SQLite, 2 cores")
        print(f"  `alerts subscribers import`: {took:.1f} s, {options.rows / took:,.0f} rows/s "
              "(process start to exit)")
        print(f"  baseline, csv + email-validator alone: {floor:.1f} s, "
              f"{options.rows / floor:,.0f} rows/s")
        print(f"  ratio import/baseline time: {took / floor:.1f}")
        print(f"  every good row landed ({exported:,}); each bad line named: "
              + ", ".join(sorted(line.split(': line ')[1].split(':')[0] for line in named)))


if __name__ == "__main__":
    main()
