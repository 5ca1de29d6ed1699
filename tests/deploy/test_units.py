"""The systemd units in deploy/systemd: valid for systemd itself (`systemd-analyze verify`,
where the machine has it), hardened, and starting real `alerts` commands with the config and
the environment file the README describes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from alerts.cli import cli
from alerts.core.config import load_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = {"alerts-run.service": "run", "alerts-worker@.service": "worker"}
INSTALLED = "/opt/alerts/.venv/bin/alerts"
HARDENING = {
    "User": "alerts",
    "StateDirectory": "alerts",
    "WorkingDirectory": "/var/lib/alerts",
    "ReadWritePaths": "/var/lib/alerts",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "SystemCallFilter": "@system-service",
    "EnvironmentFile": "/etc/alerts/alerts.env",
}


def directives(path: Path) -> dict[str, dict[str, list[str]]]:
    """Section → key → every value it is given (systemd allows a key more than once)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_each_unit_is_hardened_and_runs_a_real_alerts_command(unit: str) -> None:
    service = directives(DEPLOY / "systemd" / unit)["Service"]
    for key, value in HARDENING.items():
        assert value in service.get(key, []), f"{unit}: {key}={value}"
    [exec_start] = service["ExecStart"]
    program, *arguments = exec_start.split()
    assert program == INSTALLED
    assert arguments == ["--config", "/etc/alerts/alerts.toml", UNITS[unit]]
    result = CliRunner().invoke(cli, [*arguments, "--help"])
    assert result.exit_code == 0 and f" {UNITS[unit]} [OPTIONS]" in result.output, result.output


def test_systemd_accepts_both_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        # Not skipped: the test above has checked the units by reading them.
        return
    # As installed, but pointing at this checkout's `alerts` (verify checks it exists).
    here = str(Path(sys.executable).parent / "alerts")
    for unit in UNITS:
        text = (DEPLOY / "systemd" / unit).read_text(encoding="utf-8")
        (tmp_path / unit).write_text(text.replace(INSTALLED, here), encoding="utf-8")
    result = subprocess.run(
        [analyze, "verify", str(tmp_path / "alerts-run.service"),
         str(tmp_path / "alerts-worker@1.service")],
        capture_output=True, text=True, timeout=60, check=False)
    # An unknown or misspelt key is only a warning: no output at all is the pass.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_environment_file_example_sets_real_settings() -> None:
    env = {}
    for line in (DEPLOY / "alerts.env.example").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value
    assert set(env) == {"ALERTS_WEB_SECRET_KEY", "ALERTS_DATABASE_URL"}
    settings = load_settings(environ=env)
    assert settings.web.secret_key == env["ALERTS_WEB_SECRET_KEY"] == "change-me"
    assert settings.database.url == env["ALERTS_DATABASE_URL"]
