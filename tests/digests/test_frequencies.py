"""Frequencies over weeks of simulated time: the scheduler's own triggers give the instants,
the test plays them in order, and every resident must get every item exactly once."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.delivery.outbox import Delivery
from alerts.digests.schedule import digest_schedule
from alerts.mail.messages import Message, MessageItem
from alerts.sources.items import CollectedItem, ItemKind, store_items
from alerts.sources.registry import officer_source
from alerts.usecases.digest_rounds import queue_digests, queue_immediate
from subscriptions.subscribers import Frequency, Subscriber, Subscription
from subscriptions.wards import Ward, get_ward
from tests.factories import make_subscriber, make_ward

LONDON = ZoneInfo("Europe/London")


def post(factory: sessionmaker[Session], settings: Settings, ward_code: str, title: str,
         at: datetime) -> int:
    """An officer's post at simulated time `at`, and the immediate step it triggers."""
    with factory.begin() as session:
        ward = get_ward(session, ward_code)
        stored = store_items(session, officer_source(session, ward), [CollectedItem(
            guid=f"post:{title}", kind=ItemKind.POST, title=title, body_html="<p>x</p>",
            published_at=at)])
        queue_immediate(session, ward, settings, at)
    return stored.new_item_ids[0]


def received(factory: sessionmaker[Session]) -> dict[str, Counter[int]]:
    """Per resident, how many times each item was queued for them."""
    with factory() as session:
        rows = session.execute(
            select(Subscriber.email, MessageItem.item_id)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .join(MessageItem, MessageItem.message_id == Delivery.message_id)
        ).all()
    counts: dict[str, Counter[int]] = defaultdict(Counter)
    for email, item_id in rows:
        counts[email][item_id] += 1
    return counts


def message_times(factory: sessionmaker[Session], email: str) -> list[datetime]:
    with factory() as session:
        return list(session.scalars(
            select(Message.created_at)
            .join(Delivery, Delivery.message_id == Message.id)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Subscriber.email == email).order_by(Message.created_at)))


def fire_times(settings: Settings, ward: Ward, frequency: Frequency, start: datetime,
               end: datetime) -> list[datetime]:
    trigger = digest_schedule(ward.code, ward.digest_cron, settings.scheduler.digest_cron,
                              settings.scheduler.timezone).triggers[frequency]
    times: list[datetime] = []
    previous = None
    moment = start
    while True:
        fire = trigger.get_next_fire_time(previous, moment)
        if fire is None or fire > end:
            return times
        times.append(fire.astimezone(UTC))
        previous, moment = fire, fire


def test_every_item_reaches_every_resident_once_at_the_pace_they_chose(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    start = datetime.now(UTC).replace(microsecond=0)
    end = start + timedelta(days=15)
    with factory.begin() as session:
        ward = make_ward(session, "RIV", "Riverside")
        for email, frequency in [("daily@home.example", Frequency.DAILY),
                                 ("weekly@home.example", Frequency.WEEKLY),
                                 ("now@home.example", Frequency.IMMEDIATE),
                                 ("switcher@home.example", Frequency.WEEKLY)]:
            make_subscriber(session, ward, email, frequency=frequency,
                            at=start - timedelta(days=1))
        session.expunge(ward)

    timeline: list[tuple[datetime, str, Frequency | None]] = []
    timeline += [(t, "digest", Frequency.DAILY)
                 for t in fire_times(settings, ward, Frequency.DAILY, start, end)]
    timeline += [(t, "digest", Frequency.WEEKLY)
                 for t in fire_times(settings, ward, Frequency.WEEKLY, start, end)]
    timeline += [(start + timedelta(hours=7 + 13 * n), f"post {n}", None) for n in range(25)]
    timeline.append((start + timedelta(days=4, hours=3), "switch", None))
    posted: list[int] = []
    for moment, action, frequency in sorted(timeline, key=lambda entry: entry[0]):
        if action == "digest":
            assert frequency is not None
            queue_digests(factory, settings, frequencies=(frequency,), now=moment)
        elif action == "switch":
            with factory.begin() as session:
                switcher = session.scalar(select(Subscription).join(Subscriber).where(
                    Subscriber.email == "switcher@home.example"))
                assert switcher is not None
                switcher.frequency = Frequency.DAILY
        else:
            posted.append(post(factory, settings, "RIV", action, moment))
    last_post = start + timedelta(hours=7 + 13 * 24)
    # A last round after every post so the slowest frequency has caught up.
    queue_digests(factory, settings, now=end + timedelta(days=7))

    counts = received(factory)
    for email in ("daily@home.example", "weekly@home.example", "now@home.example",
                  "switcher@home.example"):
        assert sorted(counts[email]) == sorted(posted), email
        assert set(counts[email].values()) == {1}, f"{email} got an item twice"

    daily = message_times(factory, "daily@home.example")
    weekly = message_times(factory, "weekly@home.example")
    immediate = message_times(factory, "now@home.example")
    assert len(immediate) == len(posted), "each post on its own"
    assert all(t.astimezone(LONDON).strftime("%a %H:%M") == "Fri 16:00" for t in weekly[:-1])
    assert all(t.astimezone(LONDON).strftime("%H:%M") == "16:00" for t in daily[:-1])
    assert len(daily) > len(weekly) >= 2
    assert last_post < end


def test_a_resident_who_joins_later_hears_only_what_comes_after(
    factory: sessionmaker[Session], settings: Settings
) -> None:
    now = datetime.now(UTC)
    with factory.begin() as session:
        ward = make_ward(session)
        code = ward.code
        make_subscriber(session, ward, "early@home.example", at=now - timedelta(days=2))
    first = post(factory, settings, code, "before", now)
    with factory.begin() as session:
        make_subscriber(session, get_ward(session, code), "late@home.example",
                        at=datetime.now(UTC))
    second = post(factory, settings, code, "after", now)
    queue_digests(factory, settings, now=now)
    counts = received(factory)
    assert sorted(counts["early@home.example"]) == [first, second]
    assert sorted(counts["late@home.example"]) == [second]


def test_daily_digests_keep_local_time_across_the_clock_change(settings: Settings) -> None:
    schedule = digest_schedule("RIV", None, "0 16 * * fri", "Europe/London")
    before = datetime(2027, 3, 26, 12, 0, tzinfo=UTC)  # a Friday in GMT
    weekly = schedule.triggers[Frequency.WEEKLY]
    first = weekly.get_next_fire_time(None, before)
    second = weekly.get_next_fire_time(first, first + timedelta(seconds=1))
    assert first is not None and second is not None
    assert first.astimezone(UTC).hour == 16, "16:00 GMT is 16:00 UTC"
    assert second.astimezone(UTC).hour == 15, "16:00 BST is 15:00 UTC"
    daily = schedule.triggers[Frequency.DAILY]
    saturday = daily.get_next_fire_time(first, first + timedelta(seconds=1))
    assert saturday is not None and saturday.astimezone(LONDON).strftime("%a %H:%M") == \
        "Sat 16:00"
