"""The FastAPI application: `create_app` wires the routes to a session factory.

It serves `/healthz` and, given the settings, the front door (`/`, its statements and the
favicon), the residents' pages, the provider webhooks under `/webhooks/` and the staff pages
under `/staff/` (sign-in, officers', coordinators').

Who the client is gets decided here, once: `request.client` is the connecting peer, unless
that peer is one of `web.trusted_proxies`, whose X-Forwarded-For and X-Forwarded-Proto
(uvicorn's `ProxyHeadersMiddleware`) then name the client and the scheme. Nothing else reads
those headers; the server adds no proxy handling of its own.

A product error (`AlertsError`) that a page does not answer itself becomes its `http_status`
here, once: a staff page for the staff site, JSON for a `.json` address or a client that
asks for JSON, plain text otherwise. A 5xx says only that the service cannot answer.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.telemetry import TelemetryConfig
from sqlalchemy.orm import Session, sessionmaker
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from alerts.core.config import Settings
from alerts.core.errors import AlertsError
from alerts.core.events import EventBus
from alerts.core.scheduler_store import SchedulerStatus
from alerts.web.auth import auth_router
from alerts.web.coordinators import coordinators_router
from alerts.web.front_door import front_door_router
from alerts.web.health import check_health, http_status
from alerts.web.metrics import install_metrics
from alerts.web.officers import officers_router
from alerts.web.open_feeds import open_feeds_router
from alerts.web.page_reads import PageReads
from alerts.web.residents import residents_router
from alerts.web.staff import StaffSite, install_handlers
from alerts.web.useful import useful_router
from alerts.web.webhooks import webhooks_router
from subscriptions.base import utcnow

# FastAPI's own OpenTelemetry hooks ask the global providers at every request whether one is
# configured; the product reports through `/metrics` (alerts/web/metrics.py) and installs no
# OpenTelemetry SDK, so they would never emit anything: off, so nothing is asked.
NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False,
                                 "operation_spans": False}


def create_app(
    factory: sessionmaker[Session],
    *,
    settings: Settings | None = None,
    scheduler: Callable[[], SchedulerStatus] | None = None,
    scheduler_required: bool = False,
    bus: EventBus | None = None,
) -> FastAPI:
    """The web app on this database; the residents' pages need `settings`. `scheduler`
    reports the scheduler's jobs; with `scheduler_required`, a scheduler that is not running
    makes the service "degraded". `bus` is the process's event bus, so that a post from the
web wakes the delivery loop of `alerts run`; without one the pages wire their own."""
    app = FastAPI(title="Neighbourhood alerts", docs_url=None, redoc_url=None,
                  openapi_url=None, telemetry=NO_TELEMETRY)

    # A plain `def`: FastAPI runs it in a worker thread, so the database work never
    # blocks the event loop that also drives the scheduler and the delivery loop.
    @app.get("/healthz")
    def healthz() -> JSONResponse:
        report = check_health(factory, scheduler, scheduler_required=scheduler_required,
                              now=utcnow())
        return JSONResponse(dict(report), status_code=http_status(report))

    trusted = settings.web.trusted_proxies if settings is not None else ()
    if trusted:  # with none trusted, the middleware would change nothing: not on the call
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(trusted))
    site: StaffSite | None = None

    @app.exception_handler(AlertsError)
    def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AlertsError)
        return error_response(request, exc, site)

    if settings is not None:
        reads = PageReads(factory)
        # Routes are tried in order, each at a cost: the front door's few first, then the
        # pages a mail filter opens for every link of every message, the staff's last.
        app.include_router(front_door_router(settings))
        app.include_router(useful_router(factory, reads, settings))
        app.include_router(residents_router(factory, reads, settings))
        app.include_router(open_feeds_router(reads, settings))
        app.include_router(webhooks_router(factory, settings))
        site = StaffSite(factory, settings)
        install_handlers(app, site)
        app.include_router(auth_router(site, bus))
        app.include_router(officers_router(site, bus))
        app.include_router(coordinators_router(site, bus))
        install_metrics(app, factory, settings, scheduler)  # /metrics, with metrics.token
    return app


UNAVAILABLE = "the service cannot answer just now; try again later"


def error_response(request: Request, exc: AlertsError, site: StaffSite | None) -> Response:
    """The answer to a product error no page answered: its status, and its message unless
    the fault is ours (5xx), in the form the client reads."""
    status = exc.http_status
    reason = str(exc) if status < 500 else UNAVAILABLE
    if site is not None and request.url.path.startswith("/staff/"):
        # A 5xx may be the database itself: no lookup of who is signed in then.
        who = site.principal(request) if status < 500 else None
        if status == 404:
            return site.page(request, "not_found", {}, who=who, status=404)
        return site.page(request, "refused", {"reason": reason}, who=who, status=status)
    if request.url.path.endswith(".json") or \
            "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"error": reason}, status_code=status)
    return PlainTextResponse(reason, status_code=status,
                             headers={"X-Content-Type-Options": "nosniff"})
