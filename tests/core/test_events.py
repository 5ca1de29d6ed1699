import logging

import pytest

from alerts.core.events import DigestDue, EventBus, ItemPublished
from subscriptions.base import utcnow


def test_each_handler_of_an_event_type_runs_in_subscription_order() -> None:
    bus = EventBus()
    seen: list[str] = []
    bus.subscribe(ItemPublished, lambda e: seen.append(f"first {e.ward_code}"))
    bus.subscribe(ItemPublished, lambda e: seen.append(f"second {e.item_ids}"))
    bus.subscribe(DigestDue, lambda e: seen.append("digest"))
    assert bus.publish(ItemPublished("RIV", (1, 2))) == 0
    assert seen == ["first RIV", "second (1, 2)"]


def test_a_failing_handler_is_logged_and_does_not_stop_the_others(
        caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    seen: list[str] = []

    def broken(event: DigestDue) -> None:
        raise RuntimeError("boom")

    bus.subscribe(DigestDue, broken)
    bus.subscribe(DigestDue, lambda e: seen.append(e.ward_code))
    with caplog.at_level(logging.ERROR):
        assert bus.publish(DigestDue("HIL", ("weekly",), utcnow())) == 1
    assert seen == ["HIL"]
    assert "DigestDue" in caplog.text


def test_an_event_nobody_listens_to_is_harmless() -> None:
    assert EventBus().publish(ItemPublished("RIV", ())) == 0
