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

#: Extra days kept in the partitions definition before the widest window, so a source connected a while
#: ago whose first days have not synced yet still has those partitions.
PARTITIONS_MARGIN_DAYS = 31


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


def partitions_start(today: date) -> date:
    return minus_months(today, 6) - timedelta(days=PARTITIONS_MARGIN_DAYS)


def feedback_daily_partition(today: date | None = None) -> dg.DailyPartitionsDefinition:
    """One partition per UTC day, from before the widest backfill window up to and including today.

    The start moves with the calendar (computed when definitions load): older partitions leave the UI,
    their rows stay in DuckDB. `end_offset=1` makes today's (still growing) day a partition.
    """
    import dagster as dg

    start = partitions_start(today or utc_today())
    return dg.DailyPartitionsDefinition(start_date=start.isoformat(), end_offset=1, timezone="UTC", fmt="%Y-%m-%d")


def partition_key(day: date) -> str:
    return day.isoformat()


def parse_partition_key(key: str) -> date:
    return date.fromisoformat(key)
