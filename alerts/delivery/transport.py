"""The transport contract: how the sender hands one finished email to whatever carries it.

A transport either accepts the message or says, by the exception it raises, whether trying
again later can help (`TransientFailure`) or not (`PermanentFailure`). The sender turns that
answer into the row's next state; transports never touch the database.
"""

from __future__ import annotations

import re
from types import TracebackType
from typing import Protocol, Self

from email_validator import EmailNotValidError, validate_email

from alerts.core.errors import AlertsError


class DeliveryFailure(AlertsError):
    """A message was not handed over; `reason` is safe to store (it names no recipient)."""

    http_status = 503

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class TransientFailure(DeliveryFailure):
    """Try again later: a 4xx answer, a dropped connection, a timeout, a full disk."""


class PermanentFailure(DeliveryFailure):
    """Trying again will not help: a 5xx answer or an address that cannot be sent to.

    `hard_bounce` says the answer rejects the address itself; a transport judges it on the
    server's own words, before they are redacted into `reason`.
    """

    def __init__(self, reason: str, code: int | None = None, *,
                 hard_bounce: bool = False) -> None:
        super().__init__(reason, code)
        self.hard_bounce = hard_bounce


class ServerUnavailable(TransientFailure):
    """The transport cannot reach its server at all; further sends in this run will fail too.

    The sender stops claiming new rows when it sees this, so an outage costs one batch of
    retries rather than a connection timeout for every queued row.
    """


class Transport(Protocol):
    async def send(self, envelope_from: str, recipient: str, data: bytes) -> None:
        """Hand over one message for one recipient, or raise a `DeliveryFailure`."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


# Anything shaped like an address: text without spaces or brackets either side of an "@".
_ANY_ADDRESS = re.compile(r"""[^\s<>()\[\],;:"'@]+@[^\s<>()\[\],;:"'@]+""")


def _spellings(address: str) -> set[str]:
    """The address as given and with its domain in Unicode and in IDNA ("xn--") form."""
    forms = {address}
    try:
        checked = validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return forms
    return forms | {checked.normalized, f"{checked.local_part}@{checked.ascii_domain}"}


def redact(text: str, address: str) -> str:
    """Remove a recipient's address from a server's reply text before it is stored or logged.

    Servers echo the recipient in whatever form they hold it: as given, in another case, with
    the domain in IDNA form ("<jose@xn--caf-dma.example>: mailbox busy"), or only its local
    part, with or without its +tag ("jose... User unknown"). Each becomes "<recipient>", and
    anything else shaped like an address "<address>": addresses must not end up in
    `last_error` or in logs.
    """
    for form in sorted(_spellings(address) if address else (), key=len, reverse=True):
        text = re.sub(re.escape(form), "<recipient>", text, flags=re.IGNORECASE)
    text = _ANY_ADDRESS.sub("<address>", text)
    local = address.rpartition("@")[0]
    for part in sorted({local, local.partition("+")[0]} - {""}, key=len, reverse=True):
        # The local part on its own (with or without a +tag), not inside a longer word:
        # "jo" stays in "job".
        text = re.sub(rf"(?<![\w.+-]){re.escape(part)}(?![\w+-]|\.\w)", "<recipient>",
                      text, flags=re.IGNORECASE)
    return text
