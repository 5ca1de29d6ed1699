"""Whatever stops a command, the user gets one line on stderr and a non-zero exit, never a
traceback, and the line quotes no resident: not for a database another process holds
locked, not for a bug. Any of the product's errors (`AlertsError`) is told by its own
message, whichever command meets it. `alerts --debug` adds the traceback."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from alerts.cli import cli
from subscriptions.csv_io import CsvError
from subscriptions.languages import LanguageError
from subscriptions.postcodes import PostcodeError
from subscriptions.topics import TopicError
from subscriptions.wards import WardError
from tests.processes import environment, run_alerts

RESIDENT = "ann.jones@home.example"
LOCKED = "Error: the database is locked (another process holds it); try again"
UNEXPECTED = ("Error: an unexpected error stopped the command (RuntimeError); run it again as "
              "`alerts --debug ...` to see the traceback")
# A command, and a function of the service it calls (as the command's module names it).
COMMANDS = {
    "wards list": "alerts.cli.wards.list_wards",
    "schemes list": "alerts.cli.schemes.kept_schemes",
    "sources list": "alerts.cli.sources.list_sources",
    "users list": "alerts.cli.users.list_users",
    "audit": "alerts.cli.audit.recent",
    "status": "alerts.cli.status.outbox_report",
}
# Errors of the product that no command catches for itself.
ERRORS = [
    LanguageError("language 'xx' is not one of en, cy, en+cy"),
    TopicError("'scams' is not one of the topics"),
    CsvError("the file has no header line"),
    PostcodeError("'NOWHERE' is not a UK postcode (like SW1A 1AA)"),
]


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


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config on an SQLite database brought up to date, for commands that fail at once."""
    folder = tmp_path_factory.mktemp("errors")
    path = folder / "alerts.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{folder / "alerts.db"}"\n'
                    '[web]\nsecret_key = "cli-tests-secret"\n')
    assert CliRunner().invoke(cli, ["--config", str(path), "init"]).exit_code == 0
    return path


def failing_with(error: Exception) -> object:
    def broken(*_args: object, **_kwargs: object) -> object:
        raise error
    return broken


@pytest.mark.parametrize(("command", "error"), list(zip(COMMANDS, ERRORS * 2, strict=False)),
                         ids=list(COMMANDS))
def test_any_error_of_the_product_in_any_command_is_its_own_message_in_one_line(
        database: Path, monkeypatch: pytest.MonkeyPatch, command: str, error: Exception) -> None:
    monkeypatch.setattr(COMMANDS[command], failing_with(error))
    result = CliRunner().invoke(cli, ["--config", str(database), *command.split()])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"Error: {error}"]
    assert result.stdout == ""


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unknown_error_in_any_command_is_one_line_without_its_text(
        database: Path, monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    monkeypatch.setattr(COMMANDS[command], failing_with(RuntimeError(f"no ward for {RESIDENT}")))
    result = CliRunner().invoke(cli, ["--config", str(database), *command.split()])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [UNEXPECTED]
    assert RESIDENT not in result.stdout + result.stderr


def test_an_error_whose_message_spans_lines_is_still_one_line(
        database: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(COMMANDS["wards list"],
                        failing_with(WardError("the file cannot be read:\nline 3 is cut short")))
    result = CliRunner().invoke(cli, ["--config", str(database), "wards", "list"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: the file cannot be read: line 3 is cut short"]
