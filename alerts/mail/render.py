"""Rendering: one template context → the HTML part (CSS inlined) and the text part.

Messages are rendered once per ward and language. Each resident's own signed links are left
as markers (`alerts.mail.marks.UNSUBSCRIBE_MARK`, `PREFERENCES_MARK`) that delivery swaps in.

Every render takes a `language`: English, Welsh (the templates' `{% trans %}` text through the
catalogue in `alerts.core.translations`, dates in Welsh), or bilingual: one email holding the Welsh
version, then the English one, under a line saying so in both languages, with a subject
"Welsh / English". A bilingual message may carry the link markers twice; delivery replaces
every one.
"""

from __future__ import annotations

import functools
import gettext
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from html import escape as escape_html
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import css_inline
from babel.dates import format_date, format_datetime, format_time
from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context, select_autoescape
from jinja2.runtime import Context as TemplateContext
from markupsafe import Markup

from alerts.core.config import Settings
from alerts.core.translations import (
    HTML_LANG,
    N_,
    babel_locale,
    both,
    each_language,
    translations,
)
from alerts.digests.compose import (
    DigestContent,
    DigestItem,
    SessionSeries,
    digest_subject,
    listing,
    ward_page_url,
)
from alerts.digests.invites import sessions_calendar
from alerts.digests.schedule import FirstDigest
from alerts.mail.marks import PREFERENCES_MARK, UNSUBSCRIBE_MARK
from alerts.mail.messages import MAX_SUBJECT
from alerts.sources.items import ItemKind
from alerts.sources.sanitise import html_to_text, sanitise_html, shorten
from subscriptions.languages import Language


def _templates() -> Path:
    """Where the templates are: in the package when it was installed from a wheel (setup.py
    puts the repository's templates/ there), else templates/ at the top of the checkout."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "templates"
    return installed if installed.is_dir() else package.parent / "templates"


TEMPLATES = _templates()


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str
    calendar: bytes | None

    def with_own_link(self, mark: str, url: str) -> Rendered:
        """This email with `url` where `mark` is (`alerts.mail.marks`), escaped in the HTML."""
        return replace(self, html=self.html.replace(mark, escape_html(url, quote=True)),
                       text=self.text.replace(mark, url))


def fit_subject(subject: str) -> str:
    """A subject cut to what a message stores: a ward name and a long title can outgrow it
    (PostgreSQL refuses the longer value; SQLite would keep it)."""
    return shorten(subject, MAX_SUBJECT)


def _kept_gettext(newstyle: Callable[..., str], catalogue: gettext.NullTranslations,
                  ) -> Callable[..., str]:
    """Jinja's new-style `gettext` (`_()` in templates), keeping what a message without
    variables becomes (looked up, made Markup, formatted as Jinja does: "%%" is "%"): a
    page asks for the same twenty messages at every render."""
    @functools.lru_cache(maxsize=4096)
    def plain(message: str, autoescape: bool) -> str:
        found = catalogue.gettext(message)
        return (Markup(found) if autoescape else found) % {}

    @pass_context
    def kept(context: TemplateContext, message: str, /, **variables: Any) -> str:
        if variables:
            return newstyle(context, message, **variables)
        return plain(message, context.eval_ctx.autoescape)
    return kept


@functools.cache
def environment(templates: Path = TEMPLATES, language: Language = Language.ENGLISH,
                ) -> Environment:
    """One environment a process and language (English or Welsh), so each template is
    compiled once, not at every render. `{% trans %}` and `_()` read that language's
    catalogue; `lang_code` is what `<html lang>` says."""
    env = Environment(
        loader=FileSystemLoader(templates),
        extensions=["jinja2.ext.i18n"],
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # Templates are part of the installed product: no stat() of the file at each render.
        auto_reload=False,
    )
    env.filters["safe_html"] = lambda html: Markup(sanitise_html(html))
    env.filters["as_text"] = html_to_text
    install = env.install_gettext_translations  # type: ignore[attr-defined]
    install(translations(language), newstyle=True)
    newstyle: Callable[..., str] = env.globals["gettext"]  # type: ignore[assignment]
    env.globals["gettext"] = _kept_gettext(newstyle, translations(language))
    env.globals["lang_code"] = HTML_LANG[language]
    # Items come from English feeds and officers: in a Welsh email (or the Welsh half of a
    # bilingual one) their text says so, for screen readers and translation tools.
    env.globals["item_lang"] = Markup(' lang="en"' if language is Language.WELSH else "")
    # A bilingual email renders each language's body as a fragment of one document.
    env.globals["fragment"] = False
    return env


def when(item: DigestItem, zone: ZoneInfo, language: Language = Language.ENGLISH) -> str:
    """'Saturday 5 December 2026, 10:00 to 11:30' in the ward's time zone ('Dydd Sadwrn 5
    Rhagfyr 2026, 10:00 tan 11:30' in Welsh)."""
    if item.starts_at is None:
        return ""
    locale = babel_locale(language)
    start = item.starts_at.astimezone(zone)
    text = format_datetime(start, "EEEE d MMMM y, HH:mm", tzinfo=zone, locale=locale)
    if item.ends_at is not None:
        end = item.ends_at.astimezone(zone)
        pattern = "HH:mm" if end.date() == start.date() else "EEEE d MMMM, HH:mm"
        until = format_datetime(end, pattern, tzinfo=zone, locale=locale)
        text = translations(language).gettext("%(start)s to %(end)s") % {
            "start": text, "end": until}
    return text


@dataclass(frozen=True)
class SessionTimes:
    """A session (`compose.SessionSeries`) as a reader sees it: once, with every date."""

    session: DigestItem
    times: list[str]
    more_dates: int = 0  # later dates the listing only counts


def session_times(series: Sequence[SessionSeries], zone: ZoneInfo,
                  language: Language = Language.ENGLISH) -> list[SessionTimes]:
    """Each series' soonest occurrence and its dates in words (`when`), in order."""
    return [SessionTimes(s.session, [when(o, zone, language) for o in s.occurrences],
                         s.more_dates) for s in series]


def footer_context(settings: Settings) -> dict[str, Any]:
    """What every message says about reporting crime and who sends it (the masthead names
    the force, the footer links its privacy notice), and the resident's own links."""
    return {
        "force": settings.force,
        "privacy_url": f"{settings.web.base_url.rstrip('/')}/privacy",
        "unsubscribe_url": UNSUBSCRIBE_MARK,
        "preferences_url": PREFERENCES_MARK,
    }


def render_pair(env: Environment, name: str, context: dict[str, Any]) -> tuple[str, str]:
    html, text = _render_raw(env, name, context)
    return css_inline.inline(html), text


def _render_raw(env: Environment, name: str, context: dict[str, Any]) -> tuple[str, str]:
    html = env.get_template(f"email/{name}.html").render(context)
    text = env.get_template(f"email/{name}.txt").render(context)
    return html, text


# The context of one language's version of a message.
Context = Callable[[Language], dict[str, Any]]


def render_in(language: Language, name: str, subject: str, context: Context, *,
              env: Environment | None = None) -> tuple[str, str]:
    """templates/email/NAME.* in `language`; bilingual is the Welsh version then the English
    one in one document. `env`, when given, renders a single language in place of the
    cached environment."""
    if language is not Language.BILINGUAL:
        return render_pair(env or environment(language=language), name, context(language))
    welsh, english = (
        _render_raw(environment(language=single), name, {**context(single), "fragment": True})
        for single in each_language(language))
    wrapper = environment()
    html = wrapper.get_template("email/_bilingual.html").render(
        subject=subject, welsh=Markup(welsh[0]), english=Markup(english[0]))
    text = wrapper.get_template("email/_bilingual.txt").render(
        welsh=welsh[1], english=english[1])
    return css_inline.inline(html), text


def _render_localised(name: str, subject_in: Callable[[Language], str], settings: Settings,
                      context_in: Callable[[Language], dict[str, Any]], *, now: datetime,
                      env: Environment | None, language: Language) -> Rendered:
    """templates/email/NAME.* in `language`, each single language's version with its own
    subject (`subject_in`, cut to fit), date, the how-to-report footer and the resident's link
    marks, plus `context_in(language)`. The message's subject is `subject_in(language)`
    (bilingual: Welsh / English)."""
    zone = ZoneInfo(settings.scheduler.timezone)
    whole = fit_subject(subject_in(language))

    def context(single: Language) -> dict[str, Any]:
        own = context_in(single)
        return {
            **footer_context(settings),
            "subject": fit_subject(subject_in(single)),
            "date": local_date(now, zone, single),
            # Who it is from, as the From header says (the ward's team when there is one).
            "sender": settings.force.sender(own.get("ward_name")),
            **own,
        }

    html, text = render_in(language, name, whole, context, env=env)
    return Rendered(whole, html, text, None)


def render_digest(
    content: DigestContent, settings: Settings, *, now: datetime, env: Environment | None = None,
    language: Language = Language.ENGLISH,
) -> Rendered:
    """The digest's email: its subject counts everything `content` covers; its HTML, text
    and calendar list what `compose.listing` keeps and count the rest, with a link to the
    ward's page."""
    zone = ZoneInfo(settings.scheduler.timezone)
    shown = listing(content.posts, content.advice, content.series)
    rendered = _render_localised(
        "digest", lambda single: digest_subject(content, single), settings,
        lambda single: {
            "ward_name": content.ward_name,
            "ward_code": content.ward_code,
            "ward_url": ward_page_url(settings.web.base_url, content.ward_code),
            "posts": shown.posts,
            "advice": shown.advice,
            "sessions": session_times(shown.sessions, zone, single),
            "more_posts": shown.more_posts,
            "more_advice": shown.more_advice,
            "more_sessions": shown.more_sessions,
        }, now=now, env=env, language=language)
    domain = settings.mail.from_address.rpartition("@")[2] or "localhost"
    calendar = sessions_calendar(
        [occurrence for series in shown.sessions for occurrence in series.occurrences],
        ward_name=content.ward_name, uid_domain=domain, now=now)
    return replace(rendered, calendar=calendar)


def local_date(now: datetime, zone: ZoneInfo, language: Language = Language.ENGLISH) -> str:
    """'Friday 20 November 2026' ('Dydd Gwener 20 Tachwedd 2026') in the ward's time zone."""
    return format_date(now.astimezone(zone), "EEEE d MMMM y", locale=babel_locale(language))


def render_post(
    ward_name: str, item: DigestItem, settings: Settings, *, now: datetime,
    env: Environment | None = None, language: Language = Language.ENGLISH,
    occurrences: Sequence[DigestItem] = (),
) -> Rendered:
    """One item on its own, for residents who chose to hear of each post at once; a session
    held on several dates (`occurrences`, soonest first: `compose.SessionSeries`) is one
    email with every date, its calendar one event each."""
    zone = ZoneInfo(settings.scheduler.timezone)
    dates = list(occurrences) or [item]
    # The title first, then the ward (the From name says it too): "Bikes marked (Riverside)".
    subject = f"{item.title} ({ward_name})"
    rendered = _render_localised(
        "post", lambda _single: subject, settings,
        lambda single: {"ward_name": ward_name, "item": item,
                        "times": [when(o, zone, single) for o in dates]},
        now=now, env=env, language=language)
    if item.kind != ItemKind.SESSION:
        return rendered
    domain = settings.mail.from_address.rpartition("@")[2] or "localhost"
    return replace(rendered, calendar=sessions_calendar(
        dates, ward_name=ward_name, uid_domain=domain, now=now))


def render_alert(
    ward_name: str, title: str, body_html: str, settings: Settings, *, now: datetime,
    env: Environment | None = None, language: Language = Language.ENGLISH,
) -> Rendered:
    """An urgent alert: short, plain, and still saying how to report a crime."""
    zone = ZoneInfo(settings.scheduler.timezone)
    local = now.astimezone(zone)

    def alert_subject(t: gettext.NullTranslations) -> str:
        # Urgency first, then the title, then the ward, as the post's subject has them.
        return t.gettext("[Urgent] %(title)s (%(ward)s)") % {
            "ward": ward_name, "title": title}

    return _render_localised(
        "alert", lambda single: both(single, alert_subject), settings,
        lambda single: {
            "ward_name": ward_name,
            "title": title,
            "body_html": body_html,
            "sent_at": f"{local_date(now, zone, single)}, {local:%H:%M}",
        }, now=now, env=env, language=language)


# Why a confirmation email came, by how the address reached the list (translated where shown).
SIGNED_UP = N_("the address was entered on our subscription page")
ADDED_FOR_YOU = N_("your Neighbourhood Watch coordinator or neighbourhood team added the address "
                   "to our list, saying you asked to join")

# A subject given as a function of the translations, so each language gets its own.
Subject = str | Callable[[gettext.NullTranslations], str]


def render_email(name: str, subject: Subject, settings: Settings, *, now: datetime,
                 env: Environment | None = None, language: Language = Language.ENGLISH,
                 **context: Any) -> Rendered:
    """A message written for one resident or one group, from templates/email/NAME.*: the
    subject (cut to fit), the date, the how-to-report footer and the resident's link marks
    are in its context with `context`. A plain-string subject (an officer's words) is the
    same in every language."""
    return _render_localised(
        name, lambda single: subject if isinstance(subject, str) else both(single, subject),
        settings, lambda _single: context, now=now, env=env, language=language)


def render_confirmation(
    ward_names: list[str], confirm_url: str, valid_hours: int, settings: Settings, *,
    now: datetime, why: str = SIGNED_UP, env: Environment | None = None,
    language: Language = Language.ENGLISH,
) -> Rendered:
    """The double opt-in email: one link that confirms the wards asked for."""
    return render_email(
        "confirm", lambda t: t.gettext("Please confirm your neighbourhood alerts"), settings,
        now=now, env=env, language=language, ward_names=ward_names, confirm_url=confirm_url,
        valid_hours=valid_hours, why=why)


def render_data_request(
    data_url: str, valid_hours: int, settings: Settings, *, now: datetime,
    env: Environment | None = None, language: Language = Language.ENGLISH,
) -> Rendered:
    """The "my data" email: one link to a page that downloads or erases the resident's data."""
    return render_email(
        "my-data", lambda t: t.gettext("Your neighbourhood alerts data"), settings, now=now,
        env=env, language=language, data_url=data_url, valid_hours=valid_hours)


def around(at: datetime, zone: ZoneInfo, language: Language = Language.ENGLISH) -> str:
    """'Monday 14 December, around 8am' ('Dydd Llun 14 Rhagfyr, tua 08:00') in the ward's
    time zone: when a digest is due, said as a person would (the round takes a few minutes)."""
    local = at.astimezone(zone)
    locale = babel_locale(language)
    day = format_date(local, "EEEE d MMMM", locale=locale)
    if language is Language.ENGLISH:
        time = format_time(local, "h a" if local.minute == 0 else "h:mm a", locale=locale)
        time = time.replace(" ", "").lower()
    else:
        time = format_time(local, "HH:mm", locale=locale)
    return translations(language).gettext("%(day)s, around %(time)s") % {
        "day": day, "time": time}


def first_digests(wards: Sequence[FirstDigest], zone: ZoneInfo,
                  language: Language = Language.ENGLISH) -> list[dict[str, str]]:
    """What `templates/email/_first_digests.*` list, one line a ward: its name, how often
    the resident hears (`Frequency`) and when first (empty for each post as it comes)."""
    return [{"name": ward.ward_name, "frequency": ward.frequency,
             "when": "" if ward.at is None else around(ward.at, zone, language)}
            for ward in wards]


def render_welcome(wards: Sequence[FirstDigest], settings: Settings, *, now: datetime,
                   env: Environment | None = None,
                   language: Language = Language.ENGLISH) -> Rendered:
    """The welcome a resident's own confirmation brings: the wards, when each first digest
    comes, the preferences link, how replies reach the team (the first ward's: the message
    belongs to it, and so does its Reply-To)."""
    zone = ZoneInfo(settings.scheduler.timezone)

    def subject(t: gettext.NullTranslations) -> str:
        return t.gettext("Welcome to neighbourhood alerts for %(ward)s") % {
            "ward": wards[0].ward_name}

    return _render_localised(
        "welcome", lambda single: both(single, subject), settings,
        lambda single: {"wards": first_digests(wards, zone, single),
                         "ward_name": wards[0].ward_name},
        now=now, env=env, language=language)


def render_reply_ack(ward_name: str, answered: str, settings: Settings, *, emergency: bool,
                     now: datetime, env: Environment | None = None,
                     language: Language = Language.ENGLISH) -> Rendered:
    """The acknowledgement of a resident's reply; `emergency` puts the call-999 answer first."""
    def subject(t: gettext.NullTranslations) -> str:
        if emergency:
            return t.gettext("Not the way to report a crime: call 999 in an emergency")
        return t.gettext("We have passed your reply to the %(ward)s team") % {"ward": ward_name}

    return render_email("reply-ack", subject, settings, now=now, env=env, language=language,
                        ward_name=ward_name, answered=answered, emergency=emergency)


def render_left(ward_name: str, settings: Settings, *, now: datetime,
                env: Environment | None = None,
                language: Language = Language.ENGLISH) -> Rendered:
    """The one note that confirms an unsubscribe asked for by email."""
    return render_email(
        "left",
        lambda t: t.gettext("You have left %(ward)s neighbourhood alerts") % {"ward": ward_name},
        settings, now=now, env=env, language=language, ward_name=ward_name,
        subscribe_url=f"{settings.web.base_url.rstrip('/')}/subscribe")
