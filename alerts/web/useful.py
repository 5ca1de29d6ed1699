"""The "Was this useful?" links from emails, on the residents' site.

    GET  /useful/{token}   ask the question, the link's answer chosen; nothing is recorded,
                           since mail filters open every link in an email
    POST /useful/{token}   record the answer (field `useful`: yes or no), and thank the
                           resident; posting again with the same link changes that one vote

The signed token is the only thing read: no cookie is set, and neither the address, the
request's IP nor its user agent is stored or logged with a vote (the access log is off).
Handlers parse, call `alerts.usecases.votes` and render. The GET only reads: an `async def`
whose read runs where it costs least (`alerts.web.page_reads`); the POST writes, a plain `def`
run in a worker thread.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.core.db import transaction
from alerts.usecases.votes import (
    question_for_link,
    read_stored_vote,
    record_vote,
    vote_question,
)
from alerts.web.kept_pages import Filled
from alerts.web.languages import request_language
from alerts.web.page_reads import PageReads
from alerts.web.plain_routes import add_page
from alerts.web.residents import linked_body, linked_page, linked_response
from subscriptions.base import utcnow

ANSWERS = {"yes": True, "no": False}


def useful_router(factory: sessionmaker[Session], reads: PageReads,
                  settings: Settings) -> APIRouter:
    router = APIRouter()
    asked = Filled()

    def page(request: Request, name: str, context: dict[str, Any], *,
             status: int = 200) -> HTMLResponse:
        return linked_page(request, settings, name, context, status=status)

    def invalid_link(request: Request) -> HTMLResponse:
        return page(request, "invalid", {"what": "useful"}, status=400)

    def post_gone(request: Request) -> HTMLResponse:  # deleted since the email went
        return page(request, "invalid", {"what": "useful"}, status=404)

    async def useful_get(request: Request) -> HTMLResponse:
        token: str = request.path_params["token"]
        # The token's check and the question: one statement.
        found = await reads(
            lambda session: question_for_link(session, settings.web.secret_key, token))
        if found is None:
            return invalid_link(request)
        ballot, question = found
        if question is None:
            return post_gone(request)
        # Every resident's link to a post opens the same page but for its token.
        language = request_language(request, switchable=False)
        body = asked.page((language, question, ballot.useful), lambda values: linked_body(
            settings, "useful_question", language,
            {"question": question, "answer": ballot.useful, **values}), {"token": token})
        return linked_response(body, language)

    add_page(router, "/useful/{token}", useful_get)

    # No CSRF token (it would need a cookie): the signed link alone authorises a vote, as
    # it does an RFC 8058 one-click unsubscribe.
    @router.post("/useful/{token}", response_class=HTMLResponse)
    def useful_post(request: Request, token: str,
                    useful: Annotated[str, Form()] = "") -> HTMLResponse:
        with transaction(factory) as session:
            ballot = read_stored_vote(session, settings.web.secret_key, token)
            if ballot is None or useful not in ANSWERS:
                return invalid_link(request)
            asked = vote_question(session, ballot)
            vote = (None if asked is None else
                    record_vote(session, ballot, now=utcnow(), change_to=ANSWERS[useful]))
        if asked is None or vote is None:
            return post_gone(request)
        return page(request, "useful", {"vote": vote, "token": token, "before": asked.held})

    return router
