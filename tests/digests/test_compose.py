from datetime import UTC, datetime, timedelta

from alerts.digests.compose import DigestItem, compose_digest, digest_subject
from alerts.items import ItemKind

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
MONTH = timedelta(days=30)


def item(id: int, kind: ItemKind = ItemKind.POST, *, published: datetime | None = NOW,
         starts: datetime | None = None, link: str | None = None) -> DigestItem:
    return DigestItem(id=id, kind=kind, title=f"item {id}", body_html="<p>text</p>", link=link,
                      published_at=published, starts_at=starts,
                      ends_at=starts + timedelta(hours=1) if starts else None, location=None)


def test_a_ward_with_nothing_new_gets_no_digest() -> None:
    assert compose_digest("RIV", "Riverside", [], now=NOW, max_age=MONTH) is None


def test_posts_newest_first_advice_apart_and_sessions_soonest_first() -> None:
    content = compose_digest("RIV", "Riverside", [
        item(1, published=NOW - timedelta(days=3)),
        item(2, published=NOW - timedelta(days=1)),
        item(3, ItemKind.ADVICE),
        item(4, ItemKind.SESSION, published=None, starts=NOW + timedelta(days=9)),
        item(5, ItemKind.SESSION, published=None, starts=NOW + timedelta(days=2)),
    ], now=NOW, max_age=MONTH)
    assert content is not None
    assert [i.id for i in content.posts] == [2, 1]
    assert [i.id for i in content.advice] == [3]
    assert [i.id for i in content.sessions] == [5, 4]
    assert sorted(content.item_ids) == [1, 2, 3, 4, 5]


def test_sessions_that_have_started_and_archive_posts_are_left_out() -> None:
    content = compose_digest("RIV", "Riverside", [
        item(1, ItemKind.SESSION, starts=NOW - timedelta(hours=1)),
        item(2, published=NOW - timedelta(days=400)),
        item(3, published=None),
    ], now=NOW, max_age=MONTH)
    assert content is not None
    assert content.item_ids == [3]


def test_only_web_links_reach_a_resident() -> None:
    content = compose_digest("RIV", "Riverside", [
        item(1, link="javascript:alert(1)"), item(2, link="https://police.example/a"),
    ], now=NOW, max_age=MONTH)
    assert content is not None
    assert {i.id: i.link for i in content.posts} == {1: None, 2: "https://police.example/a"}


def test_subject_counts_updates_and_sessions() -> None:
    content = compose_digest("RIV", "Riverside", [
        item(1), item(2, ItemKind.SESSION, starts=NOW + timedelta(days=1)),
    ], now=NOW, max_age=MONTH)
    assert content is not None
    assert digest_subject(content) == "Riverside neighbourhood news: 1 update and 1 contact session"
