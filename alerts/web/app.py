"""The FastAPI application: `create_app` wires the routes to a session factory.

For now it serves `/healthz`; the resident, officer and coordinator pages join here.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker

from alerts.service.scheduler import SchedulerStatus
from alerts.web.health import check_health
from subscriptions.base import utcnow


def create_app(
    factory: sessionmaker[Session],
    *,
    scheduler: Callable[[], SchedulerStatus] | None = None,
    scheduler_required: bool = False,
) -> FastAPI:
    """The web app on this database. `scheduler` reports the scheduler's jobs; with
    `scheduler_required`, a scheduler that is not running makes the service "degraded"."""
    app = FastAPI(title="Neighbourhood alerts", docs_url=None, redoc_url=None,
                  openapi_url=None)

    # A plain `def`: FastAPI runs it in a worker thread, so the database work never
    # blocks the event loop that also drives the scheduler and the delivery loop.
    @app.get("/healthz")
    def healthz() -> JSONResponse:
        report = check_health(factory, scheduler, scheduler_required=scheduler_required,
                              now=utcnow())
        return JSONResponse(dict(report), status_code=200 if report["database"] == "ok" else 503)

    return app
