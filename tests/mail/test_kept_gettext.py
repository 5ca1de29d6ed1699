"""`_()` in templates keeps what a message without variables becomes (issue 19: every page
asked for the same messages at every render), and gives exactly what Jinja's own new-style
gettext gives: for every message of the Welsh catalogue and in English, escaped or not, "%%"
made "%", and with variables formatted as before."""

from __future__ import annotations

import pytest
from jinja2 import Environment

from alerts.core.translations import catalogue, translations
from alerts.mail.render import environment
from subscriptions.languages import Language


def jinjas_own(language: Language) -> Environment:
    env = Environment(extensions=["jinja2.ext.i18n"], autoescape=True)
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    return env


@pytest.mark.parametrize("language", [Language.ENGLISH, Language.WELSH])
def test_every_message_reads_as_jinja_would_have_it_rendered(language: Language) -> None:
    ours, theirs = environment(language=language), jinjas_own(language)
    messages = [str(message.id) for message in catalogue(Language.WELSH)
                if message.id and isinstance(message.id, str) and "%(" not in message.id]
    assert len(messages) > 100
    for source in ("{% autoescape true %}{{ _(m) }}{% endautoescape %}",
                   "{% autoescape false %}{{ _(m) }}{% endautoescape %}"):
        mine, jinja = ours.from_string(source), theirs.from_string(source)
        for message in [*messages, "100%% sure", "<b>a & b</b>"]:
            for _ in range(2):  # the kept answer, too
                assert mine.render(m=message) == jinja.render(m=message), message


def test_a_message_with_variables_is_formatted_and_escaped_each_time() -> None:
    ours = environment(language=Language.ENGLISH)
    page = ours.from_string('{% autoescape true %}{{ _("Topics from %(name)s", name=n) }}'
                            "{% endautoescape %}")
    assert page.render(n="Mill <Lane>") == "Topics from Mill &lt;Lane&gt;"
    assert page.render(n="Riverside") == "Topics from Riverside"
