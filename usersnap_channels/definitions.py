"""The one entry point: every asset, check, job, sensor and resource of the project (see workspace.yaml)."""

from __future__ import annotations

import dagster as dg

from usersnap_channels.assets import usersnap_feedback, usersnap_projects
from usersnap_channels.resources import UsersnapResource, channels_duckdb

#: Every asset of one feedback import, in one step (see `usersnap_feedback`).
feedback_import_job = dg.define_asset_job(
    "feedback_import_job",
    selection=dg.AssetSelection.assets(usersnap_feedback),
    description="Import the selected days of feedback of every connected source.",
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
        jobs=[feedback_import_job, projects_refresh_job],
        resources={
            "usersnap": UsersnapResource(base_url=base_url),
            "duckdb": channels_duckdb(database),
        },
    )


defs = build_definitions()
