"""What a ward's digest holds: pure rules over plain values, no database, no I/O.

A digest carries the ward's items that no earlier digest carried: team posts and advice
(newest first, archive items older than `max_age` left out) and contact sessions that have
not started yet (soonest first). A ward with none of these gets no digest.

A contact session held on several dates (a weekly drop-in: one RRULE in a calendar, or the
same title and place posted again) is one session with a list of dates everywhere it is
shown or counted: `group_sessions` makes each `SessionSeries`, and the digest's subject,
body and calendar, the printed sheet, the ward's archive page and the officers' ward page
all read it.

A digest covers everything new, however much, but lists only a readable part of it
(`listing`): the soonest `MAX_LISTED_SESSIONS` sessions (each with its first
`MAX_LISTED_DATES` dates) and the newest `MAX_LISTED_ITEMS` of each section of news and
advice. Every rendering (the email's HTML, text and calendar,
the stored copy, previews and the printed sheet) lists that part and counts the rest, with
the ward's public page (`ward_page_url`) where a reader finds them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from gettext import NullTranslations
from urllib.parse import quote, urlsplit

from alerts.sources.items import Item, ItemKind
from subscriptions.languages import Language
from subscriptions.topics import follows

# How much one digest lists; the rest are counted. A resident reads a digest in a minute or
# two, often on a phone: ten coming sessions, ten team updates and ten pieces of advice are
# more than a busy ward's week. It also keeps the email's HTML below the 102 KB after which
# Gmail clips a message, hiding its foot (how to report a crime, unsubscribe): with feed
# summaries of a paragraph each, a full English digest is about 30 KB and a bilingual one,
# which holds everything twice, about 60 KB, leaving room for longer posts. A calendar that
# repeats without end (one made 59,933 sessions and an 8 MB digest) still lists ten.
MAX_LISTED_SESSIONS = 10
MAX_LISTED_ITEMS = 10
MAX_LISTED_DATES = 10


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
class SessionSeries:
    """One contact session and every date it is held, soonest first: a weekly drop-in is
    one series of several occurrences, a one-off session a series of one. Its title, place
    and details are those of its soonest occurrence (`session`)."""

    occurrences: tuple[DigestItem, ...]
    more_dates: int = 0  # later dates a listing counts but does not show (`listing`)

    @property
    def session(self) -> DigestItem:
        return self.occurrences[0]

    @property
    def dates(self) -> tuple[tuple[datetime | None, datetime | None], ...]:
        """Each occurrence's start and end, soonest first."""
        return tuple((o.starts_at, o.ends_at) for o in self.occurrences)

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(o.id for o in self.occurrences)


def same_session(item: DigestItem) -> tuple[str, str]:
    """What makes two occurrences one session: the same title and place, whatever their
    case and spacing (an expanded RRULE, or an officer posting the drop-in again)."""
    return (" ".join(item.title.split()).casefold(),
            " ".join((item.location or "").split()).casefold())


def _soonest(item: DigestItem) -> tuple[bool, datetime, int]:
    return (item.starts_at is None, item.starts_at or datetime.min.replace(tzinfo=UTC), item.id)


def group_sessions(sessions: Iterable[DigestItem]) -> list[SessionSeries]:
    """Occurrences of the same session (`same_session`) as one series each, its dates
    soonest first; the series in the order of their soonest date (one with no start last)."""
    grouped: dict[tuple[str, str], list[DigestItem]] = {}
    for item in sorted(sessions, key=_soonest):
        grouped.setdefault(same_session(item), []).append(item)
    return [SessionSeries(tuple(occurrences)) for occurrences in grouped.values()]


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
    def series(self) -> list[SessionSeries]:
        """The sessions, each held on several dates counted and shown once."""
        return group_sessions(self.sessions)

    @property
    def item_ids(self) -> list[int]:
        return [item.id for item in self.items]


@dataclass(frozen=True)
class Listing:
    """What a rendering of a digest lists in each section, and how many more it only counts."""

    posts: list[DigestItem]
    advice: list[DigestItem]
    sessions: list[SessionSeries]
    more_posts: int
    more_advice: int
    more_sessions: int


def listing(posts: Sequence[DigestItem], advice: Sequence[DigestItem],
            sessions: Sequence[SessionSeries]) -> Listing:
    """The first of each section, in the order given (news and advice newest first, sessions
    soonest first), up to the limits, each session with its first dates; the rest counted."""
    return Listing(
        posts=list(posts[:MAX_LISTED_ITEMS]),
        advice=list(advice[:MAX_LISTED_ITEMS]),
        sessions=[SessionSeries(series.occurrences[:MAX_LISTED_DATES], series.more_dates + max(
                      0, len(series.occurrences) - MAX_LISTED_DATES))
                  for series in sessions[:MAX_LISTED_SESSIONS]],
        more_posts=max(0, len(posts) - MAX_LISTED_ITEMS),
        more_advice=max(0, len(advice) - MAX_LISTED_ITEMS),
        more_sessions=max(0, len(sessions) - MAX_LISTED_SESSIONS),
    )


def ward_page_url(base_url: str, ward_code: str) -> str:
    """The ward's public page on the site (`/wards/CODE/`, served by alerts.web.open_feeds):
    its recent news and coming sessions, where a digest sends readers for what it only
    counts."""
    return f"{base_url.rstrip('/')}/wards/{quote(ward_code, safe='')}/"


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
    (bilingual: the Welsh subject, then the English one). The counts are of everything the
    digest covers, listed or only counted; a session held on several dates counts once."""
    news = len(content.posts) + len(content.advice)
    count = len(content.series)

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

    from alerts.core.translations import both  # Babel: only once a subject is written

    return both(language, subject)
