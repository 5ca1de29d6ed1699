"""Plain Starlette routes, for the pages that take nothing but their path and a request.

FastAPI's routes solve each handler's parameters (validation, dependency injection) at every
request; a link page or an open feed, which reads one path parameter, paid more for that
than for its own work (bench/web.py). These pages are Starlette routes instead, which hand
the handler the request alone. Each names its route in the request's scope, as FastAPI's
own routes do, so that the request metrics count it under its template
(`alerts.web.metrics.route_template`) and never under the path, which may hold a token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response
from starlette.routing import Route

Page = Callable[[Request], Awaitable[Response]]


def add_page(router: APIRouter, path: str, page: Page) -> None:
    """Serve GET (and HEAD) `path` with `page`, an `async def` taking the request."""

    async def named(request: Request) -> Response:
        # FastAPI rebuilds an included router's plain routes, leaving the scope without one.
        request.scope["route"] = route
        return await page(request)

    route = Route(path, named, methods=["GET"], name=page.__name__)
    router.routes.append(route)
