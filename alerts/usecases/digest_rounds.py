"""Queueing what residents are due: digests for daily and weekly subscribers, and one short
message per new item for immediate subscribers.

Subscribers of a ward who stand at the same point in the ledger get the same content, so
each group's message is rendered once and fanned out in one statement; then the group's
point moves on. The rules of what goes in live in `compose`, the look in `render`, the
rows in `delivery.fanout`, the points in `ledger`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.core.events import DigestQueued, EventBus
from alerts.delivery.fanout import fan_out
from alerts.digests import ledger
from alerts.digests.compose import DigestContent, DigestItem, compose_digest
from alerts.digests.schedule import DIGEST_FREQUENCIES
from alerts.mail.messages import Message, MessageItem, MessageKind
from alerts.sources.items import Item, ItemKind
from alerts.sources.registry import Source
from subscriptions.base import utcnow
from subscriptions.languages import Language
from subscriptions.subscribers import Frequency
from subscriptions.topics import follows
from subscriptions.wards import Ward, get_ward, list_wards

if TYPE_CHECKING:  # the renderer (Jinja, Babel, CSS inlining) loads once a message is written:
    # a post that no immediate subscriber hears writes none
    from alerts.mail.render import Rendered

DIGESTED_KINDS = (ItemKind.POST, ItemKind.ADVICE, ItemKind.SESSION)


@dataclass(frozen=True)
class DigestOutcome:
    ward_code: str
    message_ids: tuple[int, ...]
    items: int
    deliveries: int
    reason: str

    @property
    def queued(self) -> bool:
        return bool(self.message_ids)

    @property
    def message_id(self) -> int | None:
        return self.message_ids[0] if self.message_ids else None


def items_between(session: Session, ward: Ward, after: int, upto: int) -> list[DigestItem]:
    """The ward's live items stored after ledger point `after`, up to `upto`."""
    rows = session.scalars(
        select(Item)
        .join(Source, Source.id == Item.source_id)
        .where(
            Source.ward_id == ward.id,
            Item.id > after,
            Item.id <= upto,
            Item.withdrawn_at.is_(None),
            Item.kind.in_([kind.value for kind in DIGESTED_KINDS]),
        )
        .order_by(Item.id)
    )
    return [DigestItem.of(item) for item in rows]


def _compose(session: Session, ward: Ward, settings: Settings, after: int, upto: int,
             now: datetime, topics: str | None = None) -> DigestContent | None:
    return compose_digest(
        ward.code,
        ward.name,
        items_between(session, ward, after, upto),
        now=now,
        max_age=timedelta(days=settings.sources.max_item_age_days),
        topics=topics,
    )


def preview_digest(
    session: Session, ward_code: str, settings: Settings, now: datetime | None = None
) -> Rendered | None:
    """The next digest most of the ward's subscribers would get, changing nothing.

    With no subscribers yet, it shows every live item (what a first digest could hold).
    """
    moment = now or utcnow()
    ward = get_ward(session, ward_code)
    points = ledger.read_watermarks(session, ward.id, DIGEST_FREQUENCIES)
    after = max(points, key=lambda mark: (points[mark], -mark)) if points else 0
    content = _compose(session, ward, settings, after, ledger.newest_item_id(session, ward.id),
                       moment)
    if content is None:
        return None
    from alerts.mail.render import render_digest

    return render_digest(content, settings, now=moment, language=Language(ward.language))


def _store(session: Session, ward: Ward, kind: MessageKind, rendered: Rendered,
           item_ids: Sequence[int], now: datetime, language: Language) -> Message:
    message = Message(
        ward_id=ward.id,
        kind=kind,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        calendar=rendered.calendar,
        language=language,
        created_at=now,
    )
    session.add(message)
    session.flush()
    session.add_all(MessageItem(message_id=message.id, item_id=i) for i in item_ids)
    session.flush()
    return message


def _by_mark(audiences: list[ledger.Audience]) -> dict[int, list[ledger.Audience]]:
    grouped: dict[int, list[ledger.Audience]] = {}
    for audience in audiences:
        grouped.setdefault(audience.mark, []).append(audience)
    return dict(sorted(grouped.items()))


def queue_ward_digests(session: Session, ward: Ward, settings: Settings, now: datetime,
                       frequencies: tuple[Frequency, ...]) -> DigestOutcome:
    """Queue the ward's digest for its subscribers at these frequencies, audience by
    audience (a point in the ledger, the topics followed, the language)."""
    from alerts.mail.render import render_digest

    frequencies = tuple(f for f in frequencies if f in DIGEST_FREQUENCIES)
    ledger.open_entries(session, ward.id, frequencies)
    groups = _by_mark(ledger.audiences(session, ward, frequencies))
    if not groups:
        return DigestOutcome(ward.code, (), 0, 0, "no confirmed subscribers")
    upto = ledger.newest_item_id(session, ward.id)
    message_ids: list[int] = []
    items: set[int] = set()
    deliveries = 0
    for mark, audiences in groups.items():
        if mark >= upto:
            continue
        for audience in audiences:
            content = _compose(session, ward, settings, mark, upto, now, audience.topics)
            if content is None:
                continue
            rendered = render_digest(content, settings, now=now, language=audience.language)
            message = _store(session, ward, MessageKind.DIGEST, rendered, content.item_ids, now,
                             audience.language)
            deliveries += fan_out(session, message, now=now,
                                  audience=ledger.in_audience(ward, frequencies, audience))
            message_ids.append(message.id)
            items.update(content.item_ids)
        # Items left out (archive posts, sessions already started, topics not followed) are
        # passed over too.
        ledger.advance(session, ward.id, frequencies, mark, upto, now)
    if not message_ids:
        return DigestOutcome(ward.code, (), 0, 0, "nothing new since the last digest")
    return DigestOutcome(ward.code, tuple(message_ids), len(items), deliveries, "queued")


def queue_digests(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    ward_code: str | None = None,
    frequencies: tuple[Frequency, ...] = DIGEST_FREQUENCIES,
    now: datetime | None = None,
    bus: EventBus | None = None,
) -> list[DigestOutcome]:
    """Queue the digest of one ward, or of every ward; each ward in its own transaction."""
    moment = now or utcnow()
    with factory() as session:
        codes = [get_ward(session, ward_code).code] if ward_code else [
            ward.code for ward in list_wards(session)
        ]
    outcomes = []
    for code in codes:
        with factory() as session, session.begin():
            outcome = queue_ward_digests(session, get_ward(session, code), settings, moment,
                                         frequencies)
        outcomes.append(outcome)
        if bus is not None and outcome.queued:
            bus.publish(DigestQueued(code, outcome.message_ids, outcome.deliveries))
    return outcomes


def post_message(session: Session, ward: Ward, item: DigestItem, settings: Settings,
                 now: datetime, language: Language = Language.ENGLISH,
                 occurrences: Sequence[DigestItem] = ()) -> Message:
    """The one short message an item gets, in one language, for immediate subscribers; a
    session held on several dates (`occurrences`, `item` the soonest) gets one for all."""
    existing = session.scalar(
        select(Message)
        .join(MessageItem, MessageItem.message_id == Message.id)
        .where(Message.kind == MessageKind.POST, MessageItem.item_id == item.id,
               Message.language == language)
    )
    if existing is not None:
        return existing
    from alerts.mail.render import render_post

    rendered = render_post(ward.name, item, settings, now=now, language=language,
                           occurrences=occurrences)
    return _store(session, ward, MessageKind.POST, rendered,
                  [o.id for o in occurrences] or [item.id], now, language)


def queue_immediate(session: Session, ward: Ward, settings: Settings,
                    now: datetime) -> DigestOutcome:
    """Send each new item on its own to the ward's immediate subscribers who follow its
    topic, in each one's language."""
    frequencies = (Frequency.IMMEDIATE,)
    ledger.open_entries(session, ward.id, frequencies)
    groups = _by_mark(ledger.audiences(session, ward, frequencies))
    upto = ledger.newest_item_id(session, ward.id)
    message_ids: list[int] = []
    deliveries = 0
    for mark, audiences in groups.items():
        if mark >= upto:
            continue
        content = _compose(session, ward, settings, mark, upto, now)
        # Each post on its own; a session held on several dates once, with all of them.
        chosen = sorted([*((i, ()) for i in (*content.posts, *content.advice)),
                         *((s.session, s.occurrences) for s in content.series)],
                        key=lambda pair: pair[0].id) if content else []
        for item, occurrences in chosen:
            for audience in audiences:
                if not follows(audience.topics, item.topics):
                    continue
                message = post_message(session, ward, item, settings, now, audience.language,
                                       occurrences)
                deliveries += fan_out(session, message, now=now,
                                      audience=ledger.in_audience(ward, frequencies, audience))
                message_ids.append(message.id)
        ledger.advance(session, ward.id, frequencies, mark, upto, now)
    reason = "queued" if message_ids else "nothing new"
    return DigestOutcome(ward.code, tuple(dict.fromkeys(message_ids)), len(set(message_ids)),
                         deliveries, reason)
