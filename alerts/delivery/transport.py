"""The transport contract: how the sender hands one finished email to whatever carries it.

A transport either accepts the message or says, by the exception it raises, whether trying
again later can help (`TransientFailure`) or not (`PermanentFailure`). The sender turns that
answer into the row's next state; transports never touch the database.
"""

from __future__ import annotations

import re
from types import TracebackType
from typing import Protocol, Self


class DeliveryFailure(Exception):
    """A message was not handed over; `reason` is safe to store (it names no recipient)."""

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class TransientFailure(DeliveryFailure):
    """Try again later: a 4xx answer, a dropped connection, a timeout, a full disk."""


class PermanentFailure(DeliveryFailure):
    """Trying again will not help: a 5xx answer or an address that cannot be sent to."""


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


def redact(text: str, address: str) -> str:
    """Remove an address from a server's reply text before it is stored or logged.

    Servers often echo the recipient ("<jo@x.org>: mailbox busy"); addresses must not end
    up in `last_error` or in logs.
    """
    if not address:
        return text
    return re.sub(re.escape(address), "<recipient>", text, flags=re.IGNORECASE)
