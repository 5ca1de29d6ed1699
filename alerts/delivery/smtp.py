"""The SMTP transport: a small pool of reused aiosmtplib connections to one relay.

Connections open lazily, up to `mail.concurrency` of them, stay open between messages and
say QUIT when the transport closes. Each answer from the relay becomes a transient or a
permanent failure (4xx or 5xx); a connection that drops or times out is discarded and the
message is retried later. A relay that cannot be reached or refuses the session (greeting,
STARTTLS, login) is a `ServerUnavailable`: the fault is ours or the relay's, never the
recipient's, so the rows are retried and the run stops instead of failing every row.

The connection is what `mail.smtp_security` says: "tls" opens it over TLS (usually port
465), "starttls" upgrades it and refuses the session, sending nothing, when the relay does
not offer the upgrade, "none" stays in clear. The relay's certificate is checked against
the system's CAs (or `mail.smtp_ca_file`) unless `mail.smtp_verify_certificate` is false.

Recipient addresses never reach the log or a failure reason: every answer goes through
`transport.redact`, which removes the recipient in any form the server echoes it and any
other address.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from types import TracebackType
from typing import Self

from aiosmtplib import (
    SMTP,
    SMTPException,
    SMTPNotSupported,
    SMTPRecipientsRefused,
    SMTPResponseException,
)

from alerts.core.config import MailSettings
from alerts.core.errors import AlertsError
from alerts.delivery.rejections import is_hard_bounce
from alerts.delivery.transport import (
    DeliveryFailure,
    PermanentFailure,
    ServerUnavailable,
    TransientFailure,
    redact,
)

log = logging.getLogger(__name__)


class _NoStartTls(AlertsError, SMTPException):
    """The relay does not offer STARTTLS, which `mail.smtp_security = "starttls"` requires."""

    http_status = 503


def _tls_context(mail: MailSettings) -> ssl.SSLContext:
    """What the relay's certificate is checked against: the system's CAs or smtp_ca_file."""
    context = ssl.create_default_context(cafile=mail.smtp_ca_file or None)
    if not mail.smtp_verify_certificate:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def _mail_options(client: SMTP, recipient: str, data: bytes) -> list[str] | None:
    """SMTPUTF8 for an address outside ASCII; BODY=8BITMIME (RFC 6152) for bytes that are
    not 7-bit (a forward carrying a resident's 8-bit email) when the relay offers it: one
    that does not gets the bytes as before."""
    options = [] if recipient.isascii() else ["SMTPUTF8"]
    if not data.isascii():
        if client.is_ehlo_or_helo_needed:
            await client.ehlo()
        if client.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")
    return options or None


class SmtpTransport:
    def __init__(self, settings: MailSettings) -> None:
        self.settings = settings
        self.where = f"{settings.smtp_host}:{settings.smtp_port}"
        self._idle: list[SMTP] = []
        self._slots = asyncio.Semaphore(max(settings.concurrency, 1))
        self._unavailable: str | None = None
        self.opened = 0

    async def __aenter__(self) -> Self:
        self._unavailable = None
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Say QUIT on every idle connection; one that is already gone is just closed."""
        idle, self._idle = self._idle, []
        for client in idle:
            try:
                await client.quit()
            except (SMTPException, OSError):
                client.close()

    async def send(self, envelope_from: str, recipient: str, data: bytes) -> None:
        async with self._slots:
            if self._unavailable is not None:
                raise ServerUnavailable(self._unavailable)
            client = self._take_idle()
            if client is None:
                client = await self._connect()
            try:
                await client.sendmail(
                    envelope_from,
                    [recipient],
                    data,
                    mail_options=await _mail_options(client, recipient, data),
                )
            except SMTPRecipientsRefused as exc:
                refusal = exc.recipients[0]
                self._release(client, refusal.code)
                raise _answer(refusal.code, refusal.message, recipient) from None
            except SMTPResponseException as exc:
                self._release(client, exc.code)
                raise _answer(exc.code, exc.message, recipient) from None
            except SMTPNotSupported:
                # Raised before MAIL FROM, so the connection is clean.
                self._idle.append(client)
                raise PermanentFailure(
                    f"the SMTP server at {self.where} does not offer SMTPUTF8, "
                    "which this address needs"
                ) from None
            except ValueError:
                # An address aiosmtplib cannot put on the wire; the envelope may be half
                # open on the server, so this connection is not reused.
                client.close()
                raise PermanentFailure("the address cannot be sent over SMTP") from None
            except (SMTPException, OSError) as exc:
                client.close()
                detail = redact(str(exc) or type(exc).__name__, recipient)
                log.warning("SMTP connection to %s dropped: %s", self.where, detail)
                raise TransientFailure(
                    f"the SMTP server at {self.where} went away: {detail}"
                ) from None
            except BaseException:
                client.close()
                raise
            self._idle.append(client)

    def _release(self, client: SMTP, code: int) -> None:
        # 421 means the relay is closing this connection; after any other answer
        # aiosmtplib has sent RSET, so the connection can carry the next message.
        if code == 421 or not client.is_connected:
            client.close()
        else:
            self._idle.append(client)

    def _take_idle(self) -> SMTP | None:
        while self._idle:
            client = self._idle.pop()
            if client.is_connected:
                return client
            client.close()
        return None

    async def _connect(self) -> SMTP:
        mail = self.settings
        try:
            context = None if mail.security == "none" else _tls_context(mail)
        except OSError as exc:  # ssl.SSLError too: a file that holds no certificate
            reason = (f"mail.smtp_ca_file {mail.smtp_ca_file!r} cannot be used: "
                      f"{exc.strerror or exc}")
            self._unavailable = reason
            raise ServerUnavailable(reason) from None
        # Never aiosmtplib's own choice: no upgrade unless asked, no login before it.
        client = SMTP(
            hostname=mail.smtp_host,
            port=mail.smtp_port,
            timeout=mail.smtp_timeout,
            use_tls=mail.security == "tls",
            start_tls=False,
            tls_context=context,
        )
        try:
            await client.connect()
            if mail.security == "starttls":
                await client.ehlo()
                if not client.supports_extension("starttls"):
                    raise _NoStartTls("no STARTTLS")
                await client.starttls(tls_context=context)
            if mail.smtp_username:
                await client.login(mail.smtp_username, mail.smtp_password)
        except _NoStartTls:
            client.close()
            reason = (f"the SMTP server at {self.where} does not offer STARTTLS, which "
                      "mail.smtp_security = \"starttls\" requires; nothing was sent")
            self._unavailable = reason
            log.error("%s", reason)
            raise ServerUnavailable(reason) from None
        except SMTPResponseException as exc:
            client.close()
            reason = (f"the SMTP server at {self.where} refused the session: "
                      f"{exc.code} {exc.message}")
            self._unavailable = reason
            log.error("%s", reason)
            raise ServerUnavailable(reason, exc.code) from None
        except (SMTPException, OSError) as exc:
            client.close()
            reason = f"the SMTP server at {self.where} went away: {exc or type(exc).__name__}"
            self._unavailable = reason
            log.error("%s", reason)
            raise ServerUnavailable(reason) from None
        self.opened += 1
        log.debug("opened SMTP connection %d to %s", self.opened, self.where)
        return client


def _answer(code: int, message: str, recipient: str) -> DeliveryFailure:
    said = f"{code} {' '.join(message.split())}".strip()
    reason = redact(said, recipient)
    if 500 <= code < 600:
        # Judged on the server's own words: redacted, a local part such as "user" would
        # hide the "user unknown" that makes it a hard bounce.
        return PermanentFailure(reason, code, hard_bounce=is_hard_bounce(code, said))
    # 4xx, and anything odd: keeping the row queued loses nothing.
    return TransientFailure(reason, code)
