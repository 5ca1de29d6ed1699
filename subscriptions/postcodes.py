"""Postcodes: which ward a UK postcode lies in, loaded by a deployer from a CSV
(`postcode,ward`), so that residents can find their ward by postcode.

Postcodes are stored in their normal form (upper case, one space before the three-character
inward code) with their outward code beside them, so a search by a full postcode or by its
first half ("SW1A") is one index look-up.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import ForeignKey, String, insert, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from subscriptions.base import Base
from subscriptions.csv_io import CsvError, RowError, read_table
from subscriptions.errors import AlertsError
from subscriptions.wards import Ward, ward_ids, ward_key

# The shapes Royal Mail issues: outward A9, A99, AA9, AA99, A9A, AA9A; inward 9AA.
# Shape only: whether a postcode exists is the deployer's file's business.
OUTWARD = r"[A-Z]{1,2}[0-9][A-Z0-9]?"
INWARD = r"[0-9][A-Z]{2}"
_FULL = re.compile(rf"^({OUTWARD})({INWARD})$")
_OUTWARD = re.compile(rf"^{OUTWARD}$")
_SPACES = re.compile(r"\s+")


class PostcodeError(AlertsError, ValueError):
    """Not a UK postcode, or a file that cannot be read; the message says why."""

    http_status = 400


class Postcode(Base):
    __tablename__ = "postcodes"

    postcode: Mapped[str] = mapped_column(String(8), primary_key=True)
    outward: Mapped[str] = mapped_column(String(4), index=True)
    ward_id: Mapped[int] = mapped_column(ForeignKey("wards.id", ondelete="CASCADE"), index=True)


def normalise_postcode(raw: str) -> str:
    """"sw1a1aa", " SW1A  1AA " → "SW1A 1AA"; PostcodeError if it is not a UK postcode."""
    compact = _SPACES.sub("", raw).upper()
    match = _FULL.match(compact)
    if match is None:
        raise PostcodeError(f"{raw.strip()!r} is not a UK postcode (like SW1A 1AA)")
    return f"{match.group(1)} {match.group(2)}"


@dataclass(frozen=True)
class PostcodeRow:
    line: int
    postcode: str
    ward: str


def parse_postcodes_csv(text: str) -> tuple[list[PostcodeRow], list[RowError]]:
    """Read `postcode,ward` rows; return the good rows and one error per bad line. A
    postcode given twice for the same ward is merged; for two wards, the second is bad."""
    rows: dict[str, PostcodeRow] = {}
    errors: list[RowError] = []
    try:
        for line, cell in read_table(text, ("postcode", "ward"), ()):
            ward = cell("ward")
            try:
                postcode = normalise_postcode(cell("postcode"))
            except PostcodeError as exc:
                errors.append(RowError(line, str(exc)))
                continue
            if not ward:
                errors.append(RowError(line, "ward is empty"))
                continue
            earlier = rows.get(postcode)
            if earlier is not None and earlier.ward != ward:
                errors.append(RowError(line, f"{postcode} is already given to ward "
                                             f"{earlier.ward!r} on line {earlier.line}"))
                continue
            rows.setdefault(postcode, PostcodeRow(line, postcode, ward))
    except CsvError as exc:
        raise PostcodeError(str(exc)) from None
    return list(rows.values()), errors


def _chunks(values: list[str], size: int = 500) -> Iterator[list[str]]:
    for at in range(0, len(values), size):
        yield values[at : at + size]


def import_postcodes(session: Session, rows: list[PostcodeRow]) -> tuple[int, list[RowError]]:
    """Store each row's postcode with its ward (a postcode loaded before moves to the ward
    the file now gives); rows naming an unknown ward are reported. Return (stored, errors)."""
    wards = ward_ids(session)
    errors: list[RowError] = []
    good: list[PostcodeRow] = []
    for row in rows:
        if ward_key(row.ward) not in wards:
            errors.append(RowError(row.line, f"no ward with code {row.ward!r}"))
        else:
            good.append(row)
    known: dict[str, int] = {}
    for chunk in _chunks([row.postcode for row in good]):
        known.update(session.execute(
            select(Postcode.postcode, Postcode.ward_id).where(Postcode.postcode.in_(chunk))
        ).all())
    fresh = [{"postcode": row.postcode, "outward": row.postcode.split(" ")[0],
              "ward_id": wards[ward_key(row.ward)]} for row in good if row.postcode not in known]
    if fresh:
        session.execute(insert(Postcode), fresh)
    for row in good:
        if row.postcode in known and known[row.postcode] != wards[ward_key(row.ward)]:
            session.execute(update(Postcode).where(Postcode.postcode == row.postcode)
                            .values(ward_id=wards[ward_key(row.ward)]))
    session.flush()
    return len(good), errors


def any_postcodes(session: Session) -> bool:
    return session.scalar(select(Postcode.postcode).limit(1)) is not None


def wards_for_postcode(session: Session, query: str) -> set[str]:
    """The codes of the wards a full postcode or an outward code ("SW1A") lies in; empty if
    the text is neither or no loaded postcode matches."""
    compact = _SPACES.sub("", query).upper()
    if _FULL.match(compact):
        condition = Postcode.postcode == normalise_postcode(compact)
    elif _OUTWARD.match(compact):
        condition = Postcode.outward == compact
    else:
        return set()
    return set(session.scalars(
        select(Ward.code).join(Postcode, Postcode.ward_id == Ward.id).where(condition).distinct()
    ))
