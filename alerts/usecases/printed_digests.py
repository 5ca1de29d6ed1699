"""The printable digest: a ward's latest digest as an A4 sheet for Neighbourhood Watch members
without email.

This module owns what goes on the sheet (the items the newest stored digest carried, read
back through `MessageItem`, not the email's HTML, listed within the email's own limits,
`compose.listing`, the rest counted with the ward's page written out), the print template's
context, and the one
adapter that turns that HTML into PDF bytes with WeasyPrint. WeasyPrint is imported there and
only there, so every other command works on a machine without Pango. Writing the file is
atomic: a failure never leaves half a PDF where the caller asked for one.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts.core.config import ForceSettings, Settings
from alerts.core.errors import AlertsError
from alerts.digests.compose import (
    DigestItem,
    group_sessions,
    listing,
    newest_first,
    safe_link,
    ward_page_url,
)
from alerts.mail.messages import Message, MessageItem, MessageKind
from alerts.mail.render import SessionTimes, environment, local_date, session_times
from alerts.sources.items import Item, ItemKind
from subscriptions.schemes import Scheme, get_scheme
from subscriptions.wards import Ward, get_ward

PANGO_PACKAGES = "libpango-1.0-0 libpangoft2-1.0-0"


class PrintError(AlertsError, ValueError):
    """The sheet cannot be made as asked; the message says why and what to do."""

    http_status = 400


class NoDigestYet(PrintError):
    """The ward has had no digest, so there is nothing to print."""

    http_status = 404


@dataclass(frozen=True)
class PrintedDigest:
    """Everything the sheet shows, chosen and ordered; the template only lays it out."""

    ward_code: str
    ward_name: str
    scheme_name: str | None
    digest_day: date  # the day the digest was made, in the ward's time zone
    digest_date: str  # the same, written out
    printed_date: str
    posts: list[DigestItem]
    advice: list[DigestItem]
    sessions: list[SessionTimes]
    # How many more of each the digest carried than the sheet lists.
    more_posts: int
    more_advice: int
    more_sessions: int
    force: ForceSettings
    # The ward's public news page, for readers who do go online; None while web.base_url is
    # still a loopback address, which would mean nothing on paper.
    archive_url: str | None

    @property
    def is_empty(self) -> bool:
        return not (self.posts or self.advice or self.sessions)


# --- choosing the content (plain functions) ----------------------------------------------

def latest_digest(session: Session, ward: Ward) -> tuple[datetime, list[int]] | None:
    """When the ward's newest digest was made, and the ids of every digest message made then.

    One run makes a message per group of residents (a point in the ledger, the topics they
    follow, their language), all stamped with the run's moment; the sheet is for the whole
    ward, so it takes the items of all of them, not whichever group's message came last.
    """
    newest = session.scalar(
        select(func.max(Message.created_at))
        .where(Message.ward_id == ward.id, Message.kind == MessageKind.DIGEST))
    if newest is None:
        return None
    ids = session.scalars(
        select(Message.id)
        .where(Message.ward_id == ward.id, Message.kind == MessageKind.DIGEST,
               Message.created_at == newest)
        .order_by(Message.id))
    return newest, list(ids)


def digest_items(session: Session, message_ids: list[int]) -> list[DigestItem]:
    """The items those messages carried, once each and as they stand now (an officer's later
    correction is printed); withdrawn items, such as a cancelled session, are left out."""
    carried = select(MessageItem.item_id).where(MessageItem.message_id.in_(message_ids))
    rows = session.scalars(
        select(Item)
        .where(Item.id.in_(carried), Item.withdrawn_at.is_(None))
        .order_by(Item.id)
    )
    return [replace(DigestItem.of(item), link=safe_link(item.link)) for item in rows]


def _over(item: DigestItem, now: datetime) -> bool:
    """A session that has ended by the time of printing would only mislead on paper."""
    last = item.ends_at or item.starts_at
    return last is not None and last <= now


def sort_items(items: list[DigestItem], now: datetime) -> tuple[
        list[DigestItem], list[DigestItem], list[DigestItem]]:
    """Posts and advice newest first, coming sessions soonest first (as the email has them)."""
    posts = sorted((i for i in items if i.kind == ItemKind.POST), key=newest_first)
    advice = sorted((i for i in items if i.kind == ItemKind.ADVICE), key=newest_first)
    sessions = sorted((i for i in items if i.kind == ItemKind.SESSION and not _over(i, now)),
                      key=lambda s: (s.starts_at or now, s.id))
    return posts, advice, sessions


def printed_digest(session: Session, settings: Settings, ward: Ward, *, now: datetime,
                   scheme: Scheme | None = None) -> PrintedDigest:
    """The sheet for the ward's latest digest, headed for `scheme` when given (which must be
    one of the ward's schemes); NoDigestYet when the ward has had none."""
    if scheme is not None and scheme.ward_id != ward.id:
        raise PrintError(f"the scheme {scheme.name!r} is in ward {scheme.ward.code}, "
                         f"not {ward.code}")
    latest = latest_digest(session, ward)
    if latest is None:
        raise NoDigestYet(f"ward {ward.code} has had no digest yet, so there is nothing to "
                          f"print: queue one with `alerts digest send --ward {ward.code}`, "
                          "then print again")
    zone = ZoneInfo(settings.scheduler.timezone)
    made_at, message_ids = latest
    posts, advice, sessions = sort_items(digest_items(session, message_ids), now)
    shown = listing(posts, advice, group_sessions(sessions))
    return PrintedDigest(
        ward_code=ward.code,
        ward_name=ward.name,
        scheme_name=scheme.name if scheme is not None else None,
        digest_day=made_at.astimezone(zone).date(),
        digest_date=local_date(made_at, zone),
        printed_date=local_date(now, zone),
        posts=shown.posts,
        advice=shown.advice,
        sessions=session_times(shown.sessions, zone),
        more_posts=shown.more_posts,
        more_advice=shown.more_advice,
        more_sessions=shown.more_sessions,
        force=settings.force,
        archive_url=_archive_url(settings.web.base_url, ward.code),
    )


def _archive_url(base_url: str, ward_code: str) -> str | None:
    host = urlsplit(base_url).hostname or ""
    if host in ("localhost", "::1") or host.startswith("127."):
        return None
    return ward_page_url(base_url, ward_code)


def printed_digest_for(session: Session, settings: Settings, ward_code: str, *, now: datetime,
                       scheme_name: str | None = None) -> PrintedDigest:
    """The same, by ward code and scheme name (the command line's way of asking)."""
    ward = get_ward(session, ward_code)
    scheme = get_scheme(session, scheme_name) if scheme_name is not None else None
    return printed_digest(session, settings, ward, now=now, scheme=scheme)


def pdf_filename(sheet: PrintedDigest) -> str:
    """A download name with nothing in it that a browser, a header or a file system could
    trip on: lower-case letters, digits and hyphens."""
    label = sheet.scheme_name or sheet.ward_name
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") or "ward"
    return f"{slug}-digest-{sheet.digest_day.isoformat()}.pdf"


def render_html(sheet: PrintedDigest) -> str:
    context: dict[str, Any] = {"sheet": sheet}
    return environment().get_template("print/digest.html").render(context)


# --- the adapter: HTML to PDF ----------------------------------------------------------

def render_pdf(sheet: PrintedDigest) -> bytes:
    """The sheet as PDF bytes, through WeasyPrint (CSS Paged Media: @page size A4)."""
    html = render_html(sheet)
    try:
        import weasyprint
    except OSError as exc:  # WeasyPrint loads Pango (through cffi) as it is imported
        raise PrintError(f"printing needs the Pango libraries, which are missing ({exc}); on "
                         f"Debian: apt-get install {PANGO_PACKAGES}") from None
    pdf: bytes = weasyprint.HTML(string=html, base_url=None).write_pdf()
    return pdf


def write_atomically(data: bytes, out: Path) -> None:
    """Write through a temporary file beside `out`, then rename it into place."""
    out = out.resolve()
    handle, temporary = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            os.fchmod(file.fileno(), 0o644)  # mkstemp's 0600 would hide it from a print queue
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
