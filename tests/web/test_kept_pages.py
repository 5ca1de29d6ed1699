"""Pages kept once rendered (issue 19): a page that differs between requests only in a
value of the request's own (a link's token, a form's CSRF token) is rendered once and
filled in; anything else it shows changing renders it again."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jinja2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.web.app import create_app
from alerts.web.kept_pages import Filled
from subscriptions.links import Purpose
from subscriptions.subscribers import Frequency
from tests.factories import make_subscriber, make_ward, signed
from tests.web.test_link_pages_cost import vote_links
from tests.web.test_residents import csrf_of, subscriptions_of


def page_of(values: Mapping[str, str], made: list[Mapping[str, str]]) -> str:
    made.append(dict(values))
    return f'<a href="/useful/{values["token"]}">yes</a> <b>{values["token"]}</b>'


def test_a_kept_page_is_rendered_once_and_filled_with_each_requests_own_value() -> None:
    made: list[Mapping[str, str]] = []
    kept = Filled()

    first = kept.page("post 1", lambda v: page_of(v, made), {"token": "abc.DEF-1_2"})
    second = kept.page("post 1", lambda v: page_of(v, made), {"token": "xyz.789"})

    assert first == '<a href="/useful/abc.DEF-1_2">yes</a> <b>abc.DEF-1_2</b>'
    assert second == '<a href="/useful/xyz.789">yes</a> <b>xyz.789</b>'
    assert len(made) == 1 and made[0]["token"] not in ("abc.DEF-1_2", "xyz.789")


def test_a_value_that_escaping_would_change_is_rendered_afresh_not_filled_in() -> None:
    made: list[Mapping[str, str]] = []
    kept = Filled()
    kept.page("post 1", lambda v: page_of(v, made), {"token": "plain"})

    odd = kept.page("post 1", lambda v: page_of(v, made), {"token": '"><script>'})

    assert made[-1] == {"token": '"><script>'}  # rendered with the value itself
    assert odd == page_of({"token": '"><script>'}, [])


def test_another_key_renders_again() -> None:
    made: list[Mapping[str, str]] = []
    kept = Filled()
    kept.page("post 1", lambda v: page_of(v, made), {"token": "a"})
    kept.page("post 2", lambda v: page_of(v, made), {"token": "a"})
    assert len(made) == 2


@pytest.fixture
def rendered(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    names: list[str | None] = []
    original = jinja2.Template.render

    def counting(template: jinja2.Template, *args: Any, **kwargs: Any) -> str:
        names.append(template.name)
        return original(template, *args, **kwargs)

    monkeypatch.setattr(jinja2.Template, "render", counting)
    return names


def test_the_subscribe_form_is_rendered_once_and_each_visitor_gets_a_token_of_their_own(
        factory: sessionmaker[Session], settings: Settings,
        rendered: list[str | None]) -> None:
    with factory.begin() as session:
        make_ward(session, "RIV", "Riverside")
    app = create_app(factory, settings=settings)
    visitors = [TestClient(app), TestClient(app)]  # each with a cookie jar of their own

    pages = [visitor.get("/subscribe").text for visitor in visitors]

    assert rendered.count("web/subscribe.html") == 1
    tokens = [csrf_of(page) for page in pages]
    assert tokens[0] != tokens[1]
    for n, (visitor, token) in enumerate(zip(visitors, tokens, strict=True)):
        done = visitor.post("/subscribe", data={
            "email": f"visitor{n}@home.example", "wards": ["RIV"], "frequency": "weekly",
            "csrf_token": token})
        assert done.status_code == 200, done.text
        assert len(subscriptions_of(factory, f"visitor{n}@home.example")) == 1


def test_a_ward_added_shows_on_the_subscribe_form_at_once(
        factory: sessionmaker[Session], settings: Settings) -> None:
    with factory.begin() as session:
        make_ward(session, "RIV", "Riverside")
    client = TestClient(create_app(factory, settings=settings))
    assert "Hillcrest" not in client.get("/subscribe").text
    with factory.begin() as session:
        make_ward(session, "HIL", "Hillcrest")
    assert "Hillcrest" in client.get("/subscribe").text


def test_residents_with_the_same_choices_share_a_rendering_of_the_preferences_page(
        factory: sessionmaker[Session], settings: Settings,
        rendered: list[str | None]) -> None:
    secret = settings.web.secret_key
    with factory.begin() as session:
        riv = make_ward(session, "RIV", "Riverside")
        make_ward(session, "HIL", "Hillcrest")
        alike = [make_subscriber(session, riv, f"alike{n}@home.example") for n in range(3)]
        other = make_subscriber(session, riv, "other@home.example",
                                frequency=Frequency.DAILY)
        links = [signed(session, secret, Purpose.PREFERENCES, s.id) for s in (*alike, other)]
    client = TestClient(create_app(factory, settings=settings))

    pages = [client.get(f"/preferences/{link}").text for link in links]

    assert rendered.count("web/preferences.html") == 2  # the three alike, then the other
    for link, page in zip(links, pages, strict=True):
        assert f'action="/preferences/{link}"' in page
        assert f'href="/preferences/{link}?lang=cy"' in page  # the switch link: its own too
        assert sum(token in page for token in links) == 1
    assert 'value="daily" aria-describedby="frequency-daily-hint" checked' in pages[3]
    assert 'value="weekly" aria-describedby="frequency-weekly-hint" checked' in pages[0]
    saved = client.post(f"/preferences/{links[0]}", data={
        "wards": ["RIV", "HIL"], "frequency": "weekly", "csrf_token": csrf_of(pages[0])})
    assert saved.status_code == 200 and 'id="ward-HIL" name="wards" value="HIL"' in saved.text
    again = client.get(f"/preferences/{links[0]}").text
    assert 'value="HIL" aria-describedby="wards-hint" checked' in again
    assert 'value="HIL" aria-describedby="wards-hint" checked' not in client.get(
        f"/preferences/{links[1]}").text


def test_residents_leaving_the_same_ward_share_a_rendering_of_the_unsubscribe_page(
        factory: sessionmaker[Session], settings: Settings,
        rendered: list[str | None]) -> None:
    secret = settings.web.secret_key
    with factory.begin() as session:
        riv, hil = make_ward(session, "RIV", "Riverside"), make_ward(session, "HIL", "Hillcrest")
        alike = [make_subscriber(session, riv, f"alike{n}@home.example") for n in range(3)]
        both = make_subscriber(session, riv, "both@home.example")
        make_subscriber(session, hil, "both@home.example")
        links = [signed(session, secret, Purpose.UNSUBSCRIBE, s.id) for s in (*alike, both)]
    client = TestClient(create_app(factory, settings=settings))

    pages = [client.get(f"/unsubscribe/{link}").text for link in links]

    assert rendered.count("web/unsubscribe.html") == 2  # the three alike, then the other
    for link, page in zip(links, pages, strict=True):
        assert f'action="/unsubscribe/{link}"' in page
        assert page.count(link) == 2  # the form and the switch link
        assert sum(token in page for token in links) == 1
    assert "Hillcrest" in pages[3] and "Hillcrest" not in pages[0]
    left = client.post(f"/unsubscribe/{links[1]}", data={"csrf_token": csrf_of(pages[1])})
    assert left.status_code == 200 and "Riverside" in left.text


def test_every_residents_vote_link_to_a_post_renders_its_page_once_with_its_own_token(
        factory: sessionmaker[Session], settings: Settings,
        rendered: list[str | None]) -> None:
    """A mail filter opens the same post's vote link for every resident: the page differs
    only in the link's token, so it is rendered once per answer and filled in."""
    with factory.begin() as session:
        make_ward(session, "RIV", "Riverside")
    tokens = vote_links(factory, settings, answers=[n % 2 == 0 for n in range(6)])
    client = TestClient(create_app(factory, settings=settings))
    pages = [client.get(f"/useful/{token}").text for token in tokens]

    assert rendered.count("web/useful_question.html") == 2  # one a post and answer
    for n, (token, page) in enumerate(zip(tokens, pages, strict=True)):
        assert f'action="/useful/{token}"' in page
        assert sum(other in page for other in tokens) == 1  # no other resident's token
        assert f'value="{"yes" if n % 2 == 0 else "no"}" checked' in page
    assert pages[0].replace(tokens[0], "") == pages[2].replace(tokens[2], "")
