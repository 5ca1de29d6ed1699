"""The Source table and the commands that add, list and remove sources of a ward."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from urllib.parse import urlsplit

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from alerts.core.errors import AlertsError
from subscriptions.base import Base, utcnow
from subscriptions.wards import Ward, get_ward


class SourceKind(StrEnum):
    RSS = "rss"
    ATOM = "atom"
    ICS = "ics"
    POLICEUK = "policeuk"
    OFFICER = "officer"


FETCHED_KINDS = (SourceKind.RSS, SourceKind.ATOM, SourceKind.ICS, SourceKind.POLICEUK)

# A data.police.uk force id and neighbourhood id, as they appear in the API's paths.
_FORCE_NEIGHBOURHOOD = re.compile(r"[A-Za-z0-9_-]+/[A-Za-z0-9_-]+")


MAX_URL = 2000
MAX_ETAG = 500
MAX_LAST_MODIFIED = 100


class SourceError(AlertsError):
    """A source could not be added or collected; the message names it and says why."""

    http_status = 400


class Source(Base):
    __tablename__ = "sources"
    __table_args__ = (UniqueConstraint("ward_id", "kind", "url"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ward_id: Mapped[int] = mapped_column(ForeignKey("wards.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(String(MAX_URL))
    etag: Mapped[str | None] = mapped_column(String(MAX_ETAG), default=None)
    last_modified: Mapped[str | None] = mapped_column(String(MAX_LAST_MODIFIED), default=None)
    last_fetched_at: Mapped[datetime | None] = mapped_column(default=None)
    last_ok_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    ward: Mapped[Ward] = relationship()

    def describe(self) -> str:
        return f"source {self.id} ({self.kind} {self.url})"


def add_source(session: Session, ward_code: str, kind: str, url: str, *,
               local_files: bool = False) -> Source:
    """Add a source to a ward; `local_files` lets `alerts demo` (alone) add `file://` URLs,
    which only a demo config's client reads (alerts.sources.fetch.make_client)."""
    ward = get_ward(session, ward_code)
    try:
        source_kind = SourceKind(kind)
    except ValueError:
        raise SourceError(f"unknown source kind {kind!r}") from None
    if source_kind == SourceKind.OFFICER:
        raise SourceError("officer posts need no source: use `alerts post`")
    url = url.strip()
    if len(url) > MAX_URL:
        raise SourceError(f"the URL is longer than {MAX_URL} characters")
    if source_kind == SourceKind.POLICEUK:
        split_force_neighbourhood(url)
    else:
        parts = urlsplit(url)
        local = local_files and parts.scheme == "file" and parts.path.startswith("/")
        if not local and (parts.scheme not in ("http", "https") or not parts.netloc):
            raise SourceError(f"{url!r} is not an http(s) URL")
    existing = session.scalar(
        select(Source).where(Source.ward_id == ward.id, Source.kind == kind, Source.url == url)
    )
    if existing is not None:
        raise SourceError(f"ward {ward.code} already has {existing.describe()}")
    source = Source(ward_id=ward.id, kind=source_kind, url=url)
    session.add(source)
    session.flush()
    return source


def split_force_neighbourhood(value: str) -> tuple[str, str]:
    """The (force, neighbourhood) ids of a policeuk source, written FORCE/NEIGHBOURHOOD."""
    if not _FORCE_NEIGHBOURHOOD.fullmatch(value):
        raise SourceError(
            f"{value!r} is not a data.police.uk neighbourhood: policeuk sources are written "
            "FORCE/NEIGHBOURHOOD, such as leicestershire/NC04"
        )
    force, neighbourhood = value.split("/")
    return force, neighbourhood


def officer_source(session: Session, ward: Ward) -> Source:
    """The ward's own source for posts written with `alerts post`, made on first use."""
    source = session.scalar(
        select(Source).where(Source.ward_id == ward.id, Source.kind == SourceKind.OFFICER)
    )
    if source is None:
        source = Source(ward_id=ward.id, kind=SourceKind.OFFICER, url=f"officer:{ward.code}")
        session.add(source)
        session.flush()
    return source


def list_sources(session: Session, ward_code: str | None = None) -> list[Source]:
    query = select(Source).order_by(Source.id)
    if ward_code is not None:
        query = query.where(Source.ward_id == get_ward(session, ward_code).id)
    return list(session.scalars(query))


def remove_source(session: Session, source_id: int) -> Source:
    source = session.get(Source, source_id)
    if source is None:
        raise SourceError(f"no source with id {source_id} (see `alerts sources list`)")
    session.delete(source)
    session.flush()
    return source
