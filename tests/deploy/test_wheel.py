"""The product installed from its wheel, as deploy/ installs it (`pip install .`, not `-e`):
the wheel carries the templates (email, web, print) and every other file the product reads
at run time, and an installed copy, with no checkout in sight, renders its emails and its
pages: `alerts demo` delivers its 15 emails, and the front door, the sign-up form and a
ward's archive answer 200."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What a build reads: the same as deploy/Containerfile copies.
SOURCES = ("pyproject.toml", "setup.py", "README.md", "alerts", "subscriptions", "templates")

# Run by the installed copy alone: its demo's config, the web app on it, three pages.
PAGES = """
import sys
from fastapi.testclient import TestClient
import alerts
from alerts.core.config import load_settings
from alerts.core.db import make_engine, session_factory
from alerts.web.app import create_app

print(alerts.__file__)
settings = load_settings(sys.argv[1])
app = create_app(session_factory(make_engine(settings.database.url)), settings=settings)
with TestClient(app, base_url=settings.web.base_url) as client:
    for path in ("/", "/subscribe", "/wards/RIV/"):
        answer = client.get(path)
        print(path, answer.status_code, "<html" in answer.text)
"""


def build_and_install(tmp_path: Path) -> Path:
    """The wheel built from a copy of the sources (the checkout's build/ and egg-info are
    left alone) and installed into a folder of its own; that folder."""
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif (ROOT / name).is_file():
            shutil.copy(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-cache-dir",
                    "-w", str(tmp_path / "dist"), str(source)],
                   check=True, capture_output=True, timeout=300)
    [wheel] = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for template in (ROOT / "templates").rglob("*.*"):
        assert f"alerts/{template.relative_to(ROOT)}" in names, template
    # The package's own data: migrations' template, demo data, the Welsh catalogue.
    for data in (ROOT / "alerts").rglob("*.*"):
        if data.suffix not in (".py", ".pyc"):
            assert str(data.relative_to(ROOT)) in names, data
    installed = tmp_path / "installed"
    subprocess.run([*pip, "install", "--no-deps", "--no-cache-dir", "--target",
                    str(installed), str(wheel)], check=True, capture_output=True, timeout=300)
    return installed


def run_installed(installed: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Python on the installed copy and the dependencies in this environment's
    site-packages, nothing else: `-S` skips the .pth files, among them the editable
    install's, which would find the checkout."""
    paths = sysconfig.get_paths()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("ALERTS_", "PYTHON"))}
    env["PYTHONPATH"] = os.pathsep.join(
        dict.fromkeys([str(installed), paths["purelib"], paths["platlib"]]))
    return subprocess.run([sys.executable, "-S", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_an_installed_wheel_renders_the_demos_emails_and_the_pages(tmp_path: Path) -> None:
    installed = build_and_install(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    demo = run_installed(installed, elsewhere, "-m", "alerts.cli", "demo", "--dir", "demo-run")

    assert demo.returncode == 0, demo.stdout + demo.stderr
    emails = list((elsewhere / "demo-run" / "outbox" / "new").iterdir())
    assert len(emails) == 15
    pages = run_installed(installed, elsewhere, "-c", PAGES,
                          str(elsewhere / "demo-run" / "alerts.toml"))
    assert pages.returncode == 0, pages.stderr
    where, *answers = pages.stdout.splitlines()
    assert where == str(installed / "alerts" / "__init__.py")
    assert answers == ["/ 200 True", "/subscribe 200 True", "/wards/RIV/ 200 True"]
