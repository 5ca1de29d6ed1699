"""Posting: an officer's post, advice, contact session or urgent alert for a ward. One
service for the staff pages and `alerts post` alike, so both check, store, audit and
announce a post the same way.

`post_draft` is the whole of it: it checks the draft (`check_draft`: the field rules the
form shows, then `officer_item`'s), stores it under the ward's officer source or renders and
queues an urgent alert (`post_urgent`), writes the audit entry naming who posted it,
commits, and then announces it on the event bus: `ItemPublished` (the pipeline queues the
immediate subscribers' messages at once) or `UrgentAlertPosted`. `preview_draft` renders the
email and counts who it reaches, storing nothing: the page's preview and confirmation, and
the question `alerts post --urgent` asks on a terminal.

An urgent alert goes at once to every confirmed subscriber whatever their frequency, ahead
of digests already queued. It is stored as an item (so the record of what was said stays
with the ward's other posts) and as a message rendered once for each language the ward's
residents read (topics do not narrow it: an alert goes to everyone); fan-out gives its rows
a higher priority, so senders claim them before anything else. Alerts are never repeated in
digests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.accounts.access import Principal
from alerts.accounts.audit import record
from alerts.core.config import Settings
from alerts.core.db import transaction
from alerts.core.events import EventBus, ItemPublished, UrgentAlertPosted
from alerts.delivery.fanout import fan_out
from alerts.digests.compose import DigestItem
from alerts.mail.messages import Message, MessageItem, MessageKind
from alerts.sources.items import CollectedItem, ItemKind, store_items
from alerts.sources.officer import MAX_LOCATION, MAX_TITLE, officer_item
from alerts.sources.registry import SourceError, officer_source
from alerts.usecases.staff import InputError, ward_for
from subscriptions.languages import Language
from subscriptions.subscribers import (
    Frequency,
    Subscriber,
    Subscription,
    reads_in,
    receiving,
)
from subscriptions.topics import TopicError, choose_topics, follows
from subscriptions.wards import Ward, get_ward

if TYPE_CHECKING:  # the renderer (Jinja, Babel, CSS inlining) loads once a message is written
    from alerts.mail.render import Rendered

URGENT_PRIORITY = 10
MAX_BODY = 20_000
POST_KINDS = (ItemKind.POST, ItemKind.ADVICE, ItemKind.SESSION)


@dataclass(frozen=True)
class UrgentOutcome:
    ward_code: str
    message_id: int  # in the ward's own language
    deliveries: int
    message_ids: tuple[int, ...] = ()  # one per language sent


def languages_read(session: Session, ward: Ward) -> list[Language]:
    """The ward's language first, then any other its confirmed subscribers chose."""
    chosen = session.scalars(
        select(Subscriber.language).distinct()
        .join(Subscription, Subscription.subscriber_id == Subscriber.id)
        .where(Subscription.ward_id == ward.id, receiving(), Subscriber.language.is_not(None))
    )
    own = Language(ward.language)
    return [own, *sorted({Language(c) for c in chosen if c is not None} - {own})]


def post_urgent(session: Session, settings: Settings, *, ward_code: str, title: str,
                body: str, now: datetime) -> UrgentOutcome:
    """Store, render and queue an urgent alert in the caller's transaction."""
    from alerts.mail.render import render_alert

    ward = get_ward(session, ward_code)
    collected = officer_item(title=title, body=body, kind=ItemKind.ALERT, starts=None,
                             ends=None, location=None, now=now)
    stored = store_items(session, officer_source(session, ward), [collected])
    message_ids: list[int] = []
    deliveries = 0
    for language in languages_read(session, ward):
        rendered = render_alert(ward.name, collected.title, collected.body_html, settings,
                                now=now, language=language)
        message = Message(ward_id=ward.id, kind=MessageKind.ALERT, subject=rendered.subject,
                          html=rendered.html, text=rendered.text, calendar=None,
                          language=language, created_at=now)
        session.add(message)
        session.flush()
        session.add_all(MessageItem(message_id=message.id, item_id=i)
                        for i in stored.new_item_ids)
        deliveries += fan_out(session, message, now=now, priority=URGENT_PRIORITY,
                              audience=reads_in(language, ward.language))
        message_ids.append(message.id)
    return UrgentOutcome(ward.code, message_ids[0], deliveries, tuple(message_ids))


# --- the service: check, preview, store, audit, announce ---------------------------------


@dataclass(frozen=True)
class Draft:
    """A post as the officer wrote it. `kind` ALERT is an urgent alert (title and body only)."""

    kind: ItemKind
    title: str
    body: str
    starts: datetime | None = None
    ends: datetime | None = None
    location: str | None = None
    topics: tuple[str, ...] = ()


def check_draft(draft: Draft, *, now: datetime, known_topics: tuple[str, ...] = ()
                ) -> CollectedItem:
    """The draft as an item, or InputError naming each field that is wrong.

    The field checks say what the form should show (and `alerts post` prints);
    `officer_item` has the last word.
    """
    errors: dict[str, str] = {}
    title = " ".join(draft.title.split())
    if not title:
        errors["title"] = "Enter a title"
    elif len(title) > MAX_TITLE:
        errors["title"] = f"The title must be {MAX_TITLE} characters or fewer"
    if not draft.body.strip():
        errors["body"] = "Enter the text residents will read"
    elif len(draft.body) > MAX_BODY:
        errors["body"] = f"The text must be {MAX_BODY:,} characters or fewer"
    if draft.kind == ItemKind.SESSION:
        if draft.starts is None:
            errors["starts"] = "Enter the date and time the session starts"
        elif draft.starts < now:
            errors["starts"] = "The session must start in the future"
        elif draft.ends is not None and draft.ends <= draft.starts:
            errors["ends"] = "The session must end after it starts"
        if draft.location and len(" ".join(draft.location.split())) > MAX_LOCATION:
            errors["location"] = f"The place must be {MAX_LOCATION} characters or fewer"
    try:
        choose_topics(draft.topics, known_topics)
    except TopicError as error:
        errors["topics"] = str(error)[:1].upper() + str(error)[1:]
    if errors:
        raise InputError(errors)
    session_kind = draft.kind == ItemKind.SESSION
    try:
        return officer_item(title=title, body=draft.body, kind=draft.kind,
                            starts=draft.starts if session_kind else None,
                            ends=draft.ends if session_kind else None,
                            location=draft.location if session_kind else None, now=now,
                            topics=draft.topics, known_topics=known_topics)
    except SourceError as error:
        reason = str(error)
        raise InputError({"title": reason[:1].upper() + reason[1:]}) from None


def _check_kind(kind: ItemKind) -> None:
    if kind not in (*POST_KINDS, ItemKind.ALERT):
        raise InputError({"kind": "Choose what kind of post this is"})


@dataclass(frozen=True)
class Preview:
    rendered: Rendered
    # The subscribers mail reaches (`receiving`, fan-out's own rule, so the number shown is
    # the number queued): all of them hear an urgent alert now; of a post, the immediate
    # ones hear now and the rest in their next digest.
    confirmed: int
    immediate: int


def _audience(session: Session, ward: Ward, item_topics: str) -> tuple[int, int]:
    # Of the immediate subscribers, those following the item's topics, as
    # `digest_rounds.queue_immediate` chooses them.
    rows = session.execute(
        select(Subscription.frequency, Subscription.topics, func.count())
        .where(Subscription.ward_id == ward.id, receiving())
        .group_by(Subscription.frequency, Subscription.topics)).all()
    return (sum(n for _, _, n in rows),
            sum(n for frequency, topics, n in rows
                if frequency == Frequency.IMMEDIATE and follows(topics, item_topics)))


def preview_draft(session: Session, settings: Settings, who: Principal, code: str,
                  draft: Draft, *, now: datetime) -> Preview:
    """The email the draft would become, rendered by the same code as the real one;
    nothing is stored."""
    from alerts.mail.render import render_alert, render_post

    ward = ward_for(session, who, code)
    _check_kind(draft.kind)
    item = check_draft(draft, now=now, known_topics=settings.topics.names)
    if draft.kind == ItemKind.ALERT:
        rendered = render_alert(ward.name, item.title, item.body_html, settings, now=now,
                                language=Language(ward.language))
    else:
        rendered = render_post(ward.name, DigestItem(
            id=0, kind=item.kind, title=item.title, body_html=item.body_html, link=None,
            published_at=now, starts_at=item.starts_at, ends_at=item.ends_at,
            location=item.location, topics=item.topics), settings, now=now,
            language=Language(ward.language))
    confirmed, immediate = _audience(session, ward, item.topics)
    return Preview(rendered, confirmed, immediate)


@dataclass(frozen=True)
class Published:
    ward_code: str
    kind: ItemKind
    item_ids: tuple[int, ...]
    # For an urgent alert: the message and how many residents it was queued for.
    message_id: int | None = None
    deliveries: int = 0


def publish_draft(session: Session, settings: Settings, who: Principal, code: str,
                  draft: Draft, *, now: datetime) -> Published:
    """Store a post, session or advice under the ward's officer source, or render and
    queue an urgent alert for every confirmed subscriber; audited, naming `who`, in the
    caller's transaction. `post_draft` commits it and announces it."""
    ward = ward_for(session, who, code)
    _check_kind(draft.kind)
    item = check_draft(draft, now=now, known_topics=settings.topics.names)
    if draft.kind == ItemKind.ALERT:
        outcome = post_urgent(session, settings, ward_code=ward.code, title=item.title,
                              body=draft.body, now=now)
        _audit(session, who, "alert.urgent", f"message {outcome.message_id}",
               f"ward {ward.code}; queued for {outcome.deliveries}", now=now)
        return Published(ward.code, ItemKind.ALERT, (), outcome.message_id,
                         outcome.deliveries)
    stored = store_items(session, officer_source(session, ward), [item])
    _audit(session, who, f"item.{draft.kind.value}",
           ", ".join(f"item {i}" for i in stored.new_item_ids), f"ward {ward.code}", now=now)
    return Published(ward.code, draft.kind, stored.new_item_ids)


def _audit(session: Session, who: Principal, action: str, target: str, detail: str, *,
           now: datetime) -> None:
    # The operator at the command line has no account (user id 0): the actor names them.
    record(session, who.email, action, target, detail, user_id=who.user_id or None, now=now)


def post_draft(factory: sessionmaker[Session], bus: EventBus, settings: Settings,
               who: Principal, code: str, draft: Draft, *, now: datetime) -> Published:
    """Publish the draft (`publish_draft`), commit, then announce it on `bus`: what the
    page's Publish button and `alerts post` both do."""
    with transaction(factory) as session:
        done = publish_draft(session, settings, who, code, draft, now=now)
    if done.message_id is not None:
        bus.publish(UrgentAlertPosted(done.ward_code, done.message_id, done.deliveries))
    else:
        bus.publish(ItemPublished(done.ward_code, done.item_ids))
    return done
