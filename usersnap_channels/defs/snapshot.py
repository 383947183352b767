"""Refreshing the analysts' snapshot once per run, by the run's last step that writes DuckDB.

Inside the run rather than in a sensor, so every kind of run refreshes it (`sync`, the sensor's and the
schedules' runs, UI backfills, `usersnap-channels themes`) with or without a daemon; once per run rather
than once per step, so a sync pays for one copy; in a step that already holds the `duckdb` pool slot, so
no other run's writer can start in the middle of the copy.
"""

from __future__ import annotations

import dagster as dg
from dagster_duckdb import DuckDBResource

from usersnap_channels.defs.provenance import SNAPSHOT_KEY, database_path, tag_run
from usersnap_channels.warehouse.snapshot import refresh_snapshot

#: Every asset that writes DuckDB, in the order a run executes them (each depends on the ones before).
WRITERS = ("usersnap_projects", "raw_feedback", "data_points", "data_point_themes", "themes", "theme_trends")


def is_last_writer(context: dg.AssetExecutionContext) -> bool:
    """Whether no asset this run still has to materialize writes DuckDB after the current step."""
    mine = [WRITERS.index(key.to_user_string()) for key in context.selected_asset_keys]
    selected = {key.to_user_string() for key in context.job_def.asset_layer.selected_asset_keys}
    return not any(name in selected for name in WRITERS[max(mine) + 1 :])


def refresh_if_last_writer(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dict[str, object]:
    """Refresh the snapshot when this is the run's last writing step; its path and size as metadata."""
    if not is_last_writer(context):
        return {}
    with duckdb.get_connection() as con:
        result = refresh_snapshot(con, duckdb.database)
    context.log.info(
        f"Snapshot for analysts refreshed: {result.path} ({result.bytes / 1e6:.1f} MB in {result.seconds:.2f}s)"
    )
    tag_run(context, {SNAPSHOT_KEY: database_path(result.path)})
    return {
        SNAPSHOT_KEY: dg.MetadataValue.path(database_path(result.path)),
        "snapshot_seconds": round(result.seconds, 3),
    }
