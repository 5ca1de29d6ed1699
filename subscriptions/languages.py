"""Languages a resident can read their email in: English, Welsh, or both (Welsh first).

A ward has a language for everyone on its list; a subscriber may choose their own, which
wins. The translations themselves live with the templates (`alerts/core/translations.py`).
"""

from __future__ import annotations

from enum import StrEnum

from subscriptions.errors import AlertsError


class Language(StrEnum):
    ENGLISH = "en"
    WELSH = "cy"
    # Both languages in one message, Welsh first, as the Welsh Language Standards expect.
    BILINGUAL = "bilingual"

    @property
    def label(self) -> str:
        return LABELS[self]


LABELS = {
    Language.ENGLISH: "English",
    Language.WELSH: "Cymraeg (Welsh)",
    Language.BILINGUAL: "Cymraeg ac English (bilingual)",
}


class LanguageError(AlertsError, ValueError):
    """A language that is not English, Welsh or bilingual; the message lists the choices."""

    http_status = 400


def parse_language(value: str) -> Language:
    """A language from a form, a CSV cell or the command line ("en", "cy", "bilingual")."""
    cleaned = value.strip().lower()
    try:
        return Language(cleaned)
    except ValueError:
        choices = ", ".join(language.value for language in Language)
        raise LanguageError(f"language {value!r} is not one of {choices}") from None


def effective_language(subscriber_choice: str | None, ward_language: str) -> Language:
    """What a resident is sent in: their own choice, else their ward's."""
    return Language(subscriber_choice or ward_language)
