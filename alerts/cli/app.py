"""The root command group: `--config`, the shared runtime, and how errors reach the user.

Every domain error becomes one line on stderr and a non-zero exit; tracebacks are for bugs.
"""

from __future__ import annotations

import getpass
import json
import sys
from dataclasses import dataclass
from typing import Any, NoReturn

import click
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from alerts.accounts.users import UserError
from alerts.config import ConfigError, Settings, load_settings
from alerts.db import DatabaseError, make_engine, require_current_schema, session_factory
from alerts.events import EventBus
from alerts.sources.registry import SourceError
from subscriptions.addresses import AddressError
from subscriptions.schemes import SchemeError
from subscriptions.subscribers import SubscriberError
from subscriptions.wards import WardError

DOMAIN_ERRORS: tuple[type[Exception], ...] = (
    ConfigError,
    UserError,
    SchemeError,
    DatabaseError,
    SourceError,
    WardError,
    SubscriberError,
    AddressError,
)


class AlertsGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DOMAIN_ERRORS as exc:
            raise click.ClickException(str(exc)) from exc


@dataclass
class Runtime:
    """Settings and the database, opened on first use by the command that needs them."""

    config_file: str | None
    _settings: Settings | None = None
    _engine: Engine | None = None
    _bus: EventBus | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_file)
        return self._settings

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.settings.database.url)
        return self._engine

    def sessions(self) -> sessionmaker[Session]:
        """Sessions on a database that `alerts init` has brought up to date."""
        require_current_schema(self.engine)
        return session_factory(self.engine)

    def bus(self) -> EventBus:
        """The event bus of this process, with the pipeline's handlers wired in."""
        if self._bus is None:
            from alerts.pipeline import wire

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
@click.version_option(package_name="neighbourhood-alerts")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None) -> None:
    """Neighbourhood alerts: ward digests and urgent alerts from Safer Neighbourhood Teams."""
    runtime = Runtime(config_file)
    ctx.obj = runtime
    ctx.call_on_close(runtime.close)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


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
