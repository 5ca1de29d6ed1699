"""Items: what sources yield (posts, advice, contact sessions, alerts), stored once per guid."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from alerts.sources.registry import Source
from subscriptions.base import NEVER_REUSED, Base, id_never_reused, utcnow
from subscriptions.topics import MAX_TOPICS


class ItemKind(StrEnum):
    POST = "post"
    ADVICE = "advice"
    SESSION = "session"
    ALERT = "alert"


class Item(Base):
    __tablename__ = "items"
    # A ward's stamp (`open_feeds.ward_stamp`): its items' count, newest change and newest
    # withdrawal, read from this index alone.
    __table_args__ = (UniqueConstraint("source_id", "guid"),
                      Index("ix_items_source_id_changed_at", "source_id", "changed_at",
                            "withdrawn_at"),
                      NEVER_REUSED)

    id: Mapped[int] = id_never_reused()
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    guid: Mapped[str] = mapped_column(String(1000))
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(500))
    body_html: Mapped[str] = mapped_column(Text, default="")
    link: Mapped[str | None] = mapped_column(String(2000), default=None)
    published_at: Mapped[datetime | None] = mapped_column(default=None)
    starts_at: Mapped[datetime | None] = mapped_column(default=None)
    ends_at: Mapped[datetime | None] = mapped_column(default=None)
    location: Mapped[str | None] = mapped_column(String(500), default=None)
    collected_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    withdrawn_at: Mapped[datetime | None] = mapped_column(default=None)
    # The topics an officer tagged the post with, sorted and comma-separated; "" = none.
    topics: Mapped[str] = mapped_column(String(MAX_TOPICS), default="",
                                        server_default=text("''"))
    # When the row last changed: set on insert and by the ORM on every UPDATE of it (an
    # edit, a withdrawal or its undoing, new topics), Core `update(Item)` included; only
    # raw SQL would pass it by, and none writes items. What the open feeds' kept copies
    # are checked against.
    changed_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    source: Mapped[Source] = relationship()


@dataclass(frozen=True)
class CollectedItem:
    """An item as a collector read it, before it is stored; HTML already sanitised."""

    guid: str
    kind: ItemKind
    title: str
    body_html: str = ""
    link: str | None = None
    published_at: datetime | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    location: str | None = None
    topics: str = ""  # sorted, comma-separated (subscriptions.topics.join_topics)


@dataclass(frozen=True)
class StoreResult:
    added: int
    updated: int
    withdrawn: int
    new_item_ids: tuple[int, ...] = ()


def store_items(
    session: Session,
    source: Source,
    collected: Iterable[CollectedItem],
    *,
    withdraw_missing_after: datetime | None = None,
) -> StoreResult:
    """Insert new items, refresh changed ones, keep one row per (source, guid).

    With `withdraw_missing_after`, a stored item of this source that starts after that
    time but is no longer in the source (a cancelled or deleted session) is withdrawn,
    so that no digest announces it.
    """
    existing = {
        item.guid: item
        for item in session.scalars(select(Item).where(Item.source_id == source.id))
    }
    added = updated = withdrawn = 0
    seen: set[str] = set()
    new_items: list[Item] = []
    for entry in collected:
        if entry.guid in seen:
            continue
        seen.add(entry.guid)
        item = existing.get(entry.guid)
        if item is None:
            item = Item(
                source_id=source.id,
                guid=entry.guid,
                kind=entry.kind,
                title=entry.title,
                body_html=entry.body_html,
                link=entry.link,
                published_at=entry.published_at,
                starts_at=entry.starts_at,
                ends_at=entry.ends_at,
                location=entry.location,
                topics=entry.topics,
            )
            session.add(item)
            new_items.append(item)
            added += 1
            continue
        changed = False
        for field in ("title", "body_html", "link", "starts_at", "ends_at", "location",
                      "topics"):
            if getattr(item, field) != getattr(entry, field):
                setattr(item, field, getattr(entry, field))
                changed = True
        if item.withdrawn_at is not None:
            item.withdrawn_at = None
            changed = True
        updated += changed
    if withdraw_missing_after is not None:
        now = utcnow()
        for guid, item in existing.items():
            if (
                guid not in seen
                and item.withdrawn_at is None
                and item.starts_at is not None
                and item.starts_at > withdraw_missing_after
            ):
                item.withdrawn_at = now
                withdrawn += 1
    session.flush()
    return StoreResult(added, updated, withdrawn, tuple(item.id for item in new_items))
