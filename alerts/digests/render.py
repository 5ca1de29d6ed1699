"""Rendering: one template context → the HTML part (CSS inlined) and the text part.

Messages are rendered once per ward. Each resident's own signed links are left as markers
(`alerts.messages.UNSUBSCRIBE_MARK`, `PREFERENCES_MARK`) that delivery swaps in.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import css_inline
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from alerts.config import Settings
from alerts.digests.compose import DigestContent, DigestItem, digest_subject
from alerts.digests.invites import sessions_calendar
from alerts.items import ItemKind
from alerts.messages import MAX_SUBJECT, PREFERENCES_MARK, UNSUBSCRIBE_MARK
from alerts.sources.sanitise import html_to_text, sanitise_html, shorten
from subscriptions.languages import Language

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str
    calendar: bytes | None


def fit_subject(subject: str) -> str:
    """A subject cut to what a message stores: a ward name and a long title can outgrow it
    (PostgreSQL refuses the longer value; SQLite would keep it)."""
    return shorten(subject, MAX_SUBJECT)


@functools.cache
def environment(templates: Path = TEMPLATES) -> Environment:
    """One environment a process, so each template is compiled once, not at every render."""
    env = Environment(
        loader=FileSystemLoader(templates),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["safe_html"] = lambda html: Markup(sanitise_html(html))
    env.filters["as_text"] = html_to_text
    return env


def when(item: DigestItem, zone: ZoneInfo) -> str:
    """'Saturday 5 December 2026, 10:00 to 11:30' in the ward's time zone."""
    if item.starts_at is None:
        return ""
    start = item.starts_at.astimezone(zone)
    text = f"{start:%A} {start.day} {start:%B %Y}, {start:%H:%M}"
    if item.ends_at is not None:
        end = item.ends_at.astimezone(zone)
        if end.date() == start.date():
            text += f" to {end:%H:%M}"
        else:
            text += f" to {end:%A} {end.day} {end:%B}, {end:%H:%M}"
    return text


@dataclass(frozen=True)
class SessionSeries:
    """Sessions that differ only in time (a weekly surgery), shown once with every date."""

    session: DigestItem
    times: list[str]


def group_sessions(sessions: list[DigestItem], zone: ZoneInfo) -> list[SessionSeries]:
    """Group by title, place and details, keeping the order of each group's first date."""
    series: dict[tuple[str, str | None, str, str | None], SessionSeries] = {}
    for session in sessions:
        key = (session.title, session.location, session.body_html, session.link)
        if key not in series:
            series[key] = SessionSeries(session, [])
        series[key].times.append(when(session, zone))
    return list(series.values())


def footer_context(settings: Settings) -> dict[str, Any]:
    """What every message says about reporting crime, and the resident's own links."""
    return {
        "force": settings.force,
        "unsubscribe_url": UNSUBSCRIBE_MARK,
        "preferences_url": PREFERENCES_MARK,
    }


def render_pair(env: Environment, name: str, context: dict[str, Any]) -> tuple[str, str]:
    html = env.get_template(f"email/{name}.html").render(context)
    text = env.get_template(f"email/{name}.txt").render(context)
    return css_inline.inline(html), text


def render_digest(
    content: DigestContent, settings: Settings, *, now: datetime, env: Environment | None = None,
    language: Language = Language.ENGLISH,
) -> Rendered:
    zone = ZoneInfo(settings.scheduler.timezone)
    subject = fit_subject(digest_subject(content))
    context = {
        **footer_context(settings),
        "subject": subject,
        "ward_name": content.ward_name,
        "ward_code": content.ward_code,
        "posts": content.posts,
        "advice": content.advice,
        "sessions": group_sessions(content.sessions, zone),
        "date": _local_date(now, zone),
    }
    html, text = render_pair(env or environment(), "digest", context)
    domain = settings.mail.from_address.rpartition("@")[2] or "localhost"
    calendar = sessions_calendar(
        content.sessions, ward_name=content.ward_name, uid_domain=domain, now=now
    )
    return Rendered(subject, html, text, calendar)


def _local_date(now: datetime, zone: ZoneInfo) -> str:
    local = now.astimezone(zone)
    return f"{local:%A} {local.day} {local:%B %Y}"


def render_post(
    ward_name: str, item: DigestItem, settings: Settings, *, now: datetime,
    env: Environment | None = None, language: Language = Language.ENGLISH,
) -> Rendered:
    """One item on its own, for residents who chose to hear of each post at once."""
    zone = ZoneInfo(settings.scheduler.timezone)
    subject = fit_subject(f"{ward_name}: {item.title}")
    context = {
        **footer_context(settings),
        "subject": subject,
        "ward_name": ward_name,
        "item": item,
        "when": when(item, zone),
        "date": _local_date(now, zone),
    }
    html, text = render_pair(env or environment(), "post", context)
    calendar = None
    if item.kind == ItemKind.SESSION:
        domain = settings.mail.from_address.rpartition("@")[2] or "localhost"
        calendar = sessions_calendar([item], ward_name=ward_name, uid_domain=domain, now=now)
    return Rendered(subject, html, text, calendar)


def render_alert(
    ward_name: str, title: str, body_html: str, settings: Settings, *, now: datetime,
    env: Environment | None = None, language: Language = Language.ENGLISH,
) -> Rendered:
    """An urgent alert: short, plain, and still saying how to report a crime."""
    zone = ZoneInfo(settings.scheduler.timezone)
    local = now.astimezone(zone)
    subject = fit_subject(f"Urgent police alert for {ward_name}: {title}")
    context = {
        **footer_context(settings),
        "subject": subject,
        "ward_name": ward_name,
        "title": title,
        "body_html": body_html,
        "sent_at": f"{_local_date(now, zone)}, {local:%H:%M}",
        "date": _local_date(now, zone),
    }
    html, text = render_pair(env or environment(), "alert", context)
    return Rendered(subject, html, text, None)


# Why a confirmation email came, by how the address reached the list.
SIGNED_UP = "the address was entered on our subscription page"
ADDED_FOR_YOU = ("your Neighbourhood Watch coordinator or neighbourhood team added the address "
                 "to our list, saying you asked to join")


def render_email(name: str, subject: str, settings: Settings, *, now: datetime,
                 env: Environment | None = None, **context: Any) -> Rendered:
    """A message written for one resident or one group, from templates/email/NAME.*: the
    subject (cut to fit), the date, the how-to-report footer and the resident's link marks
    are in its context with `context`."""
    subject = fit_subject(subject)
    html, text = render_pair(env or environment(), name, {
        **footer_context(settings),
        "subject": subject,
        "date": _local_date(now, ZoneInfo(settings.scheduler.timezone)),
        **context,
    })
    return Rendered(subject, html, text, None)


def render_confirmation(
    ward_names: list[str], confirm_url: str, valid_hours: int, settings: Settings, *,
    now: datetime, why: str = SIGNED_UP, env: Environment | None = None,
) -> Rendered:
    """The double opt-in email: one link that confirms the wards asked for."""
    return render_email("confirm", "Please confirm your neighbourhood alerts", settings,
                        now=now, env=env, ward_names=ward_names, confirm_url=confirm_url,
                        valid_hours=valid_hours, why=why)


def render_data_request(
    data_url: str, valid_hours: int, settings: Settings, *, now: datetime,
    env: Environment | None = None,
) -> Rendered:
    """The "my data" email: one link to a page that downloads or erases the resident's data."""
    return render_email("my-data", "Your neighbourhood alerts data", settings, now=now, env=env,
                        data_url=data_url, valid_hours=valid_hours)


def render_reply_ack(ward_name: str, answered: str, settings: Settings, *, emergency: bool,
                     now: datetime, env: Environment | None = None) -> Rendered:
    """The acknowledgement of a resident's reply; `emergency` puts the call-999 answer first."""
    subject = ("Not the way to report a crime: call 999 in an emergency" if emergency
               else f"We have passed your reply to the {ward_name} team")
    return render_email("reply-ack", subject, settings, now=now, env=env, ward_name=ward_name,
                        answered=answered, emergency=emergency)


def render_left(ward_name: str, settings: Settings, *, now: datetime,
                env: Environment | None = None) -> Rendered:
    """The one note that confirms an unsubscribe asked for by email."""
    return render_email("left", f"You have left {ward_name} neighbourhood alerts", settings,
                        now=now, env=env, ward_name=ward_name,
                        subscribe_url=f"{settings.web.base_url.rstrip('/')}/subscribe")
