"""The LMTP server (RFC 2033, aiosmtpd): how Postfix or Exim hand inbound mail over.

Only addresses the product hands out are accepted (the signed addresses of
`alerts.mail.addresses`, and `mail.from_address`); others (`postmaster@`, a bare `bounces@`)
are refused at RCPT with 550, so a misrouted or made-up message goes back to its MTA rather
than into the journal. After DATA, LMTP answers once for each accepted recipient:
250 when the message was handled (or had been already), 451 when the database could not be
used, so the MTA keeps the message and tries again later; nothing is lost either way.

Bounds: at most `inbound.lmtp_max_sessions` sessions at once; one more is greeted with 421
and closed (the MTA tries again later), and a slot frees when a session ends, however it
ends. A message may be at most `MAX_MESSAGE_BYTES` (advertised as SIZE): one declared
bigger is refused at MAIL, one that turns out bigger gets 552 5.3.4 for each recipient after
DATA (the MTA returns it to its sender), and intake reads only the first part of any message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import AnyStr

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from alerts.core.config import Settings
from alerts.core.errors import AlertsError
from alerts.inbound.intake import Intake, IntakeUnavailable, Outcome
from alerts.inbound.journal import Via
from alerts.inbound.mail import MAX_MESSAGE_BYTES
from alerts.mail.addresses import issued_address

log = logging.getLogger(__name__)


class ListenAddressError(AlertsError, ValueError):
    """`--lmtp` is not a HOST:PORT to listen on; the message says why."""

    http_status = 400


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:24`) → (host, port)."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ListenAddressError(f"expected HOST:PORT (for example 127.0.0.1:8024), not {value!r}")
    return host.strip("[]"), int(port)


class InboundHandler:
    """aiosmtpd handler: takes mail for the addresses the product issues, hands it to intake."""

    def __init__(self, intake: Intake, settings: Settings, *,
                 after: Callable[[Outcome], Awaitable[None]] | None = None) -> None:
        self.intake = intake
        self.ours = settings.mail
        self.after = after
        self.max_sessions = settings.inbound.lmtp_max_sessions

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        address = address.strip().lower()
        if not issued_address(self.ours, address):
            return "550 5.1.1 Not a mailbox of this service"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        recipients = tuple(envelope.rcpt_tos)
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        try:
            outcome = await asyncio.to_thread(
                self.intake.process, raw, via=Via.LMTP,
                envelope_sender=(envelope.mail_from or "").strip("<>").lower(),
                envelope_recipients=recipients)
        except IntakeUnavailable as error:
            log.warning("LMTP: message not taken (%s); the MTA will try again", error)
            return _per_recipient(recipients, "451 4.3.0 Try again later")
        except Exception as error:
            log.error("LMTP: message not taken (%s); the MTA will try again",
                      type(error).__name__)
            return _per_recipient(recipients, "451 4.3.0 Try again later")
        if self.after is not None and not outcome.duplicate:
            await self.after(outcome)
        return _per_recipient(recipients, "250 2.0.0 Delivered")


def _per_recipient(recipients: tuple[str, ...], status: str) -> str:
    # LMTP gives one reply line per accepted recipient; aiosmtpd sends what we return.
    return "\r\n".join(status for _ in recipients or ("",))


@dataclass
class _Sessions:
    limit: int
    open: int = 0
    refusing: bool = False  # logged once a busy spell, not once a refused connection


# aiosmtpd answers these once, after DATA; LMTP owes one answer per accepted recipient
# (RFC 2033 section 4.2), or the MTA waits for the rest of them.
_AFTER_DATA = {
    "552 Error: Too much mail data": "552 5.3.4 Message too big for this service",
    "500 Line too long (see RFC5321 4.5.3.1.6)": "500 5.5.2 Line too long (RFC 5321 4.5.3.1.6)",
}


class _Session(LMTP):
    """One LMTP connection, counted against the limit while it is open."""

    def __init__(self, handler: InboundHandler, sessions: _Sessions) -> None:
        super().__init__(handler, data_size_limit=MAX_MESSAGE_BYTES, enable_SMTPUTF8=True,
                         decode_data=False, hostname="alerts-inbound", ident="alerts inbound")
        self.sessions = sessions
        self.counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sessions = self.sessions
        if not self.counted and sessions.open >= sessions.limit:
            if not sessions.refusing:
                log.warning("LMTP: %d sessions open (inbound.lmtp_max_sessions); new ones "
                            "are answered 421 until one ends", sessions.open)
            sessions.refusing = True
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(b"421 4.3.2 Too many sessions, try again later\r\n")
            transport.close()
            return
        if not self.counted:
            self.counted = True
            sessions.open += 1
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if not self.counted:
            return  # refused: aiosmtpd never saw it
        self.counted = False
        self.sessions.open -= 1
        self.sessions.refusing = self.sessions.open >= self.sessions.limit
        super().connection_lost(error)

    async def push(self, status: AnyStr) -> None:
        envelope = self.envelope
        if isinstance(status, str) and status in _AFTER_DATA and envelope is not None \
                and envelope.rcpt_tos:
            await super().push(_per_recipient(tuple(envelope.rcpt_tos), _AFTER_DATA[status]))
            return
        await super().push(status)


async def start_lmtp(handler: InboundHandler, host: str, port: int) -> asyncio.Server:
    """Listen on host:port, at most `inbound.lmtp_max_sessions` sessions at once; the caller
    closes the returned server."""
    loop = asyncio.get_running_loop()
    sessions = _Sessions(handler.max_sessions)
    return await loop.create_server(lambda: _Session(handler, sessions), host=host, port=port)
