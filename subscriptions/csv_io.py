"""Subscriber CSV files: reading rows for import (with line-numbered errors) and export rows.

Columns are named in a header row: `email,ward` are required, `name,frequency,scheme`
optional. Reading is pure: it checks each row on its own; `import_rows` then does the checks that
need the database (does the ward exist?) and stores the good rows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TextIO

from sqlalchemy.orm import Session

from subscriptions.addresses import AddressError, normalise_address
from subscriptions.consent import Consent
from subscriptions.subscribers import (
    Frequency,
    SubscriberError,
    SubscriptionRecord,
    check_name_and_scheme,
    parse_frequency,
    subscribe,
)
from subscriptions.wards import find_ward

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
    """UTF-8 with or without the byte-order mark that Excel writes."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvError(
            f"not UTF-8 text (byte {exc.start}); in Excel choose 'CSV UTF-8' when saving"
        ) from None


def read_subscribers(
    text: str, *, default_frequency: Frequency = Frequency.WEEKLY
) -> tuple[list[SubscriberRow], list[RowError]]:
    """Check every row; return the good ones (duplicates merged, last wins) and the errors."""
    sample = text[:4096]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    header = next(reader, None)
    if header is None:
        raise CsvError("the file is empty; the first row must name the columns (email,ward,...)")
    columns = [name.strip().lower().lstrip("\ufeff") for name in header]
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        raise CsvError(
            f"the header row lacks the column(s) {', '.join(missing)}; it has {', '.join(columns)}"
        )
    index = {name: columns.index(name) for name in (*REQUIRED, *OPTIONAL) if name in columns}
    rows: dict[tuple[str, str], SubscriberRow] = {}
    errors: list[RowError] = []
    for values in reader:
        line = reader.line_num
        if not any(value.strip() for value in values):
            continue

        def cell(name: str, values: list[str] = values) -> str:
            position = index.get(name)
            return values[position].strip() if position is not None and position < len(values) \
                else ""

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


def write_records(records: Iterable[SubscriptionRecord], out: TextIO) -> int:
    """Write export rows with a header; return how many rows were written."""
    writer = csv.writer(out, lineterminator="\n")
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



def import_rows(
    session: Session,
    rows: Iterable[SubscriberRow],
    consent: Consent,
    *,
    confirmed: bool,
) -> tuple[int, list[RowError]]:
    """Subscribe each good row in the caller's transaction; a row naming an unknown ward or
    a suppressed address is reported, not stored."""
    imported = 0
    errors: list[RowError] = []
    known_wards: dict[str, bool] = {}
    for row in rows:
        if row.ward not in known_wards:
            known_wards[row.ward] = find_ward(session, row.ward) is not None
        if not known_wards[row.ward]:
            errors.append(RowError(row.line, f"no ward with code {row.ward!r}"))
            continue
        try:
            subscribe(session, row.email, row.ward, consent, frequency=row.frequency,
                      name=row.name, scheme=row.scheme, confirmed=confirmed)
        except SubscriberError as exc:
            errors.append(RowError(row.line, str(exc)))
            continue
        imported += 1
    return imported, errors
