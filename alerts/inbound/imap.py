"""Poll an IMAP mailbox for inbound mail: hand each message's bytes to a handler, then move it
out of the way into the done folder.

The mailbox itself is the queue. A message is taken when it is still in `imap_mailbox`, and
it leaves that mailbox only after the handler has returned, by a MOVE into
`imap_done_mailbox` (COPY, \\Deleted and EXPUNGE where the server has no MOVE). So:

- a message is read with BODY.PEEK[], which leaves it unseen, and a failure at any point
  before the move leaves it exactly where and how it was, for the next poll;
- the handler raising `RetryLater` (the database is down, ...) leaves that message in place
  and the poll goes on with the others;
- delivery to the handler is at least once, not exactly once: a crash or a lost connection
  between the handler's return and the move hands the same message over again on the next
  poll, and two pollers on one mailbox can both fetch a message before either moves it. The
  handler deduplicates by a hash of the content, which makes the repeat harmless.

Nothing about a message's content (addresses, subject, body) is ever logged here; counts and
UIDs are. Every failure to use the mailbox is an `ImapError` whose one-line message names
the server, the mailbox and what to check, and never the password.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from alerts.core.config import InboundSettings
from alerts.core.errors import AlertsError

log = logging.getLogger(__name__)

BODY = b"BODY[]"


class RetryLater(AlertsError):
    """The handler could not finish now (database down, ...): leave the message for the next
    poll."""

    http_status = 503


class ImapError(AlertsError):
    """The mailbox cannot be used; the message names host, port, mailbox and what to do —
    never the password."""

    http_status = 503


@dataclass(frozen=True)
class PollReport:
    fetched: int
    handled: int
    left: int  # the handler raised RetryLater; still in the mailbox, unseen


@dataclass(frozen=True)
class _Place:
    """Where the poll talks to, for error messages; scrubs the password from server text."""

    settings: InboundSettings

    def __str__(self) -> str:
        s = self.settings
        return f"{s.imap_host}:{s.imap_port} (mailbox {s.imap_mailbox!r})"

    def said(self, error: BaseException) -> str:
        """What the server or the socket said, on one line, without the password."""
        text = str(error) or type(error).__name__
        # imaplib's errors carry the server's reply as a bytes repr: b'[CODE] Text'.
        if text.startswith(("b'", 'b"')) and text.endswith(text[1]):
            text = text[2:-1]
        if self.settings.imap_password:
            text = text.replace(self.settings.imap_password, "***")
        return " ".join(text.split())


def poll_mailbox(
    settings: InboundSettings,
    handle: Callable[[bytes], object],
    *,
    limit: int = 500,
    timeout: float = 30.0,
) -> PollReport:
    """Hand the oldest `limit` messages waiting in the mailbox to `handle`, one by one, and move
    each one it finishes into the done folder.

    `timeout` bounds connecting and each exchange with the server, not the whole poll.
    Raises `ImapError` when the mailbox cannot be used; an exception from `handle` other than
    `RetryLater` stops the poll and propagates (that message stays in the mailbox).
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    place = _Place(settings)
    _check(settings, place)
    client = _connect(settings, timeout, place)
    with client:  # logs out, or at least closes the socket, however the poll ends
        _login(client, settings, place)
        with _server_errors(place, "opening the mailbox"):
            try:
                client.select_folder(settings.imap_mailbox)
            except IMAPClientError as error:
                raise ImapError(
                    f"cannot open mailbox {settings.imap_mailbox!r} on {settings.imap_host}:"
                    f"{settings.imap_port} ({place.said(error)}): check inbound.imap_mailbox"
                ) from None
            # Not yet handled = still here. \Deleted ones were already copied to the done
            # folder by the COPY fallback and only wait for an EXPUNGE.
            waiting = sorted(client.search(["UNDELETED"]))
        # UIDs grow with arrival in a mailbox, so the lowest are the oldest.
        uids = waiting[:limit]
        if uids:
            _ensure_folder(client, settings.imap_done_mailbox, place)
        fetched = handled = left = 0
        for uid in uids:
            with _server_errors(place, f"fetching UID {uid}", handled):
                # One at a time: memory stays at one message however large the batch.
                response = client.fetch([uid], ["BODY.PEEK[]"])
            raw = response.get(uid, {}).get(BODY)
            if raw is None:
                continue  # gone since the search: another poller has taken it
            fetched += 1
            try:
                handle(bytes(raw))
            except RetryLater:
                left += 1
                log.info("IMAP UID %d left in %s for the next poll", uid, place)
                continue
            except Exception:
                # The UID lets an operator find the message; its content stays out of the log.
                log.warning("IMAP UID %d: the handler failed; the message stays in %s",
                            uid, place)
                raise
            with _server_errors(place, f"moving UID {uid} to the done folder", handled):
                _move(client, uid, settings.imap_done_mailbox)
            handled += 1
    log.info("IMAP %s: %d fetched, %d handled, %d left for the next poll, %d beyond the limit",
             place, fetched, handled, left, len(waiting) - len(uids))
    return PollReport(fetched=fetched, handled=handled, left=left)


def _check(settings: InboundSettings, place: _Place) -> None:
    if not settings.imap_host:
        raise ImapError("IMAP polling is not configured: set inbound.imap_host, imap_port, "
                        "imap_username and imap_password")
    if not settings.imap_done_mailbox or settings.imap_done_mailbox == settings.imap_mailbox:
        # Moving into the polled mailbox itself would hand every message over again.
        raise ImapError(f"{place}: inbound.imap_done_mailbox must name another folder than "
                        f"imap_mailbox, not {settings.imap_done_mailbox!r}")


def _connect(settings: InboundSettings, timeout: float, place: _Place) -> IMAPClient:
    host, port = settings.imap_host, settings.imap_port
    try:
        client = IMAPClient(host, port, ssl=settings.imap_ssl, timeout=timeout)
    except socket.gaierror as error:
        raise ImapError(f"cannot find the IMAP host {host!r} ({place}: {place.said(error)}): "
                        "check inbound.imap_host and DNS") from None
    except ConnectionRefusedError:
        raise ImapError(f"nothing accepts connections on {place}: check inbound.imap_host "
                        "and imap_port, and that the IMAP server is running") from None
    except TimeoutError:
        hint = ("; with imap_ssl = false a TLS-only port such as 993 never answers"
                if not settings.imap_ssl else "")
        raise ImapError(f"no IMAP greeting from {place} within {timeout:g}s: check "
                        f"inbound.imap_host, imap_port and any firewall{hint}") from None
    except ssl.SSLError as error:
        raise ImapError(f"TLS with {place} failed ({place.said(error)}): check inbound.imap_ssl "
                        "(true for a TLS port such as 993, false for a plain one such as 143) "
                        "and the server's certificate") from None
    except (OSError, IMAPClientError) as error:
        raise ImapError(f"cannot connect to {place} ({place.said(error)}): check "
                        "inbound.imap_host and imap_port") from None
    # imaplib's protocol trace (DEBUG) would carry message bodies and addresses into the log.
    client._imap.debug = 0
    if not settings.imap_ssl:
        _upgrade(client, place)
    return client


def _upgrade(client: IMAPClient, place: _Place) -> None:
    """On a plain connection, switch to TLS when the server offers it (STARTTLS), so that
    the password crosses the network in clear only to a server that cannot do better."""
    try:
        offered = b"STARTTLS" in client.capabilities()
        if offered:
            client.starttls(ssl.create_default_context())
    except (ssl.SSLError, OSError, IMAPClientError) as error:
        raise ImapError(f"STARTTLS with {place} failed ({place.said(error)}): check the "
                        "server's certificate, or use imap_ssl = true on its TLS port") from None


def _login(client: IMAPClient, settings: InboundSettings, place: _Place) -> None:
    with _server_errors(place, "logging in"):
        try:
            client.login(settings.imap_username, settings.imap_password)
        except LoginError as error:
            raise ImapError(f"{place} refused the login ({place.said(error)}): check "
                            "inbound.imap_username and imap_password") from None


def _ensure_folder(client: IMAPClient, folder: str, place: _Place) -> None:
    with _server_errors(place, f"creating the done folder {folder!r}"):
        if client.folder_exists(folder):
            return
        try:
            client.create_folder(folder)
        except IMAPClientError as error:
            if client.folder_exists(folder):
                return  # another poller created it in the meantime
            raise ImapError(f"cannot create the done folder {folder!r} on {place} "
                            f"({place.said(error)}): create it by hand or set "
                            "inbound.imap_done_mailbox to a folder that exists") from None
        log.info("IMAP %s: created the done folder %r", place, folder)
        with suppress(IMAPClientError):
            client.subscribe_folder(folder)  # so that mail clients show it


def _move(client: IMAPClient, uid: int, folder: str) -> None:
    if client.has_capability("MOVE"):
        client.move([uid], folder)
        return
    client.copy([uid], folder)
    client.delete_messages([uid])
    if client.has_capability("UIDPLUS"):
        client.uid_expunge([uid])
    else:
        # Without UIDPLUS there is no EXPUNGE of one message; this also removes any other
        # message already marked \Deleted, which is what marking it asked for.
        client.expunge()


@contextmanager
def _server_errors(place: _Place, doing: str, handled: int | None = None) -> Iterator[None]:
    """Turn a failure of the connection or of the server into an `ImapError`."""
    try:
        yield
    except ImapError:
        raise
    except (OSError, IMAPClientError) as error:
        # socket.timeout, ssl.SSLError and imaplib's abort (connection lost) are all here.
        so_far = "" if handled is None else f" after handling {handled} message(s)"
        raise ImapError(f"IMAP failed while {doing} on {place}{so_far} "
                        f"({place.said(error)}); whatever was not moved to the done folder "
                        "waits for the next poll: check the server and its log") from None
