"""The printable digest: `alerts digest print` makes an A4 PDF of the ward's latest digest,
queued through the real pipeline, that carries the news, the contact sessions with their
times, the how-to-report box, every web address written out, and none of an email's own
links. The PDF is opened with pypdfium2: each page's size is checked, each page is rendered
to an image that must not be blank, and its text is read back.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from zoneinfo import ZoneInfo

import pypdfium2
import pytest
from click.testing import CliRunner, Result
from sqlalchemy.orm import Session, sessionmaker

from alerts.cli import cli
from alerts.core.config import Settings
from alerts.core.db import transaction
from alerts.digests.compose import DigestItem
from alerts.mail.render import when
from alerts.sources.items import CollectedItem, ItemKind, store_items
from alerts.sources.registry import officer_source
from alerts.usecases import printed_digests as printed
from alerts.usecases.digest_rounds import queue_digests
from alerts.usecases.printed_digests import (
    PrintError,
    printed_digest_for,
    render_pdf,
    sort_items,
    write_atomically,
)
from subscriptions.schemes import add_scheme
from subscriptions.wards import get_ward
from tests.factories import make_subscriber, make_ward

A4_POINTS = (595.28, 841.89)
SHEDS_LINK = "https://riverside.example.org/news/sheds"
VANS_LINK = "https://riverside.example.org/vans"


@dataclass(frozen=True)
class News:
    """What the ward's digest carried, as a reader of the sheet should find it."""

    titles: tuple[str, ...]
    session_time: str  # as the sheet writes it, in the ward's time zone


def session_start() -> datetime:
    """A coming session, three weeks on at 10:00 local time, whatever day the test runs."""
    zone = ZoneInfo("Europe/London")
    day = (datetime.now(zone) + timedelta(days=21)).date()
    return datetime(day.year, day.month, day.day, 10, 0, tzinfo=zone).astimezone(UTC)


def publish_digest(factory: sessionmaker[Session], settings: Settings, code: str = "RIV",
                   name: str = "Riverside") -> News:
    """A ward with a confirmed subscriber, then a team post (with a web link), a contact
    session and advice, and its digest queued through the real pipeline."""
    with transaction(factory) as session:
        ward = make_ward(session, code, name)
        make_subscriber(session, ward, f"reader@{code.lower()}.example")
    starts = session_start()
    with transaction(factory) as session:
        ward = get_ward(session, code)
        store_items(session, officer_source(session, ward), [
            CollectedItem(guid="post:sheds", kind=ItemKind.POST,
                          title="Garden sheds broken into on Mill Lane",
                          body_html="<p>Three sheds were forced last week. Lock yours and "
                                    f'<a href="{VANS_LINK}">see which vans to look out for</a>.'
                                    "</p>",
                          link=SHEDS_LINK, published_at=datetime.now(UTC)),
            CollectedItem(guid="session:library", kind=ItemKind.SESSION,
                          title="Meet your team at the library",
                          body_html="<p>Drop in for a chat.</p>", starts_at=starts,
                          ends_at=starts + timedelta(hours=2), location="Mill Lane library"),
            CollectedItem(guid="advice:scams", kind=ItemKind.ADVICE,
                          title="Doorstep callers who ask for money",
                          body_html="<p>Never hand over cash at the door.</p>",
                          published_at=datetime.now(UTC)),
        ])
    outcomes = queue_digests(factory, settings, ward_code=code)
    assert outcomes[0].queued and outcomes[0].items == 3
    session_time = when(
        DigestItem(0, ItemKind.SESSION, "", "", None, None, starts,
                   starts + timedelta(hours=2), None),
        ZoneInfo(settings.scheduler.timezone))
    return News(("Garden sheds broken into on Mill Lane", "Meet your team at the library",
                 "Doorstep callers who ask for money"), session_time)


@dataclass(frozen=True)
class Page:
    width: float
    height: float
    text: str
    dark_pixels: int


def pdf_pages(pdf: bytes) -> list[Page]:
    """Each page's size in points, its text, and how many of its pixels are dark once
    rendered (a blank page has none)."""
    document = pypdfium2.PdfDocument(pdf)
    pages = []
    try:
        for page in document:
            width, height = page.get_size()
            text = page.get_textpage().get_text_range()
            image = page.render(scale=1).to_pil().convert("L")
            dark = sum(image.histogram()[:128])
            pages.append(Page(width, height, " ".join(text.split()), dark))
    finally:
        document.close()
    return pages


def assert_a4(pages: list[Page]) -> None:
    assert pages, "the PDF has pages"
    for page in pages:
        assert abs(page.width - A4_POINTS[0]) < 1 and abs(page.height - A4_POINTS[1]) < 1, \
            (page.width, page.height)
        assert page.dark_pixels > 1000, "every page prints something"


@pytest.fixture
def config(tmp_path: Path, settings: Settings) -> Path:
    path = tmp_path / "alerts.toml"
    path.write_text(
        f'[database]\nurl = "{settings.database.url}"\n'
        f'[mail]\nmaildir = "{tmp_path / "outbox"}"\n'
        '[web]\nsecret_key = "print-tests-secret"\nbase_url = "https://alerts.example.org"\n'
    )
    return path


def alerts(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def one_line_error(result: Result) -> str:
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_the_printed_digest_is_an_a4_sheet_with_the_news_and_how_to_report_a_crime(
        factory: sessionmaker[Session], settings: Settings, config: Path, tmp_path: Path
) -> None:
    news = publish_digest(factory, settings)
    out = tmp_path / "riverside.pdf"

    result = alerts(config, "digest", "print", "--ward", "RIV", "--out", str(out))

    assert result.exit_code == 0, result.output
    assert f"to {out}" in result.stdout
    pages = pdf_pages(out.read_bytes())
    assert_a4(pages)
    text = " ".join(page.text for page in pages)
    assert "Riverside" in text
    assert "call 999" in text and "call 101" in text, "the how-to-report box"
    assert settings.force.report_online_url in text
    assert settings.force.crimestoppers_phone in text and settings.force.crimestoppers_url in text
    assert "This sheet is not for reporting crime" in text
    for title in news.titles:
        assert title in text
    assert news.session_time in text and "Mill Lane library" in text
    assert SHEDS_LINK in text, "an item's web link is printed as its address"
    assert VANS_LINK in text, "a link inside an officer's text is printed as its address too"
    lowered = text.lower()
    for screen_only in ("unsubscribe", "preferences", "__alerts", "click here"):
        assert screen_only not in lowered
    assert not list(tmp_path.glob(".riverside.pdf.*")), "no temporary file is left behind"


def test_a_sheet_for_a_scheme_is_headed_with_the_scheme_name(
        factory: sessionmaker[Session], settings: Settings, config: Path, tmp_path: Path
) -> None:
    publish_digest(factory, settings)
    with transaction(factory) as session:
        add_scheme(session, "Mill Lane Watch", "RIV")
    out = tmp_path / "mill-lane.pdf"

    result = alerts(config, "digest", "print", "--ward", "RIV", "--scheme", "Mill Lane Watch",
                    "--out", str(out))

    assert result.exit_code == 0, result.output
    pages = pdf_pages(out.read_bytes())
    assert_a4(pages)
    assert pages[0].text.startswith("Mill Lane Watch: Neighbourhood Watch")


def test_a_ward_with_no_digest_yet_is_refused_with_what_to_do_and_no_file_is_written(
        factory: sessionmaker[Session], config: Path, tmp_path: Path) -> None:
    with transaction(factory) as session:
        make_ward(session, "HIL", "Hillside")
    out = tmp_path / "hillside.pdf"

    error = one_line_error(alerts(config, "digest", "print", "--ward", "HIL", "--out", str(out)))

    assert "HIL has had no digest yet" in error
    assert "alerts digest send --ward HIL" in error
    assert not out.exists()
    assert list(tmp_path.glob("*.pdf*")) == []


def test_an_unknown_ward_an_unknown_scheme_and_another_wards_scheme_are_named(
        factory: sessionmaker[Session], settings: Settings, config: Path, tmp_path: Path
) -> None:
    publish_digest(factory, settings)
    with transaction(factory) as session:
        make_ward(session, "HIL", "Hillside")
        add_scheme(session, "Hill Top Watch", "HIL")
    out = tmp_path / "sheet.pdf"

    unknown_ward = one_line_error(alerts(config, "digest", "print", "--ward", "NOPE",
                                         "--out", str(out)))
    unknown_scheme = one_line_error(alerts(config, "digest", "print", "--ward", "RIV",
                                           "--scheme", "Nowhere Watch", "--out", str(out)))
    elsewhere = one_line_error(alerts(config, "digest", "print", "--ward", "RIV",
                                      "--scheme", "Hill Top Watch", "--out", str(out)))

    assert "no ward with code 'NOPE'" in unknown_ward
    assert "no scheme called 'Nowhere Watch'" in unknown_scheme
    assert "'Hill Top Watch' is in ward HIL, not RIV" in elsewhere
    assert not out.exists()


def test_the_sheet_is_of_the_newest_digest_and_leaves_out_what_was_withdrawn_since(
        factory: sessionmaker[Session], settings: Settings) -> None:
    publish_digest(factory, settings)
    with transaction(factory) as session:
        ward = get_ward(session, "RIV")
        store_items(session, officer_source(session, ward), [
            CollectedItem(guid="post:lights", kind=ItemKind.POST, title="Bike lights handed out",
                          published_at=datetime.now(UTC))])
    assert queue_digests(factory, settings, ward_code="RIV")[0].queued

    with factory() as session:
        sheet = printed_digest_for(session, settings, "RIV", now=datetime.now(UTC))

    assert [item.title for item in sheet.posts] == ["Bike lights handed out"]
    assert not sheet.sessions and not sheet.advice
    assert sheet.archive_url == "https://alerts.example.org/wards/RIV/"


def test_a_session_over_by_the_time_of_printing_is_left_off_and_the_rest_keep_the_emails_order(
) -> None:
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)

    def item(id: int, kind: ItemKind, *, published: datetime | None = None,
             starts: datetime | None = None, ends: datetime | None = None) -> DigestItem:
        return DigestItem(id, kind, f"item {id}", "", None, published, starts, ends, None)

    items = [
        item(1, ItemKind.POST, published=now - timedelta(days=3)),
        item(2, ItemKind.POST, published=now - timedelta(days=1)),
        item(3, ItemKind.SESSION, starts=now - timedelta(hours=3), ends=now - timedelta(hours=1)),
        item(4, ItemKind.SESSION, starts=now - timedelta(hours=1), ends=now + timedelta(hours=1)),
        item(5, ItemKind.SESSION, starts=now + timedelta(days=2)),
        item(6, ItemKind.SESSION, starts=now + timedelta(days=1)),
        item(7, ItemKind.ADVICE, published=now - timedelta(days=2)),
    ]

    posts, advice, sessions = sort_items(items, now)

    assert [i.id for i in posts] == [2, 1]
    assert [i.id for i in advice] == [7]
    assert [i.id for i in sessions] == [4, 6, 5], "one still going is kept, one over is not"


def test_writing_the_pdf_replaces_the_file_whole_or_leaves_it_as_it_was(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "sheet.pdf"
    out.write_bytes(b"the old sheet")
    write_atomically(b"%PDF-new", out)
    assert out.read_bytes() == b"%PDF-new"

    def disk_full(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(printed.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        write_atomically(b"%PDF-newer but cut short", out)
    assert out.read_bytes() == b"%PDF-new"
    assert [p.name for p in tmp_path.iterdir()] == ["sheet.pdf"], "no temporary file is left"


class _NoPango(MetaPathFinder):
    """Imports WeasyPrint the way it fails on a machine without Pango's libraries."""

    def find_spec(self, fullname: str, path: object = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname == "weasyprint" or fullname.startswith("weasyprint."):
            raise OSError("cannot load library 'libpango-1.0-0'")
        return None


@pytest.fixture
def without_pango(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in [n for n in sys.modules if n == "weasyprint" or n.startswith("weasyprint.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_NoPango(), *sys.meta_path])
    yield


def test_without_pango_printing_says_which_debian_packages_to_install(
        factory: sessionmaker[Session], settings: Settings, without_pango: None) -> None:
    publish_digest(factory, settings)
    with factory() as session:
        sheet = printed_digest_for(session, settings, "RIV", now=datetime.now(UTC))

    needed = re.escape("apt-get install libpango-1.0-0 libpangoft2-1.0-0")
    with pytest.raises(PrintError, match=needed):
        render_pdf(sheet)


def test_the_rest_of_the_product_never_imports_weasyprint() -> None:
    probe = ("import sys, alerts.cli, alerts.web.app, alerts.usecases.coordinators, "
             "alerts.usecases.printed_digests;"
             "print('weasyprint' in sys.modules)")
    answer = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True)
    assert answer.stdout.strip() == "False"
