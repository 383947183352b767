"""The one entry point: every asset, check, job, sensor, schedule and resource of the project (see workspace.yaml)."""

from __future__ import annotations

import dagster as dg

from usersnap_channels.defs.resources import UsersnapResource, channels_duckdb
from usersnap_channels.defs.usersnap.assets import usersnap_feedback, usersnap_projects
from usersnap_channels.defs.usersnap.checks import data_points_match_usersnap_count
from usersnap_channels.defs.usersnap.schedules import usersnap_late_arrivals_schedule
from usersnap_channels.defs.usersnap.sensors import JOB_NAME, usersnap_sync_sensor

#: Every asset of one feedback import, in one step (see `usersnap_feedback`), followed by the per-partition
#: check `data_points_match_usersnap_count` (an asset selection includes the checks of its assets).
feedback_import_job = dg.define_asset_job(
    JOB_NAME,
    selection=dg.AssetSelection.assets(usersnap_feedback),
    description="Import the selected days of feedback of every connected source, then compare each day with "
    "Usersnap's count.",
)
#: What `usersnap-channels sync` runs: the projects refresh and the import (and its check) in one run, so a
#: sync pays Dagster's per-run cost once.
SYNC_JOB_NAME = "usersnap_sync_job"
usersnap_sync_job = dg.define_asset_job(
    SYNC_JOB_NAME,
    selection=dg.AssetSelection.assets(usersnap_projects, usersnap_feedback),
    description="Refresh the projects, then import the selected days of every connected source and check them.",
)
projects_refresh_job = dg.define_asset_job(
    "projects_refresh_job",
    selection=dg.AssetSelection.assets(usersnap_projects),
    description="Refresh the list of Usersnap projects each connected key can see.",
)


def build_definitions(*, database: str | None = None, base_url: str | None = None) -> dg.Definitions:
    """Definitions over one DuckDB file and one Usersnap API root (tests point these at temp files and
    the local dev server; unset, they come from $USERSNAP_CHANNELS_DB and $USERSNAP_BASE_URL)."""
    return dg.Definitions(
        assets=[usersnap_projects, usersnap_feedback],
        asset_checks=[data_points_match_usersnap_count],
        jobs=[feedback_import_job, usersnap_sync_job, projects_refresh_job],
        sensors=[usersnap_sync_sensor],
        schedules=[usersnap_late_arrivals_schedule],
        resources={
            "usersnap": UsersnapResource(base_url=base_url),
            "duckdb": channels_duckdb(database),
        },
    )


defs = build_definitions()
