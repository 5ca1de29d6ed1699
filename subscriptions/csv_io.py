"""Subscriber CSV files: reading rows for import (with line-numbered errors) and export rows.

Columns are named in a header row: `email,ward` are required, `name,frequency,scheme`
optional. Reading is pure: it checks each row on its own, a row at a time from a stream
(`open_csv`, `read_subscriber_rows`, `batches`), so a file of any size is held one batch at
a time; `import_rows` then does the checks that need the database (does the ward exist?) and
stores a batch's good rows.

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
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from subscriptions.addresses import AddressError, normalise_address
from subscriptions.consent import Consent
from subscriptions.errors import AlertsError
from subscriptions.subscribers import (
    Frequency,
    Status,
    Subscriber,
    SubscriberError,
    Subscription,
    SubscriptionRecord,
    check_name_and_scheme,
    parse_frequency,
    renew,
    stored_source,
)
from subscriptions.suppression import Suppression, normal_address_hash
from subscriptions.wards import WardError, WardRow, check_ward, ward_ids, ward_key

REQUIRED = ("email", "ward")
OPTIONAL = ("name", "frequency", "scheme")
EXPORT_COLUMNS = (
    "email", "ward", "name", "frequency", "scheme", "status", "consent_at", "consent_method",
    "consent_source", "consent_wording",
)


class CsvError(AlertsError, ValueError):
    """The file as a whole cannot be read (no header, missing columns, not UTF-8)."""

    http_status = 400


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
    """The text of a CSV as the spreadsheets people use write it (see `_encoding`)."""
    return data.decode(_encoding(lambda: iter((data,))))


def open_csv(path: Path) -> TextIO:
    """A CSV file opened for reading as text, one row at a time, in the encoding `decode`
    would choose: the file is read twice (first in 1 MB pieces to choose), never held
    whole. Its lines may end in CRLF, LF or CR alone (old Mac Excel)."""

    def pieces() -> Iterator[bytes]:
        with path.open("rb") as raw:
            yield from iter(lambda: raw.read(1 << 20), b"")

    return path.open(encoding=_encoding(pieces), newline="")


def _encoding(pieces: Callable[[], Iterator[bytes]]) -> str:
    """The encoding of the bytes `pieces()` yields, as the spreadsheets people use write it.

    Excel's "CSV UTF-8" is UTF-8 with a byte-order mark; its "Unicode Text" is UTF-16 with
    one; its plain "CSV (Comma delimited)" on a UK machine is Windows-1252. UTF-8 is tried
    before Windows-1252 because any UTF-8 file with accents would also "decode" as 1252,
    wrongly.
    """
    head = next(pieces(), b"")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        at = _undecodable(pieces(), "utf-16")
        if at is not None:
            raise CsvError(f"not readable UTF-16 text (byte {at})")
        return "utf-16"
    utf8_error = _undecodable(pieces(), "utf-8-sig")
    if utf8_error is None:
        return "utf-8-sig"
    if _undecodable(pieces(), "cp1252") is None:
        return "cp1252"
    raise CsvError(f"not UTF-8 text (byte {utf8_error}) nor Windows-1252; in Excel choose "
                   "'CSV UTF-8' when saving")


def _undecodable(pieces: Iterator[bytes], encoding: str) -> int | None:
    """The offset of the first byte that does not decode, None if every byte does."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    try:
        for piece in pieces:
            decoder.decode(piece)
            offset += len(piece)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        return offset + exc.start
    return None


Cell = Callable[[str], str]


def read_table(source: str | TextIO, required: Sequence[str],
               optional: Sequence[str]) -> Iterator[tuple[int, Cell]]:
    """The rows of a CSV whose header names its columns (any order, any case, Excel's
    delimiters and BOM, lines ending in CRLF, LF or CR), as (line number, cell reader)
    pairs, read one at a time; blank rows are skipped. `source` is the text, or a seekable
    stream opened with newline="" (`open_csv`). Raises CsvError when the file is empty, the
    header lacks a required column, or a line cannot be read as CSV at all (a cell longer
    than the csv module's limit, say: a quote left open); the error names that line, and
    the rows before it have been yielded."""
    stream = io.StringIO(source, newline="") if isinstance(source, str) else source
    sample = stream.read(4096)
    stream.seek(0)
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample,
                                                                    delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    # The sniffer is asked for the delimiter only: every spreadsheet quotes with '"', and a
    # file whose cells start with `spreadsheet_text`'s quote must not be read as quoted by it.
    reader = csv.reader(stream, dialect, quotechar='"', doublequote=True)
    header = _next_row(reader)
    if header is None:
        raise CsvError(f"the file is empty; the first row must name the columns "
                       f"({','.join(required)},...)")
    columns = [name.strip().lower().lstrip("\ufeff") for name in header]
    missing = [name for name in required if name not in columns]
    if missing:
        raise CsvError(f"the header row lacks the column{'s' if len(missing) > 1 else ''} "
                       f"{', '.join(missing)}; it has {', '.join(columns)}")
    index = {name: columns.index(name) for name in (*required, *optional) if name in columns}
    while (values := _next_row(reader)) is not None:
        if not any(value.strip() for value in values):
            continue

        def cell(name: str, values: list[str] = values) -> str:
            position = index.get(name)
            if position is None or position >= len(values):
                return ""
            return _from_spreadsheet_text(values[position].strip())

        yield reader.line_num, cell


def _next_row(reader: Any) -> list[str] | None:
    """The reader's next row, None at the end; a line the csv module cannot read is a
    CsvError naming it (the reader cannot be trusted past it: an open quote, say, would
    make the lines after it one cell)."""
    try:
        return next(reader, None)
    except csv.Error as exc:
        reason = str(exc)
        if reason.startswith("field larger than field limit"):
            reason = (f"a cell is longer than {csv.field_size_limit():,} characters "
                      "(a quote left open?)")
        raise CsvError(f"line {reader.line_num}: {reason}; the file was read no further") \
            from None


def read_subscriber_rows(
    source: str | TextIO, *, default_frequency: Frequency = Frequency.WEEKLY
) -> Iterator[SubscriberRow | RowError]:
    """Check each row on its own as it is read: a good row, or the error naming its line.
    Raises CsvError as `read_table` does, after the rows before."""
    for line, cell in read_table(source, REQUIRED, OPTIONAL):
        try:
            email = normalise_address(cell("email"))
        except AddressError as exc:
            yield RowError(line, f"email {exc}")
            continue
        ward = cell("ward")
        if not ward:
            yield RowError(line, "ward is empty")
            continue
        try:
            frequency = parse_frequency(cell("frequency")) if cell("frequency") else \
                default_frequency
            name, scheme = check_name_and_scheme(cell("name"), cell("scheme"))
        except SubscriberError as exc:
            yield RowError(line, str(exc))
            continue
        yield SubscriberRow(line, email, ward, name, frequency, scheme)


def read_subscribers(
    text: str, *, default_frequency: Frequency = Frequency.WEEKLY
) -> tuple[list[SubscriberRow], list[RowError]]:
    """Check every row; return the good ones (duplicates merged, last wins) and the errors.
    For a small file held whole; `read_subscriber_rows` reads a large one a row at a time."""
    rows: dict[tuple[str, str], SubscriberRow] = {}
    errors: list[RowError] = []
    for item in read_subscriber_rows(text, default_frequency=default_frequency):
        if isinstance(item, RowError):
            errors.append(item)
        else:
            rows[(item.email, item.ward)] = item
    return list(rows.values()), errors


# Rows a batch holds: each batch is checked against the database and written in one
# transaction, so an import holds one batch in memory whatever the file's size.
BATCH_ROWS = 2_000


def batches(items: Iterable[SubscriberRow | RowError], size: int = BATCH_ROWS,
            ) -> Iterator[tuple[list[SubscriberRow], list[RowError]]]:
    """The rows `read_subscriber_rows` reads, in batches of at most `size` lines, each as
    its good rows and its errors (in line order). A CsvError the reader raises comes after
    the batch holding the rows before its line, so they can still be kept."""
    good: list[SubscriberRow] = []
    bad: list[RowError] = []
    try:
        for item in items:
            if isinstance(item, RowError):
                bad.append(item)
            else:
                good.append(item)
            if len(good) + len(bad) >= size:
                yield good, bad
                good, bad = [], []
    except CsvError:
        if good or bad:
            yield good, bad
        raise
    if good or bad:
        yield good, bad


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
    set-based statements; a row that renews an existing subscription is loaded with the
    others and changed by `renew`, `subscribe`'s own rule, so both paths keep the same
    rules (and a file imported again costs a few queries a batch, not a few a row).
    """
    # The same address and ward twice: the last row wins, as a later file would.
    pending = list({(row.email, ward_key(row.ward)): row for row in rows}.values())
    errors: list[RowError] = []
    wards = ward_ids(session)
    checked: list[tuple[SubscriberRow, str, str | None]] = []
    for row in pending:
        if ward_key(row.ward) not in wards:
            errors.append(RowError(row.line, f"no ward with code {row.ward!r}"))
            continue
        try:
            name, scheme = check_name_and_scheme(row.name, row.scheme)
        except SubscriberError as exc:
            errors.append(RowError(row.line, str(exc)))
            continue
        checked.append((row, name, scheme))

    hashes = {row.email: normal_address_hash(row.email) for row, _, _ in checked}
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
    existing: dict[tuple[int, int], Subscription] = {}
    for chunk in _chunks(sorted(set(known.values()))):
        existing.update(((found.subscriber_id, found.ward_id), found) for found in
                        session.scalars(select(Subscription)
                                        .where(Subscription.subscriber_id.in_(chunk))))

    imported = 0
    renewals: list[tuple[SubscriberRow, Subscription, str, str | None]] = []
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
        renewed = None if subscriber_id is None else existing.get((subscriber_id,
                                                                   wards[ward_key(row.ward)]))
        if renewed is not None:
            renewals.append((row, renewed, name, scheme))
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
                "ward_id": wards[ward_key(row.ward)],
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
    people = {subscriber.id: subscriber for chunk in _chunks(sorted(
        {renewed.subscriber_id for _, renewed, _, _ in renewals}))
        for subscriber in session.scalars(select(Subscriber).where(Subscriber.id.in_(chunk)))}
    for row, renewed, name, scheme in renewals:
        renew(people[renewed.subscriber_id], renewed, consent, frequency=row.frequency,
              name=name, scheme=scheme, confirmed=confirmed)
        imported += 1
    session.flush()
    return imported, errors


WARD_COLUMNS = ("code", "name", "team_email")


def parse_wards_csv(text: str) -> tuple[list[WardRow], list[str]]:
    """Read `code,name,team_email` rows (any line ends, as `read_table`); return the good
    rows and one error per bad row. A file that cannot be read is a WardError naming why."""
    rows: list[WardRow] = []
    errors: list[str] = []
    seen: set[str] = set()
    try:
        for line, cell in read_table(text, WARD_COLUMNS, ()):
            try:
                code, name, team = check_ward(cell("code"), cell("name"), cell("team_email"))
            except WardError as exc:
                errors.append(f"line {line}: {exc}")
                continue
            if code in seen:
                errors.append(f"line {line}: ward code {code!r} appears twice in the file")
                continue
            seen.add(code)
            rows.append(WardRow(line, code, name, team))
    except CsvError as exc:
        raise WardError(str(exc)) from None
    return rows, errors
