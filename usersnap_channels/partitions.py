"""UTC days: the backfill windows and the daily partitions raw feedback is split into."""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # fetch workers import this module without paying for Dagster
    import dagster as dg

#: The windows a source may ask for, as the CLI spells them.
BACKFILL_WINDOWS: tuple[str, ...] = ("7d", "30d", "90d", "6m")
_WINDOW_DAYS = {"7d": 7, "30d": 30, "90d": 90}

#: First day of the feedback partitions: a fixed date, so the definitions snapshot is the same every day
#: (the daemon and a code server never disagree about which partitions exist). Days before a source's
#: backfill window are not imported (the import plan enforces each window), and a window that starts
#: earlier than this is clipped to it. Widen it here for older data: a few thousand daily partitions are
#: well inside what Dagster handles.
PARTITIONS_START = date(2025, 1, 1)


def utc_today(now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(UTC).date()


def minus_months(day: date, months: int) -> date:
    """The same day `months` calendar months earlier, clamped to the month's end (31 Aug - 6m = 28/29 Feb)."""
    month_index = day.year * 12 + day.month - 1 - months
    year, month = divmod(month_index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def window_start(window: str, today: date) -> date:
    """First UTC day of a backfill window: today minus 7/30/90 days, or minus 6 calendar months."""
    if window == "6m":
        return minus_months(today, 6)
    if window in _WINDOW_DAYS:
        return today - timedelta(days=_WINDOW_DAYS[window])
    raise ValueError(f"unknown backfill window {window!r}; use one of {', '.join(BACKFILL_WINDOWS)}")


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[00:00:00, next 00:00:00) of a UTC day, as aware datetimes."""
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


def days_between(first: date, last: date) -> Iterator[date]:
    """Every day from first to last, both included."""
    for offset in range((last - first).days + 1):
        yield first + timedelta(days=offset)


def feedback_daily_partition() -> dg.DailyPartitionsDefinition:
    """One partition per UTC day from PARTITIONS_START up to and including today (`end_offset=1` makes
    today's still-growing day a partition)."""
    import dagster as dg

    return dg.DailyPartitionsDefinition(
        start_date=PARTITIONS_START.isoformat(), end_offset=1, timezone="UTC", fmt="%Y-%m-%d"
    )


def partition_key(day: date) -> str:
    return day.isoformat()


def parse_partition_key(key: str) -> date:
    return date.fromisoformat(key)
