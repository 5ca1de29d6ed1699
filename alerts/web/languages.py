"""The language of a resident page: chosen by the page's "Cymraeg" / "English" link
(`?lang=`, then remembered in a cookie), else the browser's Accept-Language, else English;
and the context that draws that link (`templates/web/_base.html`)."""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urlencode

from fastapi import Request, Response

from alerts.core.translations import COOKIE, HTML_LANG, page_language
from subscriptions.languages import Language

# The page in the other language, named in that language.
SWITCH = {Language.ENGLISH: (Language.WELSH, "Cymraeg"),
          Language.WELSH: (Language.ENGLISH, "English")}
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
# Pages whose language follows the request: caches must keep one copy per choice.
VARY = "Accept-Language, Cookie"


# Browsers and mail filters send the same few Accept-Language headers again and again: each
# answer of the (pure) negotiation is kept, in a bounded cache of short keys (a long one, which
# no browser sends, is worked out each time), rather than worked out anew.
language_of = functools.lru_cache(maxsize=1024)(page_language)
KEPT_KEY_LENGTH = 256


def request_language(request: Request, *, switchable: bool = True) -> Language:
    """The page's language; without the switch link on the page, `?lang=` is not read."""
    chosen = request.query_params.get("lang") if switchable else None
    cookie = request.cookies.get(COOKIE)
    accept = request.headers.get("accept-language")
    short = sum(len(part or "") for part in (chosen, cookie, accept)) <= KEPT_KEY_LENGTH
    return (language_of if short else page_language)(chosen, cookie, accept)


def switch_link(request: Request, language: Language, path: str | None = None,
                ) -> dict[str, Any]:
    """What `_base.html` needs to link to this page (or `path`) in the other language."""
    other, label = SWITCH[language]
    query = {**request.query_params, "lang": other.value}
    return {"switch_label": label, "switch_lang": HTML_LANG[other],
            "switch_url": f"{path or request.url.path}?{urlencode(query)}"}


def remember_choice(request: Request, response: Response, language: Language) -> None:
    """Keep a language picked with the switch link for the resident's next pages."""
    if request.query_params.get("lang") == language.value:
        response.set_cookie(COOKIE, language.value, max_age=LANGUAGE_COOKIE_AGE,
                            httponly=True, samesite="lax",
                            secure=request.url.scheme == "https")
