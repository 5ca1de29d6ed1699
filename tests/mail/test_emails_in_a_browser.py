"""Every email a resident can get, opened in Chromium at phone width: no sideways scroll at
400 px and no serious axe-core problem, in English, Welsh and bilingual.

Each email is built through the function the product renders it with, and given links as
long as real ones (a signed token is one unbreakable word of a hundred characters and
more): its own link (confirm, my data, invitation), the unsubscribe, preferences and
"was this useful?" links filled in as delivery fills them, and long words in what officers,
coordinators and feeds write.

The list of emails is `templates/email/*.html` (a template whose name starts with "_" is a
part, not an email): a new email fails `test_every_email_template_is_built_here` until a
builder for it is added to `BUILDERS` below. Staff mail (forward, reminder, reset,
invitation) is plain text only (`alerts.mail.staff`), so it has no HTML to lay out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import Page

from alerts.core.config import Settings
from alerts.digests.compose import DigestItem, compose_digest
from alerts.digests.schedule import FirstDigest
from alerts.mail.marks import CONFIRM_URL_MARK, INVITE_URL_MARK, fill_links
from alerts.mail.messages import STAFF_KINDS, MessageKind
from alerts.mail.render import (
    TEMPLATES,
    Rendered,
    render_alert,
    render_confirmation,
    render_data_request,
    render_digest,
    render_left,
    render_post,
    render_reply_ack,
    render_welcome,
)
from alerts.sources.items import ItemKind
from alerts.usecases.coordinators import render_scheme_message
from alerts.usecases.officers import render_answer
from alerts.usecases.scheme_invitations import render_invitation
from subscriptions.languages import Language
from subscriptions.subscribers import Frequency
from tests.browser import PHONE, check_page

pytest_plugins = ("tests.browser",)

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
# A signed token as long as real ones get, and links made of it: one unbroken word each.
TOKEN = "eyJzIjoxMjM0NTY3LCJ3IjpbMSwyLDNdfQ.Xy7_k2Qw9-" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123" * 4
BASE = "https://alerts.police.example"
SETTINGS = Settings()


def link(path: str) -> str:
    return f"{BASE}/{path}/{TOKEN}"


# What an officer, a coordinator or a feed writes can hold a long word or a bare link too.
LONG_WORDS = (f"Details at {link('news')} and the reference "
              "CRIME-REF-2026-000000000000000000000000000000000000000000000000000000000123.")


def item(id: int, kind: ItemKind, title: str, starts: datetime | None = None) -> DigestItem:
    return DigestItem(id=id, kind=kind, title=title,
                      body_html=f"<p>{LONG_WORDS}</p><p><a href=\"{link('item')}\">"
                                f"{link('item')}</a></p>",
                      link=link(f"item{id}"), published_at=NOW - timedelta(days=1),
                      starts_at=starts, ends_at=starts + timedelta(hours=2) if starts else None,
                      location="Mill Lane library, Riverside Community Centre" if starts else None)


def digest(language: Language) -> Rendered:
    content = compose_digest("RIV", "Riverside", [
        item(1, ItemKind.POST, "Extra patrols on Mill Lane after a spate of shed break-ins"),
        item(2, ItemKind.ADVICE, "Keep your bike locked to something solid"),
        item(3, ItemKind.SESSION, "Meet the team", datetime(2026, 12, 5, 10, 0, tzinfo=UTC)),
    ], now=NOW, max_age=timedelta(days=30))
    assert content is not None
    return render_digest(content, SETTINGS, now=NOW, language=language)


def post(language: Language) -> Rendered:
    return render_post("Riverside", item(1, ItemKind.POST, "Extra patrols on Mill Lane"),
                       SETTINGS, now=NOW, language=language)


def alert(language: Language) -> Rendered:
    return render_alert("Riverside", "Road closed at the bridge", f"<p>{LONG_WORDS}</p>",
                        SETTINGS, now=NOW, language=language)


def confirm(language: Language) -> Rendered:
    # As queued: rendered once with the mark, each copy given its own link.
    return render_confirmation(["Riverside", "Old Town"], CONFIRM_URL_MARK, 48, SETTINGS,
                               now=NOW, language=language).with_own_link(
        CONFIRM_URL_MARK, link("confirm"))


def my_data(language: Language) -> Rendered:
    return render_data_request(link("my-data"), 24, SETTINGS, now=NOW, language=language)


def reply_ack(language: Language) -> Rendered:
    return render_reply_ack("Riverside", "Re: Riverside neighbourhood news", SETTINGS,
                            emergency=False, now=NOW, language=language)


def left(language: Language) -> Rendered:
    return render_left("Riverside", SETTINGS, now=NOW, language=language)


def team_answer(_language: Language) -> Rendered:
    # An officer writes in one language: the answer has no Welsh or bilingual version.
    return render_answer(SETTINGS, ward_name="Riverside", subject="Re: Mill Lane",
                         text=f"Thank you for writing.\n\n{LONG_WORDS}", signer="PC Jones",
                         you_wrote=f"I saw something odd.\n{LONG_WORDS}", now=NOW)


def scheme_message(_language: Language) -> Rendered:
    return render_scheme_message(SETTINGS, scheme_name="Mill Lane Watch", ward_name="Riverside",
                                 sender="Sam, coordinator", from_coordinator=True,
                                 subject="Bins on Tuesday", body=f"Hello all.\n\n{LONG_WORDS}",
                                 now=NOW)


def scheme_invitation(language: Language) -> Rendered:
    return render_invitation(SETTINGS, scheme_name="Mill Lane Watch", ward_name="Riverside",
                             invite_url=INVITE_URL_MARK, now=NOW, language=language,
                             ).with_own_link(INVITE_URL_MARK, link("invitation"))


def welcome(language: Language) -> Rendered:
    return render_welcome([FirstDigest("Riverside", Frequency.WEEKLY, NOW + timedelta(days=3)),
                           FirstDigest("Old Town", Frequency.IMMEDIATE, None)],
                          SETTINGS, now=NOW, language=language)


# Template name → (the message kind it goes out as, how it is built). Add a new email here.
BUILDERS: dict[str, tuple[MessageKind, Callable[[Language], Rendered]]] = {
    "digest": (MessageKind.DIGEST, digest),
    "post": (MessageKind.POST, post),
    "alert": (MessageKind.ALERT, alert),
    "confirm": (MessageKind.CONFIRM, confirm),
    "my-data": (MessageKind.DATA_REQUEST, my_data),
    "reply-ack": (MessageKind.REPLY_ACK, reply_ack),
    "left": (MessageKind.LEFT, left),
    "team-answer": (MessageKind.TEAM_ANSWER, team_answer),
    "scheme-message": (MessageKind.SCHEME, scheme_message),
    "scheme-invitation": (MessageKind.CONFIRM, scheme_invitation),
    "welcome": (MessageKind.WELCOME, welcome),
}
SINGLE_LANGUAGE = frozenset({"team-answer", "scheme-message"})


def email_templates() -> set[str]:
    return {path.stem for path in (TEMPLATES / "email").glob("*.html")
            if not path.name.startswith("_")}


def delivered(rendered: Rendered) -> str:
    """The HTML part as a resident gets it: every link mark filled with a long signed link."""
    return fill_links(rendered.html, link("unsubscribe"), link("preferences"),
                      lambda ref, useful: link(f"useful/{ref}/{'yes' if useful else 'no'}"))


def test_every_email_template_is_built_here() -> None:
    missing = email_templates() - set(BUILDERS)
    assert not missing, f"add a builder to BUILDERS for the email(s) {sorted(missing)}"
    assert set(BUILDERS) <= email_templates()


def test_every_kind_of_resident_mail_is_built_here() -> None:
    built = {kind for kind, _build in BUILDERS.values()}
    assert built == set(MessageKind) - set(STAFF_KINDS)


def test_every_email_fits_a_phone_and_passes_axe(page: Page, artefacts: Path) -> None:
    too_wide: list[str] = []
    for name, (_kind, build) in sorted(BUILDERS.items()):
        languages = [Language.ENGLISH] if name in SINGLE_LANGUAGE else list(Language)
        for language in languages:
            page.set_viewport_size(PHONE)
            page.set_content(delivered(build(language)))
            width = page.evaluate("document.scrollingElement.scrollWidth")
            if width > PHONE["width"]:
                too_wide.append(f"{name} ({language.value}): {width} px")
            check_page(page, f"{name}-{language.value}", artefacts)
    assert not too_wide, f"scroll sideways at {PHONE['width']} px: {too_wide}"
