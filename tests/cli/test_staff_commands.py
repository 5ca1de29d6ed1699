"""`alerts users` and `alerts schemes`: staff accounts and schemes from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker

from alerts.accounts.audit import AuditEntry
from alerts.accounts.users import User, find_user, verify_password
from alerts.cli import cli
from alerts.core.config import Settings


@pytest.fixture
def config(tmp_path: Path, settings: Settings) -> Path:
    path = tmp_path / "alerts.toml"
    path.write_text(f'[database]\nurl = "{settings.database.url}"\n')
    runner = CliRunner()
    assert runner.invoke(cli, ["--config", str(path), "init"]).exit_code == 0
    assert runner.invoke(cli, ["--config", str(path), "wards", "add", "RIV", "Riverside",
                               "--team-email", "riv@police.example"]).exit_code == 0
    return path


def run(config: Path, *args: str, data: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args], input=data)


def users_in(settings: Settings) -> dict[str, User]:
    engine = create_engine(settings.database.url)
    try:
        with sessionmaker(engine)() as session:
            return {u.email: u for u in session.scalars(select(User))}
    finally:
        engine.dispose()


def test_an_officer_is_added_with_wards_and_a_hashed_password(
        config: Path, settings: Settings) -> None:
    result = run(config, "users", "add", "PC.Jones@Police.example", "--role", "officer",
                 "--ward", "RIV", "--password-stdin", data="a long enough password\n")
    assert result.exit_code == 0, result.output
    listed = json.loads(run(config, "users", "list", "--json").stdout)
    assert listed == [{"email": "pc.jones@police.example", "name": "", "role": "officer",
                       "wards": ["RIV"], "schemes": [], "has_password": True}]
    user = users_in(settings)["pc.jones@police.example"]
    assert user.password_hash is not None and user.password_hash.startswith("$argon2id$")
    assert "a long enough password" not in user.password_hash


@pytest.mark.parametrize(("args", "message"), [
    (["--role", "officer"], "an officer needs at least one ward"),
    (["--role", "officer", "--ward", "NOPE"], "NOPE"),
    (["--role", "coordinator"], "a coordinator needs at least one scheme"),
    (["--role", "admin", "--ward", "RIV"], "an administrator has every ward"),
])
def test_a_user_that_cannot_work_is_refused_in_one_line(config: Path, args: list[str],
                                                        message: str) -> None:
    result = run(config, "users", "add", "x@police.example", *args, "--no-password")
    assert result.exit_code == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_short_password_is_refused(config: Path) -> None:
    result = run(config, "users", "add", "x@police.example", "--role", "admin",
                 "--password-stdin", data="short\n")
    assert result.exit_code == 1 and "at least 12 characters" in result.stderr


def test_setting_a_password_ends_the_old_sessions_and_removal_ends_the_account(
        config: Path, settings: Settings) -> None:
    run(config, "users", "add", "a@police.example", "--role", "admin", "--no-password")
    before = users_in(settings)["a@police.example"].session_version
    result = run(config, "users", "set-password", "a@police.example", "--password-stdin",
                 data="another long password\n")
    assert result.exit_code == 0, result.output
    assert users_in(settings)["a@police.example"].session_version == before + 1
    assert run(config, "users", "remove", "a@police.example").exit_code == 0
    assert "a@police.example" not in users_in(settings)
    assert run(config, "users", "remove", "a@police.example").exit_code == 1


def test_a_scheme_is_added_with_its_coordinator_and_every_change_is_audited(
        config: Path, settings: Settings) -> None:
    result = run(config, "schemes", "add", "Mill Lane Watch", "--ward", "RIV",
                 "--coordinator", "sam@home.example")
    assert result.exit_code == 0, result.output
    assert json.loads(run(config, "schemes", "list", "--json").stdout) == [
        {"name": "Mill Lane Watch", "ward": "RIV", "members": 0, "receiving": 0}]
    coordinator = users_in(settings)["sam@home.example"]
    assert coordinator.role == "coordinator" and coordinator.password_hash is None
    again = run(config, "schemes", "add", "Mill Lane Watch", "--ward", "RIV")
    assert again.exit_code == 1 and "already a scheme" in again.stderr
    engine = create_engine(settings.database.url)
    with sessionmaker(engine)() as session:
        actions = [e.action for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
        assert find_user(session, "sam@home.example") is not None
        assert not verify_password(session, find_user(session, "sam@home.example"), "")
    engine.dispose()
    assert actions == ["scheme.add", "scheme.coordinator"]


def test_the_audit_log_lists_changes_newest_first(config: Path) -> None:
    run(config, "users", "add", "a@police.example", "--role", "admin", "--no-password")
    run(config, "users", "remove", "a@police.example")
    entries = json.loads(run(config, "audit", "--json").stdout)
    assert [e["action"] for e in entries] == ["user.remove", "user.add"]
    assert all(e["actor"].startswith("command line (") for e in entries)
