"""The provider webhooks: bounce and complaint events from the relay's provider.

    POST /webhooks/ses        Amazon SES notifications through SNS (and SNS's
                              SubscriptionConfirmation, confirmed by GETting its SubscribeURL)
    POST /webhooks/sendgrid   SendGrid's signed Event Webhook
    POST /webhooks/postmark   Postmark's bounce and spam complaint webhooks (basic auth)
    POST /webhooks/mailgun    Mailgun's signed webhooks

Each exists only while its key is set (`[webhooks]`); otherwise the address is 404. A call
that is unsigned gets 401; wrongly signed, stale, replayed or for a foreign topic, 403; and
changes nothing. Handlers read the body and headers, call `alerts.inbound.providers` and
answer; plain `def`s, run in worker threads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.core.db import transaction
from alerts.core.errors import AlertsError
from alerts.inbound.providers import mailgun, postmark, sendgrid, ses
from alerts.inbound.providers.events import ProviderEvent, act_on_events
from subscriptions.base import utcnow

MAX_BODY = 1024 * 1024


class BodyTooLarge(AlertsError, ValueError):
    """A webhook call larger than any provider sends."""

    http_status = 400


async def raw_body(request: Request) -> bytes:
    """The request's body as sent (signatures are over these bytes), up to MAX_BODY."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise BodyTooLarge("the body is too large")
    return bytes(body)


Body = Annotated[bytes, Depends(raw_body)]


def webhooks_router(factory: sessionmaker[Session], settings: Settings) -> APIRouter:
    router = APIRouter()
    hooks = settings.webhooks

    def act(read: Callable[[], list[ProviderEvent]]) -> JSONResponse:
        events = read()
        with transaction(factory) as session:
            done = act_on_events(session, settings, events, now=utcnow())
        return JSONResponse({"events": len(events), "acted": done})

    if hooks.ses_topic_arns:
        @router.post("/webhooks/ses")
        def ses_webhook(body: Body) -> JSONResponse:
            message = ses.read_sns(body, hooks, now=utcnow())
            if message.type == "SubscriptionConfirmation":
                ses.confirm_subscription(message, hooks)
                return JSONResponse({"confirmed": message.topic_arn})
            return act(lambda: ses.ses_events(message))

    if hooks.sendgrid_public_key:
        @router.post("/webhooks/sendgrid")
        def sendgrid_webhook(
            body: Body,
            signature: Annotated[str | None, Header(alias=sendgrid.SIGNATURE_HEADER)] = None,
            timestamp: Annotated[str | None, Header(alias=sendgrid.TIMESTAMP_HEADER)] = None,
        ) -> JSONResponse:
            return act(lambda: sendgrid.read_events(body, signature, timestamp, hooks,
                                                    now=utcnow()))

    if hooks.postmark_username and hooks.postmark_password:
        @router.post("/webhooks/postmark")
        def postmark_webhook(
            body: Body, authorization: Annotated[str | None, Header()] = None,
        ) -> JSONResponse:
            return act(lambda: postmark.read_events(body, authorization, hooks, now=utcnow()))

    if hooks.mailgun_signing_key:
        @router.post("/webhooks/mailgun")
        def mailgun_webhook(body: Body) -> JSONResponse:
            return act(lambda: mailgun.read_events(body, hooks, now=utcnow()))

    return router
