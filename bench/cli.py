"""How long `alerts` takes to answer: `alerts --help` and light commands (`wards list`,
`status`, `post --help`, `subscribers export`, `replies list`, and a normal `post`, which
stores a new item each run) on an SQLite database of a few wards, each paired run by run
against the baseline `python -c "import click, sqlalchemy"` (A B A B ..., so that the
machine's drift hits both alike). Prints wall and CPU seconds (median of the runs, from
wait4) and the median of the per-pair ratios, with the load average. The goal is 1.5 at
most. The last line times `import click, sqlalchemy.orm` the same way: the floor of any
command that opens a session.

    python bench/cli.py [--runs 15] [--code DIR] [--only "wards list" --only status]

--code runs another checkout's code (its folder first on PYTHONPATH; the line `code:` shows
which `alerts` package was imported), for a before/after in the same conditions.

Every run reads compiled bytecode, as an installed product does (pip compiles it; a checkout
writes it on first use): a cache folder of its own (PYTHONPYCACHEPREFIX, filled by the
uncounted first pair, so neither checkout is written to), even where PYTHONDONTWRITEBYTECODE
is set. With --compile-each-run that variable is left as it is: where it is set, every run
compiles the product's modules again, which the baseline's libraries never do.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ("-c", "import click, sqlalchemy")
# A normal post to a ward with no subscribers: stored, audited and announced, and no email
# written at once. Named `post` (for --only and in the figures).
POST = ("post", "--ward", "W0", "--title", "Bench post", "--body", "Nothing goes at once.")
COMMANDS = (("--help",), ("wards", "list"), ("status",), ("post", "--help"),
            ("subscribers", "export"), ("replies", "list"), POST)
# Not a command: the floor of any command that opens a session (the ORM alone).
ORM = ("-c", "import click, sqlalchemy.orm")


def label(command: tuple[str, ...]) -> str:
    return "post" if command == POST else " ".join(command)


def timed(args: tuple[str, ...], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one run of `python ARGS`, in the folder of
    the config (not a checkout, whose `alerts` would come first on the path)."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, cwd=Path(env["ALERTS_CONFIG"]).parent)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"python {' '.join(args)} exited with {process.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def paired(args: tuple[str, ...], runs: int, env: dict[str, str]) -> str:
    """One line: `python ARGS`'s and the baseline's medians and the median per-pair ratios."""
    ours, base = [], []
    for _ in range(runs + 1):  # the first pair warms the disk cache and is not counted
        ours.append(timed(args, env))
        base.append(timed(BASELINE, env))
    ours, base = ours[1:], base[1:]
    wall = statistics.median(a[0] / b[0] for a, b in zip(ours, base, strict=True))
    cpu = statistics.median(a[1] / b[1] for a, b in zip(ours, base, strict=True))
    command = args[2:] if args[:2] == ("-m", "alerts.cli") else None
    name = " ".join(args[1:2]) if command is None else f"alerts {label(command)}"
    return (f"  {name:<31} wall {statistics.median(a[0] for a in ours):.3f} s"
            f"  cpu {statistics.median(a[1] for a in ours):.3f} s | baseline wall "
            f"{statistics.median(b[0] for b in base):.3f} s  cpu "
            f"{statistics.median(b[1] for b in base):.3f} s | ratio wall {wall:.2f}  "
            f"cpu {cpu:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--code", type=Path, default=ROOT)
    parser.add_argument("--compile-each-run", action="store_true",
                        help="leave PYTHONDONTWRITEBYTECODE as it is (no bytecode cache)")
    parser.add_argument("--only", action="append", metavar="COMMAND",
                        help="time only this command (its words, as listed); repeatable")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "alerts.toml"
        config.write_text(f'[database]\nurl = "sqlite:///{Path(folder) / "alerts.db"}"\n')
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("ALERTS_")},
               "PYTHONPATH": str(options.code.resolve()), "ALERTS_CONFIG": str(config)}
        if not options.compile_each_run:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(Path(folder) / "bytecode")
        for args in (("init",), *(("wards", "add", f"W{n}", f"Ward {n}", "--team-email",
                                   f"w{n}@police.example") for n in range(5))):
            subprocess.run([sys.executable, "-m", "alerts.cli", *args], env=env, check=True,
                           capture_output=True, cwd=folder)
        code = subprocess.run([sys.executable, "-c", "import alerts; print(alerts.__file__)"],
                              env=env, check=True, capture_output=True, text=True,
                              cwd=folder).stdout
        bytecode = "compiled every run" if "PYTHONPYCACHEPREFIX" not in env and env.get(
            "PYTHONDONTWRITEBYTECODE") else "cached"
        print(f"code: {code.strip()}; bytecode {bytecode}; {options.runs} pairs a command; "
              f"load average before: {os.getloadavg()[0]:.2f}")
        for command in COMMANDS:
            if options.only and label(command) not in options.only:
                continue
            print(paired(("-m", "alerts.cli", *command), options.runs, env))
        print(paired(ORM, options.runs, env))
        print(f"load average after: {', '.join(f'{load:.2f}' for load in os.getloadavg())}")


if __name__ == "__main__":
    main()
