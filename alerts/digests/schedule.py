"""When digests are due: each ward's cron (APScheduler's CronTrigger), read in the
scheduler's time zone, and the daily trigger derived from it.

Weekly subscribers hear on the ward's cron (by default Fridays at 16:00); daily
subscribers hear every day at the cron's time of day. The triggers are APScheduler's own,
so British Summer Time and crontab syntax are the library's job, not ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from alerts.core.errors import AlertsError
from subscriptions.subscribers import Frequency

if TYPE_CHECKING:  # APScheduler loads once a cron is read, not with DIGEST_FREQUENCIES
    from apscheduler.triggers.cron import CronTrigger

DIGEST_FREQUENCIES = (Frequency.DAILY, Frequency.WEEKLY)


class ScheduleError(AlertsError, ValueError):
    """A cron line cannot be used; the message says why."""

    http_status = 400


@dataclass(frozen=True)
class DigestSchedule:
    ward_code: str
    cron: str
    triggers: dict[Frequency, CronTrigger]


def parse_cron(cron: str, timezone: str) -> CronTrigger:
    from apscheduler.triggers.cron import CronTrigger

    try:
        return CronTrigger.from_crontab(cron, timezone=timezone)
    except ValueError as exc:
        raise ScheduleError(f"{cron!r} is not a crontab line (minute hour day month "
                            f"weekday): {exc}") from None


def daily_cron(cron: str) -> str:
    """The same minute and hour as `cron`, every day: when daily subscribers hear."""
    fields = cron.split()
    if len(fields) != 5:
        raise ScheduleError(f"{cron!r} is not a crontab line (minute hour day month weekday)")
    return f"{fields[0]} {fields[1]} * * *"


def digest_schedule(ward_code: str, ward_cron: str | None, default_cron: str,
                    timezone: str) -> DigestSchedule:
    cron = ward_cron or default_cron
    return DigestSchedule(
        ward_code,
        cron,
        {
            Frequency.WEEKLY: parse_cron(cron, timezone),
            Frequency.DAILY: parse_cron(daily_cron(cron), timezone),
        },
    )


@dataclass(frozen=True)
class FirstDigest:
    """When a newly confirmed resident first hears from a ward, as their welcome says."""

    ward_name: str
    frequency: Frequency
    at: datetime | None  # None: an immediate subscriber, sent each post as it comes


def next_digest_at(ward_cron: str | None, default_cron: str, timezone: str,
                   frequency: Frequency, now: datetime) -> datetime | None:
    """When the ward's next digest at `frequency` is due after `now` (the time its scheduled
    job fires); None for immediate subscribers, who get each post on its own."""
    if frequency not in DIGEST_FREQUENCIES:
        return None
    trigger = digest_schedule("", ward_cron, default_cron, timezone).triggers[frequency]
    fire: datetime | None = trigger.get_next_fire_time(None, now)
    return fire
