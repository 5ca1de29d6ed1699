"""The preferences page's topic and language choices: per ward, saved as the resident
ticked them, and refused (with nothing changed) when the form is wrong."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from subscriptions.links import Purpose
from subscriptions.subscribers import Subscriber, Subscription
from subscriptions.wards import Ward
from tests.factories import make_subscriber, make_ward, signed
from tests.web.test_residents import client_for, csrf_of


def choices(factory: sessionmaker[Session], email: str) -> tuple[dict[str, str | None],
                                                                 str | None]:
    with factory() as session:
        rows = session.execute(select(Ward.code, Subscription.topics).join(
            Subscription, Subscription.ward_id == Ward.id).join(Subscriber)
            .where(Subscriber.email == email)).all()
        language = session.scalar(select(Subscriber.language).where(Subscriber.email == email))
    return {code: topics for code, topics in rows}, language


def test_a_resident_chooses_topics_per_ward_and_a_language(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    with factory.begin() as session:
        riv, hil = make_ward(session, "RIV", "Riverside"), make_ward(session, "HIL", "Hillcrest")
        ident = make_subscriber(session, riv, "jo@home.example").id
        make_subscriber(session, hil, "jo@home.example")
        token = signed(session, settings.web.secret_key, Purpose.PREFERENCES, ident)
    path = f"/preferences/{token}"
    client = client_for(factory, settings)
    page = client.get(path).text
    assert "Topics from Riverside" in page and "Topics from Hillcrest" in page
    assert 'name="all_topics" value="RIV"' in page
    response = client.post(path, data={
        "csrf_token": csrf_of(page), "frequency": "weekly", "wards": ["RIV", "HIL"],
        "topic_wards": ["RIV", "HIL"], "all_topics": ["HIL"],
        "topics": ["RIV:scams", "RIV:burglary", "HIL:rural"], "language": "cy"})
    assert response.status_code == 200
    assert choices(factory, "jo@home.example") == (
        {"RIV": "burglary,scams", "HIL": None}, "cy")
    page = client.get(path).text
    assert 'value="RIV:scams" checked' in page and 'value="RIV:rural">' in page
    assert 'id="language-cy" name="language" value="cy" checked' in page

    # Back to everything, and to the ward's language.
    client.post(path, data={
        "csrf_token": csrf_of(page), "frequency": "weekly", "wards": ["RIV", "HIL"],
        "topic_wards": ["RIV", "HIL"], "all_topics": ["RIV", "HIL"], "language": ""})
    assert choices(factory, "jo@home.example") == ({"RIV": None, "HIL": None}, None)


def test_unticking_everything_without_a_topic_is_refused_and_changes_nothing(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    with factory.begin() as session:
        ident = make_subscriber(session, make_ward(session, "RIV", "Riverside"),
                                "jo@home.example").id
        token = signed(session, settings.web.secret_key, Purpose.PREFERENCES, ident)
    path = f"/preferences/{token}"
    client = client_for(factory, settings)
    for form in ({"topic_wards": ["RIV"]},
                 {"topic_wards": ["RIV"], "topics": ["RIV:knitting"]},
                 {"topic_wards": ["RIV"], "all_topics": ["RIV"], "language": "fr"}):
        response = client.post(path, data={
            "csrf_token": csrf_of(client.get(path).text), "frequency": "daily",
            "wards": ["RIV"], **form})
        assert response.status_code == 400
        assert 'role="alert"' in response.text
    with factory() as session:
        subscription = session.scalars(select(Subscription)).one()
        assert (subscription.frequency, subscription.topics) == ("weekly", None)
