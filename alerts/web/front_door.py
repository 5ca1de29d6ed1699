"""The front door: what the service is and the ways in, and the two statements it owes.

    GET /               the service, the force and team that run it; find your ward by
                        name or postcode (the subscribe page answers), the ward archives,
                        staff sign-in, the privacy notice and the accessibility statement
    GET /privacy        the privacy notice (facts from `[force]`: controller, contact,
                        retention, lawful basis)
    GET /accessibility  the accessibility statement, in the sections the Public Sector
                        Bodies Accessibility Regulations 2018 ask for
    GET /favicon.ico    a 16 px icon drawn here (ICO); /favicon.svg the same as SVG

Plain HTML on the residents' base template, no JavaScript, in English or Welsh like the
other resident pages. Handlers touch no database and wait on nothing, so they are `async def`:
they run on the event loop, without a hop to a worker thread and back. What a page shows
depends only on the settings and its language (and, for its switch link, on its address):
each page is rendered once per language and then served as those bytes, unless the address
carries a query of its own beyond `?lang=`, whose switch link keeps it.
"""

from __future__ import annotations

import struct

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from alerts.core.config import Settings
from alerts.core.translations import HTML_LANG
from alerts.mail.render import environment
from alerts.web.languages import remember_choice, request_language, switch_link
from alerts.web.residents import HEADERS
from subscriptions.languages import Language

NAVY = (0x0B, 0x25, 0x45)
AMBER = (0xFF, 0xBF, 0x47)
ICON_HEADERS = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}
FAVICON_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    '<rect width="16" height="16" rx="3" fill="#0b2545"/>'
    '<circle cx="8" cy="8" r="4.5" fill="#ffbf47"/></svg>\n'
)


def favicon_ico(size: int = 16) -> bytes:
    """A navy square with an amber dot, as the SVG draws it: one 32-bit bitmap in an ICO."""
    centre, radius = (size - 1) / 2, size * 4.5 / 16
    rows = []
    for y in reversed(range(size)):  # a BMP's rows run bottom-up
        row = b""
        for x in range(size):
            inside = (x - centre) ** 2 + (y - centre) ** 2 <= radius ** 2
            red, green, blue = AMBER if inside else NAVY
            row += bytes((blue, green, red, 0xFF))
        rows.append(row)
    mask = bytes(((size + 31) // 32) * 4 * size)  # all opaque: the alpha channel decides
    pixels = b"".join(rows) + mask
    header = struct.pack("<IiiHHIIiiII", 40, size, size * 2, 1, 32, 0, len(pixels), 0, 0, 0, 0)
    image = header + pixels
    return (struct.pack("<HHH", 0, 1, 1)
            + struct.pack("<BBBBHHII", size, size, 0, 0, 1, 32, len(image), 6 + 16) + image)


def front_door_router(settings: Settings) -> APIRouter:
    router = APIRouter()
    icon = favicon_ico()

    rendered: dict[tuple[str, Language], bytes] = {}  # (page, language): the page's bytes
    headers = {language: {**HEADERS, "Content-Language": HTML_LANG[language]}
               for language in HTML_LANG}

    def render(request: Request, name: str, language: Language) -> bytes:
        return environment(language=language).get_template(f"web/{name}.html").render(
            force=settings.force, **switch_link(request, language)).encode()

    def page(request: Request, name: str) -> HTMLResponse:
        language = request_language(request)
        if request.query_params.keys() <= {"lang"}:  # its switch link: the path and `?lang=`
            body = rendered.get((name, language))
            if body is None:
                body = rendered[name, language] = render(request, name, language)
        else:
            body = render(request, name, language)
        response = HTMLResponse(body, headers=headers[language])
        remember_choice(request, response, language)
        return response

    @router.get("/", response_class=HTMLResponse)
    async def front_door(request: Request) -> HTMLResponse:
        return page(request, "front_door")

    @router.get("/privacy", response_class=HTMLResponse)
    async def privacy(request: Request) -> HTMLResponse:
        return page(request, "privacy")

    @router.get("/accessibility", response_class=HTMLResponse)
    async def accessibility(request: Request) -> HTMLResponse:
        return page(request, "accessibility")

    @router.get("/favicon.ico")
    async def favicon() -> Response:
        return Response(icon, media_type="image/x-icon", headers=ICON_HEADERS)

    @router.get("/favicon.svg")
    async def favicon_svg() -> Response:
        return Response(FAVICON_SVG, media_type="image/svg+xml", headers=ICON_HEADERS)

    return router
