"""The one entry point: every asset, check, job, sensor, schedule and resource of the project (see workspace.yaml)."""

from __future__ import annotations

import dagster as dg

from usersnap_channels.defs.jobs import JOBS
from usersnap_channels.defs.provenance import database_metadata
from usersnap_channels.defs.resources import UsersnapResource, channels_duckdb
from usersnap_channels.defs.themes.assets import THEME_ASSETS
from usersnap_channels.defs.themes.checks import theme_trends_sum_to_themed_data_points
from usersnap_channels.defs.themes.report import theme_report
from usersnap_channels.defs.themes.schedules import themes_recompute_schedule
from usersnap_channels.defs.usersnap.assets import usersnap_feedback, usersnap_projects
from usersnap_channels.defs.usersnap.checks import data_points_match_usersnap_count
from usersnap_channels.defs.usersnap.schedules import usersnap_late_arrivals_schedule
from usersnap_channels.defs.usersnap.sensors import usersnap_sync_sensor


def build_definitions(*, database: str | None = None, base_url: str | None = None) -> dg.Definitions:
    """Definitions over one DuckDB file and one Usersnap API root (tests point these at temp files and
    the local dev server; unset, they come from $USERSNAP_CHANNELS_DB and $USERSNAP_BASE_URL)."""
    duckdb = channels_duckdb(database)
    # every asset names the DuckDB file these definitions write (one instance may serve several files)
    assets = dg.map_asset_specs(
        lambda spec: spec.merge_attributes(metadata=database_metadata(duckdb.database)),
        [usersnap_projects, usersnap_feedback, *THEME_ASSETS, theme_report],
    )
    return dg.Definitions(
        assets=assets,
        asset_checks=[data_points_match_usersnap_count, theme_trends_sum_to_themed_data_points],
        jobs=JOBS,
        sensors=[usersnap_sync_sensor],
        schedules=[usersnap_late_arrivals_schedule, themes_recompute_schedule],
        resources={
            "usersnap": UsersnapResource(base_url=base_url),
            "duckdb": duckdb,
        },
    )


defs = build_definitions()
