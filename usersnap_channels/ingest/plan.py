"""Which units an import fetches, and how an import words a source's failure.

A unit is one source's picked project on one UTC day inside the source's backfill window.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

from usersnap_channels.partitions import days_between
from usersnap_channels.usersnap.client import InvalidCredentials, MissingCredentials
from usersnap_channels.warehouse.feedback import Unit, UnitKey
from usersnap_channels.warehouse.registry import Source

#: Days at the end of any range that are always fetched again, even when already imported: today's
#: partition keeps growing, and yesterday's may still receive items around midnight UTC.
REFRESH_DAYS = 2


def authorization_error(source: Source, exc: Exception) -> str:
    """What a sync says when Usersnap refuses a source's key."""
    return (
        f"Authorization failed for {source.label}: Usersnap refused the key in ${source.jwt_id_env} / "
        f"${source.jwt_secret_env}. Generate a new key under Settings → API in Usersnap, export it, and run "
        f"`usersnap-channels update-credentials --channel '{source.channel_name}' --source '{source.source_name}' "
        "--jwt-id-env VAR --jwt-secret-env VAR`."
    )


def source_error(source: Source, exc: Exception, project_id: str | None = None) -> str:
    """What a sync, the sensor or the check says when a source's request fails."""
    if isinstance(exc, InvalidCredentials):
        return authorization_error(source, exc)
    if isinstance(exc, MissingCredentials):
        return f"Cannot sync {source.label}: {exc}"
    return f"{source.label}, project {project_id}: {exc}" if project_id else f"{source.label}: {exc}"


def plan_units(
    sources: Iterable[Source],
    first_day: date,
    last_day: date,
    *,
    today: date,
    already_synced: set[UnitKey] | None = None,
) -> list[Unit]:
    """Units of the connected sources' picked projects for the days in [first_day, last_day] that fall in
    each source's window. With `already_synced`, skip those, except the last REFRESH_DAYS before today."""
    refresh_from = today - timedelta(days=REFRESH_DAYS - 1)
    units: list[Unit] = []
    for source in sources:
        if not source.connected:
            continue
        start = max(first_day, source.window_start)
        end = min(last_day, today)
        if start > end:
            continue
        for day in days_between(start, end):
            for project in source.projects:
                key = UnitKey(source.source_id, project.project_id, day)
                if already_synced is not None and day < refresh_from and key in already_synced:
                    continue
                units.append(
                    Unit(
                        source_id=source.source_id,
                        channel_name=source.channel_name,
                        source_name=source.source_name,
                        project_id=project.project_id,
                        project_name=project.name,
                        day=day,
                    )
                )
    return units
