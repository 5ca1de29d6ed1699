"""The welcome email, as rendered (text and HTML, English, Welsh and bilingual): each ward
with when its first digest comes (or, for immediate subscribers, that each post comes as it
is published), the preferences and unsubscribe links, how replies reach the team, and the
how-to-report block every resident's email has. In Chromium (axe-core at 400 and 1280 px,
no sideways scroll at 400 px) it is checked with every email, in test_emails_in_a_browser."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from alerts.core.config import Settings
from alerts.digests.schedule import FirstDigest, next_digest_at
from alerts.mail.marks import PREFERENCES_MARK, UNSUBSCRIBE_MARK
from alerts.mail.render import Rendered, around, render_welcome
from subscriptions.languages import Language
from subscriptions.subscribers import Frequency

NOW = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)  # a Monday afternoon
LONDON = ZoneInfo("Europe/London")


def welcome(language: Language = Language.ENGLISH,
            frequency: Frequency = Frequency.WEEKLY) -> Rendered:
    settings = Settings()
    first = next_digest_at("0 8 * * mon", settings.scheduler.digest_cron,
                           settings.scheduler.timezone, frequency, NOW)
    return render_welcome([FirstDigest("Riverside", frequency, first),
                           FirstDigest("Old Town", Frequency.IMMEDIATE, None)],
                          settings, now=NOW, language=language)


def words(body: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", body).split()).replace(" :", ":")


def test_the_next_digest_is_the_wards_own_cron_in_the_scheduler_time_zone() -> None:
    assert next_digest_at("0 8 * * mon", "0 16 * * fri", "Europe/London", Frequency.WEEKLY,
                          NOW) == datetime(2026, 12, 14, 8, 0, tzinfo=LONDON)
    assert next_digest_at(None, "0 16 * * fri", "Europe/London", Frequency.DAILY,
                          NOW) == datetime(2026, 12, 7, 16, 0, tzinfo=LONDON)
    assert next_digest_at(None, "0 16 * * fri", "Europe/London", Frequency.IMMEDIATE,
                          NOW) is None


def test_a_digest_time_is_said_as_a_person_would() -> None:
    assert around(datetime(2026, 12, 14, 8, 0, tzinfo=UTC), LONDON) == \
        "Monday 14 December, around 8am"
    # British Summer Time: 15:30 UTC is 4:30pm in London.
    assert around(datetime(2026, 6, 5, 15, 30, tzinfo=UTC), LONDON) == \
        "Friday 5 June, around 4:30pm"
    assert around(datetime(2026, 12, 14, 8, 0, tzinfo=UTC), LONDON, Language.WELSH) == \
        "Dydd Llun 14 Rhagfyr, tua 08:00"


@pytest.mark.parametrize("part", ["text", "html"])
def test_the_welcome_says_when_each_ward_is_heard_from_and_how_to_reach_the_team(
        part: str) -> None:
    rendered = welcome()
    body = getattr(rendered, part)
    said = words(body)
    assert rendered.subject == "Welcome to neighbourhood alerts for Riverside"
    assert "Riverside: your first digest comes Monday 14 December, around 8am, then one a " \
        "week at that time." in said
    assert "Old Town: an email for each new post, as soon as your team publishes it." in said
    assert "A digest goes only when your team has news" in said
    assert "goes to the Riverside neighbourhood team" in said
    # The resident's own links, filled at send time; the report block every email has.
    assert PREFERENCES_MARK in body and UNSUBSCRIBE_MARK in body
    assert "call 999" in said and "call 101" in said and "Crimestoppers" in said


def test_a_daily_subscriber_hears_every_day_at_the_crons_time() -> None:
    said = words(welcome(frequency=Frequency.DAILY).text)
    assert "Riverside: your first digest comes Tuesday 8 December, around 8am, then one a " \
        "day at that time." in said


def test_in_welsh_and_bilingual_the_welcome_says_the_same() -> None:
    welsh = welcome(Language.WELSH)
    assert welsh.subject == "Croeso i rybuddion cymdogaeth Riverside"
    said = words(welsh.text)
    assert "Riverside: daw eich crynodeb cyntaf Dydd Llun 14 Rhagfyr, tua 08:00, yna un bob " \
        "wythnos" in said
    assert "999" in said and "Crimestoppers" in said
    both = welcome(Language.BILINGUAL)
    assert both.subject == ("Croeso i rybuddion cymdogaeth Riverside / "
                            "Welcome to neighbourhood alerts for Riverside")
    said = words(both.html)
    assert said.index("Dydd Llun 14 Rhagfyr, tua 08:00") < said.index(
        "Monday 14 December, around 8am")
