"""The LMTP server (RFC 2033, aiosmtpd): how Postfix or Exim hand inbound mail over.

Only addresses the product hands out are accepted (`reply+`, `bounces+` and `unsubscribe+`
at `mail.reply_domain`, and `mail.from_address`); others (`postmaster@`, a bare `bounces@`)
are refused at RCPT with 550, so a misrouted or made-up message goes back to its MTA rather
than into the journal. After DATA, LMTP answers once for each accepted recipient:
250 when the message was handled (or had been already), 451 when the database could not be
used, so the MTA keeps the message and tries again later; nothing is lost either way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from alerts.config import Settings
from alerts.inbound.intake import Intake, IntakeUnavailable, Outcome, issued_address
from alerts.inbound.journal import Via
from alerts.inbound.mail import MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)


class ListenAddressError(ValueError):
    pass


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
        self.domain = settings.mail.reply_domain.lower()
        self.own = settings.mail.from_address.lower()
        self.after = after

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        address = address.strip().lower()
        if not issued_address(address, reply_domain=self.domain, from_address=self.own):
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


async def start_lmtp(handler: InboundHandler, host: str, port: int) -> asyncio.Server:
    """Listen on host:port; the caller closes the returned server."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: LMTP(handler, data_size_limit=MAX_MESSAGE_BYTES, enable_SMTPUTF8=True,
                     decode_data=False, hostname="alerts-inbound", ident="alerts inbound"),
        host=host, port=port)
