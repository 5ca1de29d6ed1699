"""The compose file in deploy/: PostgreSQL, one `alerts run`, two `alerts worker`s and nginx
in front, built from deploy/Containerfile; every file, volume and service it names exists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from alerts.cli import cli

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text("utf-8"))
    return loaded


def test_postgres_one_run_two_workers_and_a_proxy() -> None:
    services = compose()["services"]
    commands = {name: s.get("command") for name, s in services.items()}
    assert [c for c in commands.values() if c == ["run"]] == [["run"]]
    assert [c for c in commands.values() if c == ["worker"]] == [["worker"], ["worker"]]
    assert services["db"]["image"].startswith("docker.io/library/postgres:")
    assert services["proxy"]["image"].startswith("docker.io/library/nginx:")
    for name, command in commands.items():
        if command is None:
            continue
        service = services[name]
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Containerfile"}
        assert service["env_file"] == "alerts.env"
        assert service["depends_on"] == {"db": {"condition": "service_healthy"}}
        assert "./alerts.toml:/etc/alerts/alerts.toml:ro" in service["volumes"]
        result = CliRunner().invoke(cli, [*command, "--help"])
        assert result.exit_code == 0, result.output
    # nginx reaches `run` on 127.0.0.1, as on a host: the same web.trusted_proxies.
    assert services["proxy"]["network_mode"] == "service:run"
    assert "run" in services["proxy"]["depends_on"]
    assert {"80:80", "443:443"} <= set(services["run"]["ports"])


def test_everything_it_names_exists() -> None:
    document = compose()
    services = document["services"]
    for service in services.values():
        for dependency in service.get("depends_on", ()):
            assert dependency in services
        for volume in service.get("volumes", ()):
            source = volume.split(":")[0]
            if source.startswith("./"):
                # alerts.toml and tls/ are the operator's; the nginx files are ours.
                if source.startswith("./nginx/"):
                    assert (DEPLOY / source).is_file(), source
            else:
                assert source in document["volumes"], source
        for secret in service.get("secrets", ()):
            assert secret in document["secrets"]
    containerfile = (DEPLOY / "Containerfile").read_text("utf-8")
    assert containerfile.startswith("#") and "FROM python:3.11-slim" in containerfile
    assert "USER alerts" in containerfile and "libpango-1.0-0" in containerfile
    root = DEPLOY.parent
    for line in containerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (root / source).exists(), source
