"""The root command group: `--config`, `--debug`, the shared runtime, and how errors reach
the user.

Whatever stops a command becomes one line on stderr and exit status 1, never a traceback, in
one place (`AlertsGroup.invoke`): any `AlertsError` (the product's errors, see
`subscriptions.errors`) by its own message; for anything else what failed, without the
exception's text, since a database error carries the statement and its parameters
(residents' addresses). The traceback goes to stderr only when asked for, with
`alerts --debug ...`. Commands raise; they catch an error only to add what the user needs
(the file or option at fault) or to carry on past it.
"""

from __future__ import annotations

import gc
import getpass
import importlib
import json
import sys
import traceback
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import click
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from alerts.core.config import Settings, load_settings
from alerts.core.db import make_engine, require_current_schema, session_factory
from alerts.core.errors import AlertsError

if TYPE_CHECKING:  # the ORM loads with the first command that opens the database, the
    # event bus with the first that publishes
    from sqlalchemy.orm import Session, sessionmaker

    from alerts.core.events import EventBus

# SQLite's result codes and PostgreSQL's SQLSTATEs for "another transaction holds a lock".
_LOCKED = ("SQLITE_BUSY", "SQLITE_LOCKED", "55P03", "40P01", "40001")


def database_failure(exc: DBAPIError) -> str:
    """What a database error means, by its code alone (the driver's text may quote values)."""
    import sqlite3  # here, not at the top: only a failed command needs it

    orig = exc.orig
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorname", "") or type(orig).__name__
    else:
        code = getattr(orig, "sqlstate", None) or ""
    if code.startswith(_LOCKED):
        return "the database is locked (another process holds it); try again"
    if code.startswith(("SQLITE_CONSTRAINT", "23")):
        return f"the change conflicts with what the database holds ({code})"
    if code.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")):
        return f"the database file cannot be written or opened ({code}); check its permissions"
    if code == "SQLITE_FULL":
        return "the disk holding the database is full"
    if exc.connection_invalidated or not code or code.startswith("08"):
        return "cannot reach the database; check database.url and that the server is running"
    return f"the database refused the command ({code}); `alerts --debug ...` shows why"


def one_line(exc: Exception) -> str:
    """The line that tells the user what stopped a command; it quotes no resident."""
    if isinstance(exc, AlertsError):
        said = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return " ".join(said.splitlines()) or type(exc).__name__
    if isinstance(exc, DBAPIError):
        return database_failure(exc)
    what = type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        what = f"{what}: {exc.strerror}"
    return (f"an unexpected error stopped the command ({what}); run it again as "
            "`alerts --debug ...` to see the traceback")


class AlertsGroup(click.Group):
    """The root group. Its commands load on first use: `listed` names, for each, the module
    and attribute that hold it and the one line `alerts --help` gives it, so that listing
    them imports none and no command pays for another's libraries."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.listed: dict[str, tuple[str, str]] = {}
        # Set by `main` (the command's own process): what loading the command made is frozen
        # with the rest, out of the collector's way (see `_imported`).
        self.freeze_loaded = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.listed})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.listed:
            module, _, attribute = self.listed[cmd_name][0].partition(":")
            self.add_command(getattr(_imported(module, freeze=self.freeze_loaded), attribute),
                             cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands and their lines as click lists them, without loading any."""
        listing = click.Group(commands=[
            click.Command(name, help=self.listed[name][1]) if name in self.listed
            else self.commands[name] for name in self.list_commands(ctx)])
        listing.format_commands(ctx, formatter)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if ctx.params.get("debug"):
                click.echo(traceback.format_exc().rstrip(), err=True)
            raise click.ClickException(one_line(exc)) from None


@contextmanager
def _collector_paused(*, freeze: bool) -> Iterator[None]:
    """Imports with the collector paused: what an import makes (classes, tables, mappers)
    lives as long as the process, so the passes the collector would make while `alerts
    status` loads its models (40 of them) find nothing to free. With `freeze` it is then
    frozen, so that no later pass walks it either."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if was_enabled:
            gc.enable()


def _imported(module: str, *, freeze: bool) -> Any:
    """A command's module, imported with the collector paused (`_collector_paused`)."""
    with _collector_paused(freeze=freeze):
        return importlib.import_module(module)


def loading() -> AbstractContextManager[None]:
    """For the imports a command makes once its options are checked (its models and
    services, which `--help` does without): the collector paused, and what they made frozen
    in the command's own process, as for its module (`_imported`). A post's 45 passes while
    it loaded the posting service and the pipeline took 2% of its time."""
    return _collector_paused(freeze=cli.freeze_loaded)


@dataclass
class Runtime:
    """Settings and the database, opened on first use by the command that needs them."""

    config_file: str | None
    _settings: Settings | None = None
    _engine: Engine | None = None
    _bus: EventBus | None = None
    _schema_checked: bool = False

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_file)
        return self._settings

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(
                self.settings.database.url,
                busy_timeout=self.settings.database.busy_timeout_seconds)
        return self._engine

    def sessions(self) -> sessionmaker[Session]:
        """Sessions on a database that `alerts init` has brought up to date (checked once a
        command: a post asks twice, for its own sessions and for the event bus's)."""
        if not self._schema_checked:
            require_current_schema(self.engine)
            self._schema_checked = True
        return session_factory(self.engine)

    def bus(self) -> EventBus:
        """The event bus of this process, with the pipeline's handlers wired in."""
        if self._bus is None:
            with loading():
                from alerts.core.events import EventBus
                from alerts.usecases.pipeline import wire

            self._bus = EventBus()
            wire(self._bus, self.sessions(), self.settings)
        return self._bus

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


pass_runtime = click.make_pass_decorator(Runtime)


@click.group(cls=AlertsGroup)
@click.option(
    "--config",
    "config_file",
    metavar="FILE",
    envvar="ALERTS_CONFIG",
    help="TOML settings (default: $ALERTS_CONFIG, else ./alerts.toml, else built-in defaults).",
)
@click.option(
    "--debug",
    is_flag=True,
    help="When a command fails, print the traceback to stderr too (it may quote residents' "
    "addresses).",
)
@click.version_option(package_name="neighbourhood-alerts")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, debug: bool) -> None:
    """Neighbourhood alerts: ward digests and urgent alerts from Safer Neighbourhood Teams."""
    runtime = Runtime(config_file)
    ctx.obj = runtime
    ctx.call_on_close(runtime.close)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def print_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Print `rows` under a header row, every list command alike: each column as wide as its
    widest cell, two spaces apart, the last one unpadded."""
    table = [list(header), *([str(cell) for cell in row] for row in rows)]
    widths = [max(len(line[column]) for line in table) for column in range(len(header))]
    for line in table:
        padded = [cell.ljust(width) for cell, width in zip(line[:-1], widths[:-1], strict=True)]
        click.echo("  ".join([*padded, line[-1]]).rstrip())


def warn(line: str) -> None:
    click.echo(line, err=True)


def fail(reason: str) -> NoReturn:
    """Stop with a one-line reason on stderr and exit status 1."""
    raise click.ClickException(reason)


def cli_actor() -> str:
    """Who the audit log names for a change made at the command line."""
    return f"command line ({getpass.getuser()})"


def progress_enabled() -> bool:
    return sys.stderr.isatty()
