"""The "Was this useful?" links from emails, on the residents' site.

    GET  /useful/{token}   record the vote the link carries (once), and thank the resident
    POST /useful/{token}   change that same vote's answer (field `useful`: yes or no)

The signed token is the only thing read: no cookie is set, and neither the address, the
request's IP nor its user agent is stored or logged with a vote (the access log is off).
Handlers parse, call `alerts.useful` and render; plain `def`s, run in worker threads.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session, sessionmaker

from alerts.config import Settings
from alerts.db import transaction
from alerts.digests.render import environment
from alerts.translations import HTML_LANG
from alerts.useful import Vote, read_vote, record_vote
from alerts.web.languages import request_language
from alerts.web.residents import HEADERS
from subscriptions.base import utcnow

ANSWERS = {"yes": True, "no": False}


def useful_router(factory: sessionmaker[Session], settings: Settings) -> APIRouter:
    router = APIRouter()
    def page(request: Request, name: str, context: dict[str, Any], *,
             status: int = 200) -> HTMLResponse:
        # The resident's language as their other pages have it; no switch link, since
        # following it would open the vote link again.
        language = request_language(request, switchable=False)
        body = environment(language=language).get_template(f"web/{name}.html").render(
            force=settings.force, **context)
        return HTMLResponse(body, status_code=status,
                            headers={**HEADERS, "Content-Language": HTML_LANG[language]})

    def invalid_link(request: Request) -> HTMLResponse:
        return page(request, "invalid", {"what": "useful"}, status=400)

    def thanks(request: Request, token: str, vote: Vote | None, *,
               changed: bool = False) -> HTMLResponse:
        if vote is None:  # the post has been deleted since the email went
            return page(request, "invalid", {"what": "useful"}, status=404)
        return page(request, "useful", {"vote": vote, "token": token, "changed": changed})

    # GET records the vote, so that one click in the email is enough.
    @router.get("/useful/{token}", response_class=HTMLResponse)
    def useful_get(request: Request, token: str) -> HTMLResponse:
        ballot = read_vote(settings.web.secret_key, token)
        if ballot is None:
            return invalid_link(request)
        with transaction(factory) as session:
            vote = record_vote(session, ballot, now=utcnow())
        return thanks(request, token, vote)

    # No CSRF token: the signed link alone authorises a vote, as it does the GET.
    @router.post("/useful/{token}", response_class=HTMLResponse)
    def useful_post(request: Request, token: str,
                    useful: Annotated[str, Form()] = "") -> HTMLResponse:
        ballot = read_vote(settings.web.secret_key, token)
        if ballot is None or useful not in ANSWERS:
            return invalid_link(request)
        with transaction(factory) as session:
            vote = record_vote(session, ballot, now=utcnow(), change_to=ANSWERS[useful])
        return thanks(request, token, vote, changed=True)

    return router
