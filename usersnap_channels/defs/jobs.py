"""Every job of the project, and how a run asks for a range of feedback partitions.

Sensors and schedules take these job objects (not names), so a renamed job cannot leave one dangling.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import dagster as dg

from usersnap_channels import settings
from usersnap_channels.defs.themes.assets import ThemesConfig, data_point_themes, theme_trends, themes
from usersnap_channels.defs.themes.report import theme_report
from usersnap_channels.defs.usersnap.assets import usersnap_feedback, usersnap_projects
from usersnap_channels.defs.usersnap.config import IMPORT_STEP, FeedbackImportConfig
from usersnap_channels.partitions import partition_key

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
#: What started a run: `sensor-backfill`, `sensor-sync`, `schedule-late-arrivals` or `cli-sync`.
TRIGGER_TAG = "usersnap_channels/trigger"

#: Every asset of one feedback import, in one step (see `usersnap_feedback`), followed by the per-partition
#: check `data_points_match_usersnap_count` (an asset selection includes the checks of its assets).
#: The themes that follow an import run in the same run: one step per run for the imported days, plus the
#: channel-wide `themes` and `theme_trends` (cheap unless a recompute is due) and the report pages (~1 s at
#: 50,000 data points), so a plain `sync` leaves every channel's report current without a daemon.
#: With `USERSNAP_CHANNELS_THEMES=off` the import runs alone: the themes steps would only skip, yet each still
#: costs Dagster events and steps (measured: +11-16 s on a 6-month backfill of 184 partitions).
FOLLOW_UPS = (data_point_themes, themes, theme_trends, theme_report) if settings.load().themes else ()
feedback_import_job = dg.define_asset_job(
    "feedback_import_job",
    selection=dg.AssetSelection.assets(usersnap_feedback, *FOLLOW_UPS),
    description="Import the selected days of feedback of every connected source, compare each day with "
    "Usersnap's count, then embed and theme the new data points and update the trends.",
)
#: What `usersnap-channels sync` runs: the projects refresh and the import (and its check) in one run, so a
#: sync pays Dagster's per-run cost once.
usersnap_sync_job = dg.define_asset_job(
    "usersnap_sync_job",
    selection=dg.AssetSelection.assets(usersnap_projects, usersnap_feedback, *FOLLOW_UPS),
    description="Refresh the projects, import the selected days of every connected source and check them, then "
    "theme the new data points.",
)
projects_refresh_job = dg.define_asset_job(
    "projects_refresh_job",
    selection=dg.AssetSelection.assets(usersnap_projects),
    description="Refresh the list of Usersnap projects each connected key can see.",
)

themes_job = dg.define_asset_job(
    "themes_job",
    selection=dg.AssetSelection.assets(themes, theme_trends, theme_report),
    description="Bring every channel's themes up to date (a full recompute with `recompute: true`), rebuild "
    "the trends and write the report pages.",
)

JOBS = [feedback_import_job, usersnap_sync_job, projects_refresh_job, themes_job]


def range_tags(first: date, last: date) -> dict[str, str]:
    """Tags that make one run cover the feedback partitions first..last (a single-run backfill)."""
    return {RANGE_START_TAG: partition_key(first), RANGE_END_TAG: partition_key(last)}


def import_config(
    source_ids: list[str] | None = None, *, loggers: dict[str, Any] | None = None, **knobs: Any
) -> dg.RunConfig:
    """Typed run config of the import step (see `FeedbackImportConfig` for the knobs)."""
    config = FeedbackImportConfig(source_ids=source_ids or [], **knobs)
    return dg.RunConfig(ops={IMPORT_STEP: config}, loggers=loggers)


def themes_run_config(
    *, recompute: bool, reason: str = "manual", channel: str | None = None, loggers: dict[str, Any] | None = None
) -> dg.RunConfig:
    """Typed run config of the `themes` step."""
    return dg.RunConfig(
        ops={"themes": ThemesConfig(recompute=recompute, reason=reason, channel=channel)}, loggers=loggers
    )
