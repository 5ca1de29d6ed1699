"""The gettext catalogues: one home for the words residents read in English or Welsh.

The English text is the message id, so English needs no catalogue (`NullTranslations`).
The Welsh catalogue is the source file `alerts/locale/cy/LC_MESSAGES/messages.po`, compiled
in memory the first time a process needs it: no binary `.mo` is kept in the repository and
no build step is needed. Bilingual mail is made of the two (Welsh first), so it has no
catalogue of its own; `each_language` and `both` say how it is put together.

`catalogue_gaps` is the check that every marked message has a Welsh translation.

This module also chooses a resident page's language (`page_language`): a `lang` query
parameter, else the `lang` cookie set by the page's "Cymraeg" / "English" link, else the
browser's Accept-Language, else English.
"""

from __future__ import annotations

import functools
import gettext
import re
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

from babel import Locale
from babel.core import negotiate_locale
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from subscriptions.languages import Language

LOCALE_DIR = Path(__file__).resolve().parents[1] / "locale"
DOMAIN = "messages"
TEMPLATE = LOCALE_DIR / f"{DOMAIN}.pot"
# The languages with a catalogue of their own; bilingual is Welsh then English.
SINGLE = (Language.WELSH, Language.ENGLISH)
# Babel's names, for catalogues and for dates ("Dydd Sadwrn 5 Rhagfyr 2026").
BABEL_LOCALES = {Language.ENGLISH: "en_GB", Language.WELSH: "cy"}
# What `<html lang>` and `lang` attributes say.
HTML_LANG = {Language.ENGLISH: "en-GB", Language.WELSH: "cy"}
COOKIE = "lang"
PAGE_LANGUAGES = {Language.WELSH.value, Language.ENGLISH.value}


def N_(message: str) -> str:
    """Marks a string for the catalogue where it is defined; it is translated where used."""
    return message


def po_path(language: Language) -> Path:
    return LOCALE_DIR / BABEL_LOCALES[language] / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.cache
def catalogue(language: Language = Language.WELSH) -> Catalog:
    """The source catalogue of a language, as read from its `.po` file."""
    with po_path(language).open("rb") as source:
        return read_po(source, locale=BABEL_LOCALES[language], domain=DOMAIN)


@functools.cache
def translations(language: Language) -> gettext.NullTranslations:
    """The translations of English or Welsh, compiled once a process; English is the ids."""
    if language is Language.BILINGUAL:
        raise ValueError("bilingual text is Welsh then English: translate each in turn")
    if language is Language.ENGLISH:
        return gettext.NullTranslations()
    compiled = BytesIO()
    write_mo(compiled, catalogue(language))
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def each_language(language: Language) -> tuple[Language, ...]:
    """The single languages a message is written in, in the order it shows them."""
    return SINGLE if language is Language.BILINGUAL else (language,)


def both(language: Language, make: Callable[[gettext.NullTranslations], str],
         *, separator: str = " / ") -> str:
    """A short text (a subject) in `language`; bilingual joins the Welsh and the English."""
    return separator.join(make(translations(single)) for single in each_language(language))


def babel_locale(language: Language) -> Locale:
    return Locale.parse(BABEL_LOCALES[language])


def page_language(query: str | None, cookie: str | None, accept: str | None) -> Language:
    """A resident page's language: the switch link's `?lang=`, its cookie, the browser's
    preferences, else English. Pages are in one language, never bilingual."""
    for choice in (query, cookie):
        cleaned = (choice or "").strip().lower()
        if cleaned in PAGE_LANGUAGES:
            return Language(cleaned)
    found = negotiate_locale(_preferred(accept or ""), ["cy", "en"], sep="-")
    return Language.WELSH if found == "cy" else Language.ENGLISH


def _preferred(accept: str) -> list[str]:
    """Accept-Language's tags, most wanted first ("cy-GB,en;q=0.5" → cy-GB, cy, en)."""
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        if tag and quality > 0:
            weighted.append((-quality, position, tag.strip().lower()))
    tags: list[str] = []
    for _quality, _position, tag in sorted(weighted):
        tags += [tag, tag.split("-")[0]]
    return tags


# A `%(name)s` or `%(count)d` placeholder in a message.
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def extracted(root: Path, mapping: Path | None = None) -> dict[str | tuple[str, ...], str]:
    """Every message marked under `root` by the mapping (`babel.cfg`), with where it is.
    (Babel's extractor is imported here: only the catalogue checks need it, not a process
    that renders mail or pages.)"""
    from babel.messages.extract import extract_from_dir
    from babel.messages.frontend import parse_mapping_cfg

    with (mapping or root / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)  # type: ignore[no-untyped-call]
    found: dict[str | tuple[str, ...], str] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
            str(root), method_map, options_map):
        key = (tuple(str(part) for part in message) if isinstance(message, (tuple, list))
               else str(message))
        found.setdefault(key, f"{filename}:{lineno}")
    return found


def catalogue_gaps(root: Path, catalogue: Catalog, mapping: Path | None = None) -> list[str]:
    """What the catalogue lacks for the messages marked under `root`: a message with no
    translation or a fuzzy one, and a translation that drops or invents a placeholder."""
    gaps: list[str] = []
    for message_id, where in extracted(root, mapping).items():
        singular = message_id[0] if isinstance(message_id, tuple) else message_id
        entry = catalogue.get(singular)
        raw = () if entry is None else (
            entry.string if isinstance(entry.string, (tuple, list)) else (entry.string,))
        strings = [str(text or "") for text in raw]
        if entry is None or entry.fuzzy or not all(strings):
            gaps.append(f"{where}: untranslated: {singular!r}")
            continue
        ids = message_id if isinstance(message_id, tuple) else (message_id,)
        wanted = {name for text in ids for name in PLACEHOLDER.findall(text)}
        for text in strings:
            if set(PLACEHOLDER.findall(text)) != wanted:
                gaps.append(f"{where}: placeholders differ: {singular!r} -> {text!r}")
    return gaps
