"""Whatever stops a command, the user gets one line on stderr and a non-zero exit, never a
traceback, and the line quotes no resident: not for a database another process holds
locked, not for a bug. `alerts --debug` adds the traceback."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from alerts.cli import cli
from tests.processes import environment, run_alerts

RESIDENT = "ann.jones@home.example"
LOCKED = "Error: the database is locked (another process holds it); try again"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config on an SQLite database with a ward, ready for residents."""
    path = tmp_path / "alerts.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "alerts.db"}"\n'
                    '[web]\nsecret_key = "cli-tests-secret"\n')
    assert run_alerts(path, "init").returncode == 0
    assert run_alerts(path, "wards", "add", "RIV", "Riverside",
                      "--team-email", "riv@police.example").returncode == 0
    return path


def add_resident(config: Path) -> subprocess.CompletedProcess[str]:
    """`alerts subscribers add` in its own process, waiting at most 0.2 s for a lock."""
    return subprocess.run(
        [sys.executable, "-m", "alerts.cli", "--config", str(config), "subscribers", "add",
         RESIDENT, "--ward", "RIV", "--confirmed"],
        capture_output=True, text=True, cwd=config.parent, timeout=60, check=False,
        env={**environment(), "ALERTS_DATABASE_BUSY_TIMEOUT_SECONDS": "0.2"})


def test_a_write_to_a_database_another_process_holds_is_one_line_naming_no_one(
        config: Path, tmp_path: Path) -> None:
    holder = sqlite3.connect(tmp_path / "alerts.db", isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        refused = add_resident(config)
    finally:
        holder.close()
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [LOCKED]
    assert "ann" not in refused.stdout + refused.stderr.lower()
    # Once the other process lets go, the same command goes through.
    added = add_resident(config)
    assert added.returncode == 0, added.stderr


def test_an_unexpected_error_is_one_line_and_debug_adds_its_traceback(
        config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object) -> object:
        raise RuntimeError(f"no ward for {RESIDENT}")

    monkeypatch.setattr("alerts.cli.wards.list_wards", broken)
    plain = CliRunner().invoke(cli, ["--config", str(config), "wards", "list"])
    assert plain.exit_code == 1
    assert plain.stderr.splitlines() == [
        "Error: an unexpected error stopped the command (RuntimeError); run it again as "
        "`alerts --debug ...` to see the traceback"]
    assert RESIDENT not in plain.stdout + plain.stderr

    debug = CliRunner().invoke(cli, ["--debug", "--config", str(config), "wards", "list"])
    assert debug.exit_code == 1
    lines = debug.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert f"RuntimeError: no ward for {RESIDENT}" in lines
    assert lines[-1] == plain.stderr.splitlines()[0]
