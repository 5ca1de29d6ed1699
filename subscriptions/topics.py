"""Topics: what a post is about (burglary, scams, ...) and which of them a resident follows.

The deployer names the topics (`topics.names` in the config). An item and a subscription
keep theirs as one sorted, comma-separated string, so that residents who follow the same
topics share one rendered digest. A subscription with no choice (None) follows every
topic; an item with no topic (general team news, advice, contact sessions) goes to
everyone; urgent alerts ignore topics altogether (see `alerts.usecases.posting`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from subscriptions.errors import AlertsError

MAX_TOPICS = 500
MAX_TOPIC_NAME = 40


class TopicError(AlertsError, ValueError):
    """A topic that is not one of the deployer's list; the message lists them."""

    http_status = 400


def normalise_topic(name: str) -> str:
    return " ".join(name.split()).lower()


def choose_topics(chosen: Iterable[str], known: Iterable[str]) -> list[str]:
    """The chosen topics, checked against the known ones, sorted and without repeats."""
    allowed = {normalise_topic(name) for name in known}
    picked: set[str] = set()
    for name in chosen:
        topic = normalise_topic(name)
        if not topic:
            continue
        if topic not in allowed:
            choices = ", ".join(sorted(allowed)) or "(none are configured)"
            raise TopicError(f"topic {name!r} is not one of: {choices}")
        picked.add(topic)
    return sorted(picked)


def join_topics(topics: Iterable[str]) -> str:
    return ",".join(sorted({normalise_topic(t) for t in topics if normalise_topic(t)}))


def split_topics(stored: str | None) -> list[str]:
    return [topic for topic in (stored or "").split(",") if topic]


def follows(followed: str | None, item_topics: str) -> bool:
    """Whether a subscription that follows `followed` gets an item tagged `item_topics`."""
    if followed is None or not item_topics:
        return True
    return bool(set(split_topics(followed)) & set(split_topics(item_topics)))


def topics_by_ward(ward_codes: Collection[str], everything: Collection[str],
                   ticked: Iterable[str], known: Iterable[str]) -> dict[str, str | None]:
    """The preferences form's topic choices for the wards it showed topics for
    (`ward_codes`): None (everything) when the code is in `everything`, else the topics
    ticked for it ("CODE:topic" values)."""
    known = list(known)
    per_ward: dict[str, list[str]] = {code: [] for code in ward_codes}
    for value in ticked:
        code, _, topic = value.partition(":")
        if code in per_ward:
            per_ward[code].append(topic)
    chosen: dict[str, str | None] = {}
    for code, topics in per_ward.items():
        if code in everything or not known:
            chosen[code] = None
            continue
        picked = choose_topics(topics, known)
        if not picked:
            raise TopicError(f"ward {code}: tick at least one topic, or keep "
                             "\"everything from this ward\"")
        chosen[code] = join_topics(picked)
    return chosen
