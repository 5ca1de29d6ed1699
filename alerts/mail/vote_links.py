"""The "was this useful?" links of an email: the signed vote token each link carries
(`sign_vote`, `read_vote`) and one email's set of them (`VoteLinks`), filled in at delivery
where the templates left `USEFUL_MARK`s. Recording and counting votes is
`alerts.usecases.votes`'s.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from subscriptions.links import Purpose, seal

_NUMBER = re.compile(r"[A-Za-z0-9_-]{22}")
_TOKEN = re.compile(
    rf"([0-9]{{1,18}})\.([0-9]{{1,18}})\.([yn])\.({_NUMBER.pattern})\.([a-z2-7]{{20}})")
@dataclass(frozen=True)
class Ballot:
    """What a vote link carries. `item_ref` is an item id, or THIS_MESSAGES_ITEM for the
    one item of the message (an urgent alert is rendered before its item has an id)."""

    item_ref: int
    message_id: int
    useful: bool
    number: str


def _tag(secret: str, ballot: Ballot, message_nonce: str) -> str:
    # The message's seal (its own purpose, so no other signed link can pass for a vote),
    # with the rest of the ballot sealed in beside the message's nonce.
    answer = "y" if ballot.useful else "n"
    return seal(secret, Purpose.VOTE, ballot.message_id,
                f"{ballot.item_ref}:{answer}:{ballot.number}:{message_nonce}")


def new_ballot_number() -> str:
    return secrets.token_urlsafe(16)


def sign_vote(secret: str, ballot: Ballot, message_nonce: str) -> str:
    """`ITEM.MESSAGE.y|n.NUMBER.TAG`: URL-safe, only good for this one answer, and bound to
    the message's nonce (a message deleted and written again under its id has another)."""
    if ballot.item_ref < 0 or ballot.message_id < 0 or not _NUMBER.fullmatch(ballot.number):
        raise ValueError("a ballot names stored records and carries a 22-character number")
    answer = "y" if ballot.useful else "n"
    return (f"{ballot.item_ref}.{ballot.message_id}.{answer}.{ballot.number}."
            f"{_tag(secret, ballot, message_nonce)}")


def _ballot(match: re.Match[str]) -> Ballot:
    return Ballot(int(match[1]), int(match[2]), match[3] == "y", match[4])


def claimed_ballot(token: str) -> Ballot | None:
    """The ballot a token claims to carry, NOT checked: what to read (in one statement with
    the message's nonce) before `read_vote` checks it."""
    match = _TOKEN.fullmatch(token)
    return None if match is None else _ballot(match)


def read_vote(secret: str, token: str,
              message_nonce_of: Callable[[int], str | None]) -> Ballot | None:
    """The ballot a genuine token carries, or None for a forged, altered or foreign one, or
    one for a message that is gone. `message_nonce_of` looks up a message's nonce by id."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        return None
    ballot = _ballot(match)
    nonce = message_nonce_of(ballot.message_id)
    if nonce is None:
        return None
    return ballot if hmac.compare_digest(match[5], _tag(secret, ballot, nonce)) else None


class VoteLinks:
    """One email's vote links: a fresh ballot number per item, made when first asked for
    and shared by that item's yes and no links in both parts of the email. Nothing is
    stored; the numbers live only in the links. Each link is signed once and the same URL
    given to both parts (a digest asks for each about twice: text and HTML)."""

    def __init__(self, secret: str, base_url: str, message_id: int,
                 message_nonce: str) -> None:
        self._secret = secret
        self._base = base_url.rstrip("/")
        self._message_id = message_id
        self._message_nonce = message_nonce
        self._numbers: dict[int, str] = {}
        self._urls: dict[tuple[int, bool], str] = {}

    def url(self, item_ref: int, useful: bool) -> str:
        made = self._urls.get((item_ref, useful))
        if made is not None:
            return made
        if item_ref not in self._numbers:
            self._numbers[item_ref] = new_ballot_number()
        ballot = Ballot(item_ref, self._message_id, useful, self._numbers[item_ref])
        made = self._urls[item_ref, useful] = \
            f"{self._base}/useful/{sign_vote(self._secret, ballot, self._message_nonce)}"
        return made
