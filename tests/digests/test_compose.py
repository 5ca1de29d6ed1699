from datetime import UTC, datetime, timedelta

from alerts.digests.compose import (
    MAX_LISTED_DATES,
    MAX_LISTED_ITEMS,
    MAX_LISTED_SESSIONS,
    DigestItem,
    SessionSeries,
    compose_digest,
    digest_subject,
    group_sessions,
    listing,
    ward_page_url,
)
from alerts.sources.items import ItemKind

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


def test_a_listing_keeps_the_first_of_each_section_and_counts_the_rest() -> None:
    posts = [item(i) for i in range(MAX_LISTED_ITEMS + 7)]
    sessions = group_sessions(
        item(i, ItemKind.SESSION, starts=NOW) for i in range(MAX_LISTED_SESSIONS + 1))

    shown = listing(posts, [item(99, ItemKind.ADVICE)], sessions)

    assert shown.posts == posts[:MAX_LISTED_ITEMS] and shown.more_posts == 7
    assert shown.advice == [item(99, ItemKind.ADVICE)] and shown.more_advice == 0
    assert shown.sessions == sessions[:MAX_LISTED_SESSIONS] and shown.more_sessions == 1


def test_a_listing_lists_a_session_with_its_first_dates() -> None:
    weekly = group_sessions(occurrence(i, weeks=i) for i in range(MAX_LISTED_DATES + 3))

    shown = listing([], [], weekly)

    assert [s.ids for s in shown.sessions] == [tuple(range(MAX_LISTED_DATES))]
    assert shown.more_sessions == 0


def test_the_ward_page_is_the_sites_archive_page_of_the_ward() -> None:
    assert ward_page_url("https://alerts.example.org/", "RIV") == \
        "https://alerts.example.org/wards/RIV/"
    assert ward_page_url("https://alerts.example.org", "A/B C") == \
        "https://alerts.example.org/wards/A%2FB%20C/"


# --- one session held on several dates -----------------------------------------------------

WEEK = timedelta(weeks=1)


def occurrence(id: int, *, weeks: int, title: str = "Drop-in at the library",
               location: str | None = "Mill Lane library") -> DigestItem:
    starts = NOW + timedelta(days=1) + weeks * WEEK
    return DigestItem(id=id, kind=ItemKind.SESSION, title=title, body_html="<p>Come in.</p>",
                      link=None, published_at=None, starts_at=starts,
                      ends_at=starts + timedelta(hours=2), location=location)


def test_occurrences_of_the_same_session_are_one_series_with_their_dates_soonest_first(
) -> None:
    weekly = [occurrence(i, weeks=w) for i, w in ((11, 3), (12, 0), (13, 4), (14, 1), (15, 2))]

    [series] = group_sessions(weekly)

    assert series.ids == (12, 14, 15, 11, 13)
    assert series.session.id == 12
    assert series.dates == tuple((NOW + timedelta(days=1) + w * WEEK,
                                  NOW + timedelta(days=1, hours=2) + w * WEEK)
                                 for w in range(5))


def test_the_same_title_and_place_is_the_same_session_whatever_the_case_and_spacing() -> None:
    series = group_sessions([
        occurrence(1, weeks=0),
        occurrence(2, weeks=1, title="drop-in  at the Library", location=" mill lane library"),
    ])
    assert [s.ids for s in series] == [(1, 2)]


def test_another_title_or_place_is_another_session_in_order_of_its_soonest_date() -> None:
    series = group_sessions([
        occurrence(1, weeks=2),
        occurrence(2, weeks=1, title="Street surgery"),
        occurrence(3, weeks=0, location="Town hall"),
        occurrence(4, weeks=3),
        occurrence(5, weeks=4, location=None),
    ])
    assert [s.ids for s in series] == [(3,), (2,), (1, 4), (5,)]


def test_a_one_off_session_is_a_series_of_one_and_no_sessions_none() -> None:
    one = occurrence(7, weeks=0)
    assert group_sessions([one]) == [SessionSeries((one,))]
    assert group_sessions([]) == []


def test_a_weekly_session_counts_once_in_the_subject() -> None:
    content = compose_digest("RIV", "Riverside", [
        item(1), *(occurrence(10 + w, weeks=w) for w in range(5)),
    ], now=NOW, max_age=MONTH)
    assert content is not None
    assert sorted(content.item_ids) == [1, 10, 11, 12, 13, 14]
    assert [s.ids for s in content.series] == [(10, 11, 12, 13, 14)]
    assert digest_subject(content) == "Riverside neighbourhood news: 1 update and 1 contact session"
