"""An officer's own post, advice or contact session: checked and turned into a CollectedItem.

Pure: no I/O. The caller stores the item under the ward's officer source.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from alerts.sources.items import CollectedItem, ItemKind
from alerts.sources.registry import SourceError
from alerts.sources.sanitise import as_safe_html
from subscriptions.topics import TopicError, choose_topics, join_topics

MAX_TITLE = 500
MAX_LOCATION = 500


def officer_item(
    *,
    title: str,
    body: str,
    kind: ItemKind,
    starts: datetime | None,
    ends: datetime | None,
    location: str | None,
    now: datetime,
    topics: Iterable[str] = (),
    known_topics: Iterable[str] = (),
) -> CollectedItem:
    """Check what an officer wrote and return it as an item; raise SourceError saying what is wrong.

    `body` may be plain text or simple HTML; either way it is stored as sanitised HTML.
    Times must be aware datetimes. `topics` must be among `known_topics` (the deployer's
    `topics.names`); an urgent alert takes none, since it goes to everyone.
    """
    if "\r" in title or "\n" in title:
        raise SourceError("the title must be a single line")
    title = " ".join(title.split())
    if not title:
        raise SourceError("the title is empty")
    if len(title) > MAX_TITLE:
        raise SourceError(f"the title is longer than {MAX_TITLE} characters")
    for name, moment in (("the start", starts), ("the end", ends), ("now", now)):
        if moment is not None and moment.utcoffset() is None:
            raise SourceError(f"{name} time has no time zone")
    place = " ".join((location or "").split()) or None
    if place is not None and len(place) > MAX_LOCATION:
        raise SourceError(f"the location is longer than {MAX_LOCATION} characters")
    if kind == ItemKind.SESSION:
        if starts is None:
            raise SourceError("a session needs a start time")
        if starts < now:
            raise SourceError(f"the session would start in the past ({starts.isoformat()})")
        if ends is not None and ends <= starts:
            raise SourceError("the session must end after it starts")
    elif starts is not None or ends is not None or place is not None:
        raise SourceError(f"a {kind.value} has no start, end or location; only a session has")
    try:
        chosen = choose_topics(topics, known_topics)
    except TopicError as error:
        raise SourceError(str(error)) from None
    if chosen and kind == ItemKind.ALERT:
        raise SourceError("an urgent alert goes to everyone, so it takes no topic")
    return CollectedItem(
        guid=f"officer:{uuid.uuid4()}",
        kind=kind,
        title=title,
        body_html=as_safe_html(body),
        link=None,
        published_at=now,
        starts_at=starts,
        ends_at=ends,
        location=place,
        topics=join_topics(chosen),
    )
