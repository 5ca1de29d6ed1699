"""An officer tags a post with topics on the web form: shown for posts and advice only,
carried through the preview, checked against the deployer's list."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.sources.items import Item
from tests.web.test_officers import (  # noqa: F401 (fixtures)
    UPDATE,
    client,
    officer,
    post,
    world,
)


def test_the_post_form_offers_the_configured_topics_for_posts_and_advice_only(
        officer: TestClient) -> None:  # noqa: F811
    assert 'name="topics" value="scams"' in officer.get("/staff/wards/RIV/post").text
    assert 'name="topics" value="scams"' in officer.get(
        "/staff/wards/RIV/post?kind=advice").text
    for kind in ("session", "alert"):
        assert 'name="topics"' not in officer.get(f"/staff/wards/RIV/post?kind={kind}").text


def test_topics_ticked_on_the_form_survive_the_preview_and_are_stored(
        factory: sessionmaker[Session], officer: TestClient) -> None:  # noqa: F811
    preview = post(officer, "/staff/wards/RIV/post",
                   {**UPDATE, "action": "preview", "topics": ["scams", "burglary"]},
                   form_page="/staff/wards/RIV/post")
    assert preview.status_code == 200
    assert 'name="topics" value="burglary,scams"' in preview.text
    done = post(officer, "/staff/wards/RIV/post",
                {**UPDATE, "topics": "burglary,scams"}, form_page="/staff/wards/RIV/post")
    assert done.url.path == "/staff/wards/RIV/"
    with factory() as session:
        assert session.scalars(select(Item.topics)).one() == "burglary,scams"


def test_a_topic_not_in_the_list_is_refused_and_nothing_is_stored(
        factory: sessionmaker[Session], officer: TestClient) -> None:  # noqa: F811
    refused = post(officer, "/staff/wards/RIV/post", {**UPDATE, "topics": ["knitting"]},
                   form_page="/staff/wards/RIV/post")
    assert refused.status_code == 400
    assert "not one of" in refused.text
    with factory() as session:
        assert session.scalars(select(Item)).first() is None
