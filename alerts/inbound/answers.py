"""What the product sends back to a resident who wrote: the acknowledgement of a reply and
the note that confirms an emailed unsubscribe. Both go through the outbox like any other
message (signed links, List-Unsubscribe, the how-to-report footer), one resident each.
"""

from __future__ import annotations

import functools
from datetime import date, datetime
from typing import cast
from zoneinfo import ZoneInfo

from sqlalchemy import Insert, Table, insert
from sqlalchemy.orm import Session

from alerts.core.config import Settings
from alerts.delivery.fanout import (
    insert_for_subscriber,
    queue_for_subscriber,
    suppressed_subscriber,
)
from alerts.inbound.replies import THREAD_KINDS, ReplyThread, ThreadAnswer, keep_thread
from alerts.mail.messages import Message, MessageKind
from alerts.mail.render import Rendered, render_left, render_reply_ack
from subscriptions.languages import Language, effective_language
from subscriptions.subscribers import Subscriber
from subscriptions.wards import Ward

# A reply that reads like an emergency is answered ahead of any queued digest.
EMERGENCY_PRIORITY = 20
ANSWER_PRIORITY = 5


def language_of(session: Session, ward: Ward, subscriber_id: int) -> Language:
    """What the resident reads: their own choice, else their ward's (the row is usually
    already in the session: intake read it with the delivery)."""
    subscriber = session.get_one(Subscriber, subscriber_id)
    return effective_language(subscriber.language, ward.language)


def _queue(session: Session, ward: Ward, kind: MessageKind, rendered: Rendered,
           subscriber_id: int, *, priority: int, now: datetime, language: Language,
           references: str | None = None) -> Message | None:
    message = Message(ward_id=ward.id, kind=kind, subject=rendered.subject, html=rendered.html,
                      text=rendered.text, calendar=None, created_at=now,
                      language=language.value, thread_references=references)
    session.add(message)
    session.flush()
    if queue_for_subscriber(session, message, subscriber_id, priority=priority, now=now) == 0:
        session.delete(message)  # a suppressed address: nothing to send, nothing to keep
        session.flush()
        return None
    return message


def acknowledge(session: Session, settings: Settings, thread: ReplyThread, *, answered: str,
                emergency: bool, now: datetime, references: str | None = None) -> bool:
    """Queue the acknowledgement (`references`: see `queue_in_thread`); return whether one
    was queued. `thread` is `replies.thread_for`'s: one it starts is written here when
    acknowledged (inserted acknowledged); the caller writes any other change to it.

    Once a thread, except that a reply reading like a crime report or an emergency gets
    the how-to-report answer at once, however many the thread has had. Its rows are
    written with Core INSERTs (`queue_new_for_subscriber`): intake queues one for most
    replies, and objects flushed cost several times their statements.
    """
    if thread.acknowledged_at is not None and not emergency:
        return False
    ward = session.get_one(Ward, thread.ward_id)
    language = language_of(session, ward, thread.subscriber_id)
    rendered = _reply_ack(ward.name, answered, settings, emergency=emergency, now=now,
                          language=language)
    if suppressed_subscriber(session, thread.subscriber_id):
        return False  # nothing to send, nothing kept
    thread.acknowledged_at = thread.acknowledged_at or now
    if thread.id is None:
        keep_thread(session, thread)  # started by this reply: its id, for the answer's link
    message_id = insert_for_subscriber(session, dict(
        ward_id=ward.id, kind=MessageKind.REPLY_ACK, subject=rendered.subject,
        html=rendered.html, text=rendered.text, calendar=None, created_at=now,
        language=language.value, thread_references=references), thread.subscriber_id,
        priority=EMERGENCY_PRIORITY if emergency else ANSWER_PRIORITY, now=now)
    session.connection().execute(_answer_insert(), {"message_id": message_id,
                                                    "thread_id": thread.id})
    return True


@functools.cache
def _answer_insert() -> Insert:
    return insert(cast(Table, ThreadAnswer.__table__))


# Acknowledgements rendered, by what they are a function of: a round's replies all answer
# the same digest, so all but the first are found here. Bounded; nothing in it is a
# resident's (the ward, the subject of what was sent, the day).
_ACKS: dict[tuple[str, str, bool, date, Language, Settings], Rendered] = {}
_ACKS_KEPT = 256


def _reply_ack(ward_name: str, answered: str, settings: Settings, *, emergency: bool,
               now: datetime, language: Language) -> Rendered:
    """`render_reply_ack`, remembered: it depends on `now` only through its date in the
    service's time zone, the date the email shows."""
    day = now.astimezone(ZoneInfo(settings.scheduler.timezone)).date()
    key = (ward_name, answered, emergency, day, language, settings)
    rendered = _ACKS.get(key)
    if rendered is None:
        if len(_ACKS) >= _ACKS_KEPT:
            _ACKS.clear()
        rendered = _ACKS[key] = render_reply_ack(ward_name, answered, settings,
                                                 emergency=emergency, now=now,
                                                 language=language)
    return rendered


def queue_in_thread(session: Session, thread: ReplyThread, kind: MessageKind,
                    rendered: Rendered, *, priority: int, now: datetime,
                    references: str | None = None,
                    language: Language = Language.ENGLISH) -> Message | None:
    """Queue a message written for the thread's resident and link it to the thread, so that
    their reply to it joins the thread; None (nothing kept) for a suppressed address.
    `references` (`replies.references_of` the email it answers) gives it In-Reply-To and
    References, so that it lands in the resident's conversation."""
    if kind not in THREAD_KINDS:
        raise ValueError(f"{kind!r} is not a kind sent in a thread")
    ward = session.get_one(Ward, thread.ward_id)
    message = _queue(session, ward, kind, rendered, thread.subscriber_id, priority=priority,
                     now=now, references=references, language=language)
    if message is not None:  # flushed with what follows (autoflush, or the caller's commit)
        session.add(ThreadAnswer(message_id=message.id, thread_id=thread.id))
    return message


def confirm_left(session: Session, settings: Settings, ward: Ward, subscriber_id: int, *,
                 now: datetime) -> bool:
    """Queue the one "you have left" note; return whether it was queued."""
    language = language_of(session, ward, subscriber_id)
    rendered = render_left(ward.name, settings, now=now, language=language)
    return _queue(session, ward, MessageKind.LEFT, rendered, subscriber_id,
                  priority=ANSWER_PRIORITY, now=now, language=language) is not None
