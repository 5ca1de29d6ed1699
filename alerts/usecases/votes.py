"""Was this useful? Residents' votes on posts, counted per post without knowing who voted.

Each digest and alert carries, per post, a "useful" and a "not useful" link. The link is
signed and holds the post, the message and a random ballot number made when the email was
sent and kept nowhere else: a vote stores only the hash of that number (so the same link
cannot count twice), the post, the message, the answer and the time.

The vote tokens and one email's vote links are `alerts.mail.vote_links`'s. This module owns
what a link asks (`vote_question`, and `question_for_link` with its token checked in the
same read), recording a vote
(`record_vote`) and counting them per post (`count_votes`). No web types here; the caller
commits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, ForeignKey, Integer, String, bindparam, case, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from alerts.core.db import dialect_insert
from alerts.delivery.outbox import Delivery
from alerts.mail.marks import THIS_MESSAGES_ITEM
from alerts.mail.messages import Message, MessageItem
from alerts.mail.vote_links import Ballot, claimed_ballot, read_vote
from alerts.sources.items import Item
from subscriptions.base import Base, utcnow
from subscriptions.links import nonces_in


class UsefulVote(Base):
    __tablename__ = "useful_votes"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), default=None
    )
    # SHA-256 of the ballot number in the link: one vote per link, and nothing more.
    ballot: Mapped[str] = mapped_column(String(64), unique=True)
    useful: Mapped[bool]
    voted_at: Mapped[datetime] = mapped_column(default=utcnow)


# A message that reached fewer residents than this keeps no message id on its votes: with
# the deliveries table, the id of a message sent to one person would say who voted.
MIN_AUDIENCE = 5


def read_stored_vote(session: Session, secret: str, token: str) -> Ballot | None:
    """`read_vote` against the messages stored now."""
    return read_vote(secret, token, nonces_in(session, Message))


def ballot_hash(number: str) -> str:
    # The number is 128 random bits, so a plain hash cannot be reversed by guessing.
    return hashlib.sha256(number.encode()).hexdigest()


@dataclass(frozen=True)
class Vote:
    """What the thank-you page says: the post, the answer now held, and whether this
    request changed nothing because the link had been used."""

    item_title: str
    useful: bool
    already: bool


# Built once, not at each request: a mail filter opens every vote link of every email.
_ONLY_ITEM = (select(MessageItem.item_id)
              .where(MessageItem.message_id == bindparam("message")).limit(2))
# What a vote link's page asks, in one read: the post's title and the ballot's answer so far.
_QUESTION = select(Item.title, select(UsefulVote.useful)
                   .where(UsefulVote.ballot == bindparam("ballot")).scalar_subquery()) \
    .where(Item.id == bindparam("item"))


def _item_id_for(session: Session, ballot: Ballot) -> int | None:
    if ballot.item_ref != THIS_MESSAGES_ITEM:
        return ballot.item_ref
    ids = session.scalars(_ONLY_ITEM, {"message": ballot.message_id}).all()
    return ids[0] if len(ids) == 1 else None


def _item_for(session: Session, ballot: Ballot) -> Item | None:
    item_id = _item_id_for(session, ballot)
    return None if item_id is None else session.get(Item, item_id)


def _kept_message_id(session: Session, message_id: int) -> int | None:
    if session.get(Message, message_id) is None:
        return None
    audience = session.scalar(select(func.count()).select_from(Delivery)
                              .where(Delivery.message_id == message_id))
    return message_id if (audience or 0) >= MIN_AUDIENCE else None


@dataclass(frozen=True)
class Question:
    """What the page a vote link opens asks: the post, and the answer the link's ballot
    holds already (None until it has been used)."""

    item_title: str
    held: bool | None


# What a vote link's page reads, in one statement (a mail filter opens every vote link of
# every email): the message's nonce, what the link is checked against; the post's title
# (the link's item, or the message's only one); and the ballot's answer so far.
_ONLY_ITEM_ID = (select(case((func.count() == 1, func.min(MessageItem.item_id))))
                 .where(MessageItem.message_id == bindparam("message")).scalar_subquery())
_LINK = (select(Message.nonce, Item.title, select(UsefulVote.useful)
                .where(UsefulVote.ballot == bindparam("ballot")).scalar_subquery())
         .select_from(Message)
         .outerjoin(Item, Item.id == func.coalesce(bindparam("item", type_=Integer),
                                                   _ONLY_ITEM_ID))
         .where(Message.id == bindparam("message")))


def question_for_link(session: Session, secret: str,
                      token: str) -> tuple[Ballot, Question | None] | None:
    """The ballot of a genuine vote link and the question it opens (None when the post is
    gone: `vote_question`), read with the message's nonce the token is checked against;
    None for a forged, altered or foreign token, or one for a message that is gone."""
    claimed = claimed_ballot(token)
    if claimed is None:
        return None
    item = None if claimed.item_ref == THIS_MESSAGES_ITEM else claimed.item_ref
    # Columns through the session's connection: no ORM work on a statement that reads no
    # object, the most frequent of a mail filter's requests.
    row = session.connection().execute(_LINK, {"message": claimed.message_id, "item": item,
                                               "ballot": ballot_hash(claimed.number)}).first()
    ballot = read_vote(secret, token, lambda _: None if row is None else row[0])
    if ballot is None or row is None:
        return None
    _, title, held = row
    return ballot, None if title is None else Question(title, None if held is None else bool(held))


def vote_question(session: Session, ballot: Ballot) -> Question | None:
    """The question a vote link opens, recording nothing (mail filters open every link);
    None when the post is gone."""
    item_id = _item_id_for(session, ballot)
    found = None if item_id is None else session.execute(
        _QUESTION, {"item": item_id, "ballot": ballot_hash(ballot.number)}).first()
    if found is None:
        return None
    title, held = found
    return Question(title, None if held is None else bool(held))


def record_vote(session: Session, ballot: Ballot, *, now: datetime,
                change_to: bool | None = None) -> Vote | None:
    """Record the ballot's answer once; a second use of the same link changes nothing.
    With `change_to`, the same ballot's answer becomes that (still one vote). None when the
    post is gone."""
    item = _item_for(session, ballot)
    if item is None:
        return None
    hashed = ballot_hash(ballot.number)
    answer = ballot.useful if change_to is None else change_to
    insert = dialect_insert(session, UsefulVote).values(
        item_id=item.id, message_id=_kept_message_id(session, ballot.message_id),
        ballot=hashed, useful=answer,
        # To the hour: a vote's exact second could be matched against when each email went.
        voted_at=now.replace(minute=0, second=0, microsecond=0))
    statement = (insert.on_conflict_do_nothing(index_elements=["ballot"]) if change_to is None
                 else insert.on_conflict_do_update(index_elements=["ballot"],
                                                   set_={"useful": answer}))
    result = cast(CursorResult[Any],
                  session.execute(statement.execution_options(preserve_rowcount=True)))
    held = session.scalar(select(UsefulVote.useful).where(UsefulVote.ballot == hashed))
    return Vote(item.title, bool(held), already=change_to is None and result.rowcount == 0)


@dataclass(frozen=True)
class Tally:
    useful: int = 0
    not_useful: int = 0


def count_votes(session: Session, item_ids: list[int]) -> dict[int, Tally]:
    """Each item's votes, in one grouped query; items without votes are left out."""
    if not item_ids:
        return {}
    counts: dict[int, dict[bool, int]] = {}
    for item_id, useful, n in session.execute(
            select(UsefulVote.item_id, UsefulVote.useful, func.count())
            .where(UsefulVote.item_id.in_(item_ids))
            .group_by(UsefulVote.item_id, UsefulVote.useful)):
        counts.setdefault(item_id, {})[bool(useful)] = n
    return {item_id: Tally(c.get(True, 0), c.get(False, 0)) for item_id, c in counts.items()}
