"""`alerts run`, `alerts worker` and `alerts web`: thin commands over `alerts.service`.

The service (and the web stack under it) is imported when one of these commands runs, so
the other commands, such as `alerts post --urgent`, start without loading it.
"""

from __future__ import annotations

import dataclasses

import click

from alerts.cli.app import Runtime, pass_runtime
from alerts.core.config import Settings
from alerts.mail.trust import ready_to_send

WORKERS = click.option(
    "--workers", type=click.IntRange(min=1), metavar="N",
    help="Serve the web app from N child processes (default: web.workers).")


def _with_workers(settings: Settings, workers: int | None) -> Settings:
    if workers is None:
        return settings
    return dataclasses.replace(settings, web=dataclasses.replace(settings.web, workers=workers))


@click.command()
@WORKERS
@pass_runtime
def run(runtime: Runtime, workers: int | None) -> None:
    """Run the scheduler, the delivery loop and the web app until SIGINT or SIGTERM."""
    from alerts.service.main import run_service

    settings = _with_workers(runtime.settings, workers)
    ready_to_send(settings)
    factory = runtime.sessions()
    raise SystemExit(run_service(settings, runtime.engine, factory, runtime.bus()))


@click.command()
@pass_runtime
def worker(runtime: Runtime) -> None:
    """Send what the outbox holds, continuously, until SIGINT or SIGTERM (no scheduler)."""
    from alerts.service.main import run_worker

    settings = runtime.settings
    ready_to_send(settings)
    factory = runtime.sessions()
    raise SystemExit(run_worker(settings, runtime.engine, factory, runtime.bus()))


@click.command()
@click.option("--host", metavar="H", help="Listen here (default: web.host).")
@click.option("--port", type=click.IntRange(0, 65535), metavar="P",
              help="Listen on this port (default: web.port).")
@WORKERS
@pass_runtime
def web(runtime: Runtime, host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the web app, and send what it queues, until SIGINT or SIGTERM (no scheduler)."""
    from alerts.service.main import run_web

    settings = _with_workers(runtime.settings, workers)
    ready_to_send(settings)
    factory = runtime.sessions()
    raise SystemExit(run_web(settings, runtime.engine, factory, runtime.bus(),
                             host=host or settings.web.host,
                             port=settings.web.port if port is None else port))
