"""Every job of the project, and how a run asks for a range of feedback partitions.

Sensors and schedules take these job objects (not names), so a renamed job cannot leave one dangling.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import dagster as dg

from usersnap_channels.defs.usersnap.assets import usersnap_feedback, usersnap_projects
from usersnap_channels.defs.usersnap.config import IMPORT_STEP, FeedbackImportConfig
from usersnap_channels.partitions import partition_key

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
#: What started a run: `sensor-backfill`, `sensor-sync`, `schedule-late-arrivals` or `cli-sync`.
TRIGGER_TAG = "usersnap_channels/trigger"

#: Every asset of one feedback import, in one step (see `usersnap_feedback`), followed by the per-partition
#: check `data_points_match_usersnap_count` (an asset selection includes the checks of its assets).
feedback_import_job = dg.define_asset_job(
    "feedback_import_job",
    selection=dg.AssetSelection.assets(usersnap_feedback),
    description="Import the selected days of feedback of every connected source, then compare each day with "
    "Usersnap's count.",
)
#: What `usersnap-channels sync` runs: the projects refresh and the import (and its check) in one run, so a
#: sync pays Dagster's per-run cost once.
usersnap_sync_job = dg.define_asset_job(
    "usersnap_sync_job",
    selection=dg.AssetSelection.assets(usersnap_projects, usersnap_feedback),
    description="Refresh the projects, then import the selected days of every connected source and check them.",
)
projects_refresh_job = dg.define_asset_job(
    "projects_refresh_job",
    selection=dg.AssetSelection.assets(usersnap_projects),
    description="Refresh the list of Usersnap projects each connected key can see.",
)

JOBS = [feedback_import_job, usersnap_sync_job, projects_refresh_job]


def range_tags(first: date, last: date) -> dict[str, str]:
    """Tags that make one run cover the feedback partitions first..last (a single-run backfill)."""
    return {RANGE_START_TAG: partition_key(first), RANGE_END_TAG: partition_key(last)}


def import_config(
    source_ids: list[str] | None = None, *, loggers: dict[str, Any] | None = None, **knobs: Any
) -> dg.RunConfig:
    """Typed run config of the import step (see `FeedbackImportConfig` for the knobs)."""
    config = FeedbackImportConfig(source_ids=source_ids or [], **knobs)
    return dg.RunConfig(ops={IMPORT_STEP: config}, loggers=loggers)
