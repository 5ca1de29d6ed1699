"""What a ward's digest holds: pure rules over plain values, no database, no I/O.

A digest carries the ward's items that no earlier digest carried: team posts and advice
(newest first, archive items older than `max_age` left out) and contact sessions that have
not started yet (soonest first). A ward with none of these gets no digest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from gettext import NullTranslations
from urllib.parse import urlsplit

from alerts.items import Item, ItemKind
from alerts.translations import both
from subscriptions.languages import Language
from subscriptions.topics import follows


@dataclass(frozen=True)
class DigestItem:
    id: int
    kind: ItemKind
    title: str
    body_html: str
    link: str | None
    published_at: datetime | None
    starts_at: datetime | None
    ends_at: datetime | None
    location: str | None
    topics: str = ""

    @classmethod
    def of(cls, item: Item) -> DigestItem:
        """A stored item, as digests, post emails and the printed sheet read it."""
        return cls(id=item.id, kind=ItemKind(item.kind), title=item.title,
                   body_html=item.body_html, link=item.link, published_at=item.published_at,
                   starts_at=item.starts_at, ends_at=item.ends_at, location=item.location,
                   topics=item.topics)


@dataclass(frozen=True)
class DigestContent:
    ward_code: str
    ward_name: str
    posts: list[DigestItem]
    advice: list[DigestItem]
    sessions: list[DigestItem]

    @property
    def items(self) -> list[DigestItem]:
        return [*self.posts, *self.advice, *self.sessions]

    @property
    def item_ids(self) -> list[int]:
        return [item.id for item in self.items]


def safe_link(link: str | None) -> str | None:
    """Only web links reach a resident; anything else (javascript:, data:) is dropped."""
    if link and urlsplit(link).scheme in ("http", "https"):
        return link
    return None


def newest_first(item: DigestItem) -> tuple[float, int]:
    stamp = item.published_at.timestamp() if item.published_at else 0.0
    return (-stamp, -item.id)


def compose_digest(
    ward_code: str,
    ward_name: str,
    candidates: Sequence[DigestItem],
    *,
    now: datetime,
    max_age: timedelta,
    topics: str | None = None,
) -> DigestContent | None:
    """Choose and order the items of a ward's next digest; None when there is nothing new.

    `topics` are the ones the readers follow (None: all); items on other topics are left out.
    """
    oldest = now - max_age
    posts: list[DigestItem] = []
    advice: list[DigestItem] = []
    sessions: list[DigestItem] = []
    for candidate in candidates:
        if not follows(topics, candidate.topics):
            continue
        item = replace(candidate, link=safe_link(candidate.link))
        if item.kind == ItemKind.SESSION:
            if item.starts_at is not None and item.starts_at > now:
                sessions.append(item)
        elif item.kind in (ItemKind.POST, ItemKind.ADVICE):
            if item.published_at is not None and item.published_at < oldest:
                continue
            (advice if item.kind == ItemKind.ADVICE else posts).append(item)
    if not (posts or advice or sessions):
        return None
    posts.sort(key=newest_first)
    advice.sort(key=newest_first)
    sessions.sort(key=lambda s: (s.starts_at or now, s.id))
    return DigestContent(ward_code, ward_name, posts, advice, sessions)


def digest_subject(content: DigestContent, language: Language = Language.ENGLISH) -> str:
    """'Riverside neighbourhood news: 2 updates and 1 contact session', in `language`
    (bilingual: the Welsh subject, then the English one)."""
    news = len(content.posts) + len(content.advice)
    count = len(content.sessions)

    def subject(t: NullTranslations) -> str:
        parts = []
        if news:
            parts.append(t.ngettext("%(num)d update", "%(num)d updates", news) % {"num": news})
        if count:
            parts.append(t.ngettext("%(num)d contact session", "%(num)d contact sessions",
                                    count) % {"num": count})
        summary = (t.gettext("%(news)s and %(sessions)s") % {
            "news": parts[0], "sessions": parts[1]} if len(parts) == 2 else "".join(parts))
        return t.gettext("%(ward)s neighbourhood news: %(summary)s") % {
            "ward": content.ward_name, "summary": summary}

    return both(language, subject)
