"""Bounds on what one source may bring in one collect, and the words for what they left out.

A broken or hostile source (a calendar event that repeats every second for ever, a feed of
60,000 entries, an API answer listing thousands of events) must not flood residents, the store
or memory. Each parser stops at its cap while it works, rather than building everything and
slicing it; what it kept is a `Bounded`, with one phrase for each thing it left out, naming the
config key that set the cap. The collect adds the source's name and reports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from alerts.sources.items import CollectedItem

MAX_NAMED = 3  # events named one by one in a note; the rest are counted
MAX_NAME = 80


@dataclass(frozen=True)
class Bounded:
    """The items a parser kept, in its order of preference, and what it left out."""

    items: list[CollectedItem]
    left_out: tuple[str, ...] = ()


def first_items(bounded: Bounded, cap: int) -> Bounded:
    """At most `cap` items (`sources.max_items_per_collect`): the first, in the parser's order
    (the soonest sessions, the newest posts)."""
    if len(bounded.items) <= cap:
        return bounded
    note = items_note(cap, len(bounded.items))
    return Bounded(bounded.items[:cap], (*bounded.left_out, note))


def items_note(cap: int, found: int | None) -> str:
    """`found` is None when the parser stopped before it could count them all."""
    of = f" of {found:,}" if found is not None else ""
    more = f"{found - cap:,}" if found is not None else "more"
    return (f"kept the first {cap:,}{of} items ({more} left out: "
            f"sources.max_items_per_collect = {cap:,})")


def occurrences_note(titles: Sequence[str], cap: int) -> str:
    """Recurring events of which only the first `cap` occurrences were kept."""
    each = "each of " if len(titles) > 1 else ""
    return (f"kept {cap:,} occurrences of {each}{_names(titles)} (more left out: "
            f"sources.max_occurrences_per_event = {cap:,})")


def unread_note(titles: Sequence[str], skipped: int) -> str:
    """Recurring events whose rule could not be read up to the coming weeks within bounds."""
    return (f"left out the occurrences of {_names(titles)} (its rule gives more than "
            f"{skipped:,} dates before the coming weeks)")


def entries_note(cap: int, found: int, key: str) -> str:
    """A feed of which only the newest `cap` entries were read; `key` is the config key."""
    return (f"kept the newest {cap:,} of {found:,} entries ({found - cap:,} left out: "
            f"{key} = {cap:,})")


def _names(titles: Sequence[str]) -> str:
    named = ", ".join(f"'{_name(title)}'" for title in titles[:MAX_NAMED])
    rest = len(titles) - MAX_NAMED
    if rest > 0:
        named += f" and {rest:,} more event{'s' if rest > 1 else ''}"
    return named


def _name(title: str) -> str:
    text = " ".join(title.split()) or "(untitled)"
    return text if len(text) <= MAX_NAME else text[: MAX_NAME - 1] + "…"
