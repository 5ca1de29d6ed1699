"""Subscriber CSV files: reading rows for import (with line-numbered errors) and export rows.

Columns are named in a header row: `email,ward` are required, `name,frequency,scheme`
optional. Reading is pure: it checks each row on its own; `import_rows` then does the checks that
need the database (does the ward exist?) and stores the good rows.

Every CSV the product writes goes through `SafeWriter`: a cell that a spreadsheet would take
for a formula (`=`, `+`, `-`, `@`, tab, CR first) is written with a single quote in front,
which the reader here takes off again, so an export imports as it was.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from subscriptions.addresses import AddressError, normalise_address
from subscriptions.consent import Consent
from subscriptions.subscribers import (
    Frequency,
    Status,
    Subscriber,
    SubscriberError,
    Subscription,
    SubscriptionRecord,
    check_name_and_scheme,
    parse_frequency,
    stored_source,
    subscribe,
)
from subscriptions.suppression import Suppression, address_hash
from subscriptions.wards import Ward

REQUIRED = ("email", "ward")
OPTIONAL = ("name", "frequency", "scheme")
EXPORT_COLUMNS = (
    "email", "ward", "name", "frequency", "scheme", "status", "consent_at", "consent_method",
    "consent_source", "consent_wording",
)


class CsvError(ValueError):
    """The file as a whole cannot be read (no header, missing columns, not UTF-8)."""


@dataclass(frozen=True)
class SubscriberRow:
    line: int
    email: str
    ward: str
    name: str
    frequency: Frequency
    scheme: str | None


@dataclass(frozen=True)
class RowError:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def decode(data: bytes) -> str:
    """The text of a CSV as the spreadsheets people use write it.

    Excel's "CSV UTF-8" is UTF-8 with a byte-order mark; its "Unicode Text" is UTF-16 with
    one; its plain "CSV (Comma delimited)" on a UK machine is Windows-1252. UTF-8 is tried
    before Windows-1252 because any UTF-8 file with accents would also "decode" as 1252,
    wrongly.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise CsvError(f"not readable UTF-16 text (byte {exc.start})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        utf8_error = exc
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        raise CsvError(
            f"not UTF-8 text (byte {utf8_error.start}) nor Windows-1252; in Excel choose "
            "'CSV UTF-8' when saving"
        ) from None


Cell = Callable[[str], str]


def read_table(text: str, required: Sequence[str],
               optional: Sequence[str]) -> Iterator[tuple[int, Cell]]:
    """The rows of a CSV whose header names its columns (any order, any case, Excel's
    delimiters and BOM), as (line number, cell reader) pairs; blank rows are skipped.
    Raises CsvError when the file is empty or the header lacks a required column."""
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:4096],
                                                                    delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    # The sniffer is asked for the delimiter only: every spreadsheet quotes with '"', and a
    # file whose cells start with `spreadsheet_text`'s quote must not be read as quoted by it.
    reader = csv.reader(io.StringIO(text), dialect, quotechar='"', doublequote=True)
    header = next(reader, None)
    if header is None:
        raise CsvError(f"the file is empty; the first row must name the columns "
                       f"({','.join(required)},...)")
    columns = [name.strip().lower().lstrip("\ufeff") for name in header]
    missing = [name for name in required if name not in columns]
    if missing:
        raise CsvError(f"the header row lacks the column{'s' if len(missing) > 1 else ''} "
                       f"{', '.join(missing)}; it has {', '.join(columns)}")
    index = {name: columns.index(name) for name in (*required, *optional) if name in columns}
    for values in reader:
        if not any(value.strip() for value in values):
            continue

        def cell(name: str, values: list[str] = values) -> str:
            position = index.get(name)
            if position is None or position >= len(values):
                return ""
            return _from_spreadsheet_text(values[position].strip())

        yield reader.line_num, cell


def read_subscribers(
    text: str, *, default_frequency: Frequency = Frequency.WEEKLY
) -> tuple[list[SubscriberRow], list[RowError]]:
    """Check every row; return the good ones (duplicates merged, last wins) and the errors."""
    rows: dict[tuple[str, str], SubscriberRow] = {}
    errors: list[RowError] = []
    for line, cell in read_table(text, REQUIRED, OPTIONAL):
        try:
            email = normalise_address(cell("email"))
        except AddressError as exc:
            errors.append(RowError(line, f"email {exc}"))
            continue
        ward = cell("ward")
        if not ward:
            errors.append(RowError(line, "ward is empty"))
            continue
        try:
            frequency = parse_frequency(cell("frequency")) if cell("frequency") else \
                default_frequency
            name, scheme = check_name_and_scheme(cell("name"), cell("scheme"))
        except SubscriberError as exc:
            errors.append(RowError(line, str(exc)))
            continue
        rows[(email, ward)] = SubscriberRow(line, email, ward, name, frequency, scheme)
    return list(rows.values()), errors


# OWASP's rule against CSV injection: a cell that begins with one of these is a formula to a
# spreadsheet (Excel, LibreOffice, Google Sheets), which may run it when the file is opened.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_text(value: str) -> str:
    """A cell as a spreadsheet shows it as text: one that would begin a formula gets a single
    quote in front (the spreadsheet shows the rest as typed)."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _from_spreadsheet_text(value: str) -> str:
    """A cell read back: the quote `spreadsheet_text` put in front of a formula's first
    character is taken off, so a file exported here imports as it was."""
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_STARTS) \
        else value


class SafeWriter:
    """The one way the product writes CSV: `csv.writer`, every cell through
    `spreadsheet_text`, so nothing a resident or an officer typed becomes a live formula."""

    def __init__(self, out: TextIO) -> None:
        # RFC 4180's CRLF (what Excel writes): the csv module quotes a cell holding a
        # character of the line terminator, so a CR or LF inside a cell stays inside it.
        self._writer = csv.writer(out, lineterminator="\r\n")

    def writerow(self, row: Iterable[str]) -> None:
        self._writer.writerow([spreadsheet_text(cell) for cell in row])


def write_records(records: Iterable[SubscriptionRecord], out: TextIO) -> int:
    """Write export rows with a header; return how many rows were written."""
    writer = SafeWriter(out)
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    for record in records:
        writer.writerow([
            record.email, record.ward, record.name, record.frequency, record.scheme,
            record.status, record.consent_at.isoformat(), record.consent_method,
            record.consent_source, record.consent_wording,
        ])
        count += 1
    return count



def _chunks(values: list[str] | list[int], size: int = 500) -> Iterator[list[Any]]:
    for at in range(0, len(values), size):
        yield values[at : at + size]


def import_rows(
    session: Session,
    rows: Iterable[SubscriberRow],
    consent: Consent,
    *,
    confirmed: bool,
) -> tuple[int, list[RowError]]:
    """Subscribe each good row in the caller's transaction; a row naming an unknown ward, a
    suppressed address or a name too long to keep is reported, not stored.

    Addresses new to the ward, the bulk of a coordinator's file, are written with a few
    set-based statements; a row that renews an existing subscription goes through
    `subscribe`, so both paths keep the same rules.
    """
    pending = list(rows)
    errors: list[RowError] = []
    wards = {ward.code: ward.id for ward in session.scalars(select(Ward))}
    checked: list[tuple[SubscriberRow, str, str | None]] = []
    for row in pending:
        if row.ward not in wards:
            errors.append(RowError(row.line, f"no ward with code {row.ward!r}"))
            continue
        try:
            name, scheme = check_name_and_scheme(row.name, row.scheme)
        except SubscriberError as exc:
            errors.append(RowError(row.line, str(exc)))
            continue
        checked.append((row, name, scheme))

    hashes = {row.email: address_hash(row.email) for row, _, _ in checked}
    refused: dict[str, str] = {}
    for chunk in _chunks(sorted(set(hashes.values()))):
        refused.update(session.execute(
            select(Suppression.address_hash, Suppression.reason)
            .where(Suppression.address_hash.in_(chunk))
        ).all())
    known: dict[str, int] = {}
    for chunk in _chunks(sorted(hashes)):
        known.update(session.execute(
            select(Subscriber.email, Subscriber.id).where(Subscriber.email.in_(chunk))
        ).all())
    existing: set[tuple[int, int]] = set()
    for chunk in _chunks(sorted(set(known.values()))):
        existing.update(session.execute(
            select(Subscription.subscriber_id, Subscription.ward_id)
            .where(Subscription.subscriber_id.in_(chunk))
        ).all())

    imported = 0
    renewals: list[tuple[SubscriberRow, str, str | None]] = []
    new_people: dict[str, str] = {}
    fresh: list[tuple[SubscriberRow, str | None]] = []
    for row, name, scheme in checked:
        reason = refused.get(hashes[row.email])
        if reason is not None:
            errors.append(RowError(row.line, f"the address is on the suppression list "
                                             f"({reason}); it can be subscribed again only "
                                             "after `alerts suppression remove`"))
            continue
        subscriber_id = known.get(row.email)
        if subscriber_id is not None and (subscriber_id, wards[row.ward]) in existing:
            renewals.append((row, name, scheme))
            continue
        if subscriber_id is None:
            new_people.setdefault(row.email, name)
        fresh.append((row, scheme))

    if new_people:
        created = session.execute(
            insert(Subscriber).returning(Subscriber.email, Subscriber.id),
            [{"email": email, "name": name, "created_at": consent.at}
             for email, name in new_people.items()],
        ).all()
        known.update(created)
    if fresh:
        session.execute(insert(Subscription), [
            {
                "subscriber_id": known[row.email],
                "ward_id": wards[row.ward],
                "frequency": row.frequency.value,
                "status": Status.CONFIRMED.value if confirmed else Status.PENDING.value,
                "scheme": scheme,
                "consent_at": consent.at,
                "consent_method": consent.method.value,
                "consent_source": stored_source(consent),
                "consent_wording": consent.wording_version,
                "consent_prior_declared": consent.prior_consent_declared,
                "confirmed_at": consent.at if confirmed else None,
                "created_at": consent.at,
            }
            for row, scheme in fresh
        ])
        imported += len(fresh)
    for row, name, scheme in renewals:
        subscribe(session, row.email, row.ward, consent, frequency=row.frequency,
                  name=name, scheme=scheme, confirmed=confirmed)
        imported += 1
    session.flush()
    return imported, errors
