"""Signed references: the tokens in Reply-To, envelope senders and email links, and the
seals that bind every other credential of the product to the row it names.

A token names one record (a delivery, a subscription) and carries an HMAC-SHA256 tag
keyed by `web.secret_key`, bound to a purpose (so a reply token cannot be replayed as an
unsubscribe token) and to the record's `nonce`: a random value stored on the row, made by
`new_nonce` when the row is written and replaced when what it vouches for changes (a
password, an erasure, a removal). A row deleted and written again, even under the same id,
has another nonce, so no token issued for the old row acts on the new one. Ids are never
reused either (SQLite AUTOINCREMENT, PostgreSQL identity columns), but the nonce is what a
token is checked against.

Tokens are lower-case base32 so that they survive mail systems that fold the case of
local parts, and short enough for a 64-character local part. Credentials that carry more
than an id put a `seal` of their row's id and nonce inside their own signed payload: session
cookies and reset links (alerts.accounts.signin), and the expiring links made here by
`sealed_link` and read by `open_sealed_link` (confirmation, "my data", scheme invitations).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import Select, String, bindparam, func, literal_column, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql import ColumnElement

_TAG_BYTES = 12
_TOKEN = re.compile(r"^([0-9]{1,18})-([a-z2-7]{20})$")
NONCE_LENGTH = 32
# The nonce of a subscription or delivery written before nonces existed (migration 0011):
# the unsubscribe links and reply+/bounces+ addresses in mail already sent were signed over
# the id alone, and keep working, since those ids are never given again. Every row written
# since has a random nonce, so no such token can act on a new row.
LEGACY_NONCE = ""


T = TypeVar("T")


class Purpose(StrEnum):
    REPLY = "reply"
    BOUNCE = "bounce"
    UNSUBSCRIBE = "unsubscribe"
    PREFERENCES = "preferences"
    SESSION = "session"
    RESET = "reset"
    CONFIRM = "confirm"
    MY_DATA = "my-data"
    VOTE = "vote"
    SCHEME_INVITATION = "scheme-invitation"


def new_nonce() -> str:
    """A fresh per-row value for tokens to be bound to: 128 random bits, as hex."""
    return secrets.token_hex(NONCE_LENGTH // 2)


def nonce_column() -> Mapped[str]:
    """The `nonce` column of a table whose rows tokens name."""
    return mapped_column(String(NONCE_LENGTH), default=new_nonce)


def new_nonce_sql(dialect: str) -> ColumnElement[str]:
    """The same, made by the database, for rows written by INSERT ... SELECT."""
    if dialect == "sqlite":
        return func.lower(func.hex(func.randomblob(NONCE_LENGTH // 2)))
    if dialect == "postgresql":
        # gen_random_uuid() draws from the server's strong random source (PostgreSQL 13+).
        return func.replace(literal_column("gen_random_uuid()::text"), text("'-'"), text("''"))
    raise NotImplementedError(f"nonces are made on SQLite and PostgreSQL, not {dialect}")


def seal(secret: str, purpose: Purpose, ident: int, nonce: str) -> str:
    """The tag that binds a credential to row `ident` as long as its nonce is `nonce`."""
    signed = f"{purpose.value}:{ident}" if nonce == LEGACY_NONCE else \
        f"{purpose.value}:{ident}:{nonce}"
    mac = hmac.digest(secret.encode(), signed.encode(), hashlib.sha256)  # one call, no object
    return base64.b32encode(mac[:_TAG_BYTES]).decode().rstrip("=").lower()


def seal_matches(secret: str, purpose: Purpose, ident: int, nonce: str | None,
                 claimed: object) -> bool:
    """Whether `claimed` is the seal of row `ident` with its nonce now (None: no such row)."""
    if nonce is None or not isinstance(claimed, str):
        return False
    return hmac.compare_digest(claimed, seal(secret, purpose, ident, nonce))


def sign_reference(secret: str, purpose: Purpose, ident: int, nonce: str) -> str:
    """Return `ID-TAG` for the record `ident`, whose nonce is `nonce`."""
    if ident < 0:
        raise ValueError("references are to stored records with positive ids")
    return f"{ident}-{seal(secret, purpose, ident, nonce)}"


@functools.cache
def _nonce_query(table: Any) -> Select[str]:
    # Built once a table: a link scanner opens every link of every email, and building
    # the statement cost more than running it.
    return select(table.nonce).where(table.id == bindparam("ident"))


def nonces_in(session: Session, table: Any) -> Callable[[int], str | None]:
    """`nonce_of` for `verify_reference`: the stored nonce of `table`'s row with that id."""
    query = _nonce_query(table)

    def nonce_of(ident: int) -> str | None:
        nonce: str | None = session.scalar(query, {"ident": ident})
        return nonce
    return nonce_of


def verify_reference(secret: str, purpose: Purpose, token: str,
                     nonce_of: Callable[[int], str | None]) -> int | None:
    """Return the id a genuine token names, or None for a forged, altered or foreign one,
    or one whose row is gone or has had its nonce replaced. `nonce_of` looks up the nonce
    of the row with the id the token claims (None when there is no such row)."""
    match = _TOKEN.match(token.strip().lower())
    if match is None:
        return None
    ident = int(match.group(1))
    if seal_matches(secret, purpose, ident, nonce_of(ident), match.group(2)):
        return ident
    return None


def read_signed(secret: str, purpose: Purpose, token: str,
                   read: Callable[[int], tuple[str | None, T] | None]) -> tuple[int, T] | None:
    """`verify_reference` with the row's nonce read in the same statement as what a page
    shows of it: `read(ident)` gives the nonce of the row with the id the token claims and
    that value (None when there is no such row). The id and the value only for a genuine
    token: nothing read for another is returned."""
    found: list[T] = []

    def nonce_of(ident: int) -> str | None:
        row = read(ident)
        if row is None:
            return None
        found.append(row[1])
        return row[0]

    ident = verify_reference(secret, purpose, token, nonce_of)
    return None if ident is None else (ident, found[0])


def sealed_link(secret: str, salt: str, purpose: Purpose, ident: int, nonce: str,
                **extra: object) -> str:
    """An expiring link token (itsdangerous, timed, `salt` its own) naming row `ident` as
    `s`, sealed with its nonce as `n`, and carrying `extra` beside them."""
    payload = {**extra, "s": ident, "n": seal(secret, purpose, ident, nonce)}
    return URLSafeTimedSerializer(secret, salt=salt).dumps(payload)


def open_sealed_link(secret: str, salt: str, purpose: Purpose, token: str,
                     nonce_of: Callable[[int], str | None], *,
                     max_age_seconds: int) -> dict[str, Any] | None:
    """The payload of a genuine, unexpired `sealed_link` whose row still has the nonce it
    was sealed with; None for anything else. `payload["s"]` is the row's id (an int)."""
    try:
        data = URLSafeTimedSerializer(secret, salt=salt).loads(token, max_age=max_age_seconds)
    except BadSignature:  # SignatureExpired is one too
        return None
    if not isinstance(data, dict) or not isinstance(data.get("s"), int):
        return None
    ident: int = data["s"]
    if not seal_matches(secret, purpose, ident, nonce_of(ident), data.get("n")):
        return None
    return data
