"""A command loads what it uses and nothing more: `alerts --help` and the light commands start
without the heavy libraries (PDF, web, SMTP, bounce parsing, translations, signing, feeds),
which load only in the commands that need them, and without the product's own modules they do
not read. Checked by the modules a real process has imported, never by a timing (the figures
are in bench/cli.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from alerts.cli import cli
from tests.processes import environment, run_alerts

HEAVY = ("weasyprint", "fastapi", "starlette", "uvicorn", "aiosmtpd", "aiosmtplib", "flufl",
         "babel", "dkim", "cryptography", "feedparser", "icalendar", "prometheus_client",
         "jinja2", "alembic", "apscheduler", "httpx", "nh3", "css_inline", "email_validator")
# The product's own modules that `wards list` and `status` have no use for: the pipeline's
# event bus, the inbound parsers with their tables and regexes, the MIME writer, residents'
# records (`status` reads the journal's and the outbox's counts, not the mail behind them);
# on SQLite, PostgreSQL's dialect and drivers.
UNREAD = ("alerts.core.events", "alerts.inbound.classify", "alerts.inbound.bounce_formats",
          "alerts.inbound.mail", "alerts.mail.mime", "alerts.delivery.rejections",
          "subscriptions.subscribers", "subscriptions.suppression", "email.policy",
          "sqlalchemy.dialects.postgresql")
# Runs one command as the `alerts` script does, then names every module the process loaded.
PROBE = """\
import sys
from alerts.cli import main
sys.argv = ["alerts", *sys.argv[1:]]
try:
    main()
except SystemExit as stop:
    assert not stop.code, stop.code
print("-- modules --", *sorted(sys.modules), sep="\\n")
print("-- frozen --", __import__("gc").get_freeze_count())
"""


def probed(*args: str, cwd: Path) -> tuple[list[str], int]:
    """The modules the command's process loaded, and how many objects it had frozen out of
    the collector's reach."""
    ran = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                         cwd=cwd, env=environment(), timeout=120, check=False)
    assert ran.returncode == 0, ran.stderr
    modules, frozen = ran.stdout.split("-- modules --\n", 1)[1].split("-- frozen --")
    return modules.split(), int(frozen)


def loaded_by(*args: str, cwd: Path) -> list[str]:
    return probed(*args, cwd=cwd)[0]


def heavy(modules: list[str]) -> list[str]:
    return [name for name in modules if name.startswith(HEAVY)]


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config on an SQLite database, initialised, with a ward (the commands only read it)."""
    folder = tmp_path_factory.mktemp("light")
    path = folder / "alerts.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{folder / "alerts.db"}"\n')
    assert run_alerts(path, "init").returncode == 0
    assert run_alerts(path, "wards", "add", "RIV", "Riverside",
                      "--team-email", "riv@police.example").returncode == 0
    return path


@pytest.mark.parametrize(("command", "own"), [(("--help",), None),
                                              (("post", "--help"), "alerts.cli.post")])
def test_help_loads_no_other_command_no_model_and_no_heavy_library(
        tmp_path: Path, command: tuple[str, ...], own: str | None) -> None:
    modules = loaded_by(*command, cwd=tmp_path)
    assert heavy(modules) == []
    assert [name for name in modules if name.startswith("alerts.cli.")] == sorted(
        filter(None, ["alerts.cli.app", own]))
    assert "sqlalchemy.orm" not in modules


@pytest.mark.parametrize("command", [("wards", "list"), ("wards", "list", "--json"),
                                     ("status",), ("subscribers", "export"),
                                     ("replies", "list")])
def test_a_light_command_loads_no_heavy_library(config: Path, command: tuple[str, ...]) -> None:
    modules = loaded_by("--config", str(config), *command, cwd=config.parent)
    assert heavy(modules) == []


def test_a_normal_post_that_writes_no_message_loads_no_renderer_or_cron_parser(
        config: Path) -> None:
    """A post, advice or session no immediate subscriber hears writes no email: the mail
    renderer (Jinja, Babel, CSS inlining, calendar invites) and the cron parser do not load.
    nh3 does: it cleans the officer's text, a check every post passes through."""
    modules = loaded_by("--config", str(config), "post", "--ward", "RIV", "--title",
                        "Bike marking on Saturday", "--body", "At the <b>library</b>, 10-12.",
                        cwd=config.parent)
    assert [name for name in heavy(modules) if not name.startswith("nh3")] == []
    assert "alerts.mail.render" not in modules
    assert "sqlalchemy.dialects.postgresql" not in modules  # the database is SQLite


def test_a_normal_post_loads_none_of_the_officers_inbox(config: Path) -> None:
    """Posting checks the officer's ward and reports bad input through `alerts.usecases.staff`,
    not through the officers' services: the replies inbox, votes and digest previews, with
    their models, do not load for a post. Nor does the tz database, which only a session's
    times without a zone are read in."""
    modules = loaded_by("--config", str(config), "post", "--ward", "RIV", "--title",
                        "Bike marking on Saturday", "--body", "At the library, 10-12.",
                        cwd=config.parent)
    assert "alerts.usecases.posting" in modules
    assert sorted(set(modules) & {"alerts.usecases.officers", "alerts.usecases.votes",
                                  "alerts.inbound.replies", "alerts.mail.vote_links",
                                  "zoneinfo"}) == []


@pytest.mark.parametrize("command", [("wards", "list"), ("status",), ("status", "--json")])
def test_a_light_command_loads_no_model_or_parser_it_does_not_read(
        config: Path, command: tuple[str, ...]) -> None:
    modules = loaded_by("--config", str(config), *command, cwd=config.parent)
    assert sorted(set(modules) & set(UNREAD)) == []


def test_the_collector_does_not_walk_again_what_the_imports_made(config: Path) -> None:
    """`alerts` freezes the objects its imports made before the command runs, and those its
    command's module made once loaded (they live as long as the process): the collector's
    passes then walk only what the command does."""
    before_any_command = probed("--help", cwd=config.parent)[1]
    assert before_any_command > 10_000
    with_its_module = probed("--config", str(config), "wards", "list", cwd=config.parent)[1]
    assert with_its_module > before_any_command + 1_000


def test_a_post_freezes_what_its_service_and_models_made(config: Path) -> None:
    """A post loads the posting service, the pipeline and their models once its options are
    checked (`post --help` does without them): with the collector paused, then frozen, as a
    command's own module is, so that no pass walks them while they load or after."""
    help_only = probed("post", "--help", cwd=config.parent)[1]
    posted = probed("--config", str(config), "post", "--ward", "RIV", "--title", "Bikes marked",
                    "--body", "We marked 40 bikes.", cwd=config.parent)[1]
    assert posted > help_only + 10_000


def test_alerts_help_lists_every_command_with_its_own_first_line() -> None:
    """`alerts --help` lists the commands without loading them; each line is the one the
    command's own help gives, at any width."""
    context = click.Context(cli)
    commands = [cli.get_command(context, name) for name in cli.list_commands(context)]
    eager = click.Group("alerts", commands=[command for command in commands if command])
    assert len(eager.commands) == len(cli.listed) == 21
    for width in (80, 200):
        listed = CliRunner().invoke(cli, ["--help"], terminal_width=width).output
        with click.Context(eager, terminal_width=width) as ctx:
            formatter = ctx.make_formatter()
            eager.format_commands(ctx, formatter)
        assert formatter.getvalue() in listed
