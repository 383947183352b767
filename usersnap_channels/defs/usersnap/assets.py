"""The software-defined assets: Usersnap projects, and feedback per UTC day as raw items and data points.

Thin Dagster wiring: what to fetch and how to write it lives in `ingest` and `storage`.
"""

from datetime import UTC, date, datetime, timedelta

import dagster as dg
from dagster_duckdb import DuckDBResource

from usersnap_channels.defs.provenance import database_metadata, scope_tags, tag_run
from usersnap_channels.defs.resources import UsersnapResource
from usersnap_channels.defs.snapshot import refresh_if_last_writer
from usersnap_channels.defs.tables import DUCKDB_POOL, partition_days, table_metadata, table_row_counts
from usersnap_channels.defs.usersnap.config import FeedbackImportConfig
from usersnap_channels.defs.usersnap.partitions import feedback_daily_partitions
from usersnap_channels.ingest.importer import DayCounts, ImportReport, import_units
from usersnap_channels.ingest.plan import authorization_error, plan_units
from usersnap_channels.ingest.rows import project_rows
from usersnap_channels.partitions import parse_partition_key, utc_today
from usersnap_channels.usersnap.client import ClientSpec, InvalidCredentials, UsersnapError
from usersnap_channels.warehouse.connection import ensure_schema
from usersnap_channels.warehouse.feedback import DayRows, replace_usersnap_projects, rows_per_day, synced_units
from usersnap_channels.warehouse.registry import Source, list_sources, record_sync

GROUP = "usersnap"
#: Tables no asset writes (the CLI keeps the registry; opening the file keeps `schema_version`): their
#: columns are shown on `usersnap_projects`, the first asset, which reads the registry.
REGISTRY_TABLES = ("channels", "sources", "source_projects", "schema_version")


@dg.asset(
    group_name=GROUP,
    kinds={"duckdb", "python"},
    pool=DUCKDB_POOL,
    description="The Usersnap projects each connected source's key can see (table `usersnap_projects`). "
    "Its metadata also shows the registry it reads (`channels`, `sources`, `source_projects`, written by the "
    "CLI) and `schema_version`.",
    metadata=table_metadata("usersnap_projects", *REGISTRY_TABLES),
)
def usersnap_projects(
    context: dg.AssetExecutionContext, usersnap: UsersnapResource, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        ensure_schema(con)
        sources = list_sources(con, connected_only=True)
    fetched: dict[str, list[dict]] = {}
    errors: dict[str, str] = {}
    for source in sources:
        try:
            with usersnap.client(source.jwt_id_env, source.jwt_secret_env) as client:
                fetched[source.source_id] = client.list_projects()
        except InvalidCredentials as exc:
            errors[source.source_id] = authorization_error(source, exc)
        except UsersnapError as exc:
            errors[source.source_id] = f"Cannot list the projects of {source.label}: {exc}"
    now = datetime.now(UTC)
    with duckdb.get_connection() as con:
        for source_id, projects in fetched.items():
            replace_usersnap_projects(con, source_id, project_rows(source_id, projects, now))
        for source_id, error in errors.items():
            record_sync(con, source_id, error=error)
        total = con.execute("SELECT count(*) FROM usersnap_projects").fetchone()[0]
    if errors and not fetched:
        raise dg.Failure(description="\n".join(errors.values()), metadata={"failed_sources": len(errors)})
    for error in errors.values():
        # One refused key must not stop the other sources' import downstream: it is recorded in
        # `sources.last_error` (what `status` shows) and the import step fails for that source alone.
        context.log.warning(error)
    tag_run(context, scope_tags(duckdb.database))
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": total,
            "sources": len(sources),
            "projects_seen": sum(len(p) for p in fetched.values()),
            "failed_sources": len(errors),
            **database_metadata(duckdb.database),
            **refresh_if_last_writer(context, duckdb),
        }
    )


#: The assets of one feedback import. `data_points` also owns its satellite tables (turns, fields and
#: rejected items): each Dagster asset costs one event per partition per run, so four more assets would
#: make a 6-month backfill several times slower without telling a user anything new.
FEEDBACK_ASSETS = ("raw_feedback", "data_points")
_FEEDBACK_DESCRIPTIONS = {
    "raw_feedback": "Usersnap feedback items per UTC day, as fetched minus the never-imported fields "
    "(table `raw_feedback`).",
    "data_points": "One data point per feedback item (table `data_points`), with its conversation turns "
    "(`data_point_turns`), filterable fields (`data_point_fields`) and the items that could not be mapped "
    "(`rejected_items`), all written in the same transaction as the raw items. A day before every source's "
    "backfill window shows as Missing but is not applicable: nothing is imported for it.",
}
_FEEDBACK_DEPS = {"raw_feedback": ["usersnap_projects"], "data_points": ["raw_feedback"]}
_SATELLITES = ("data_point_turns", "data_point_fields", "rejected_items", "sync_state")
#: The imported data is stale when no import succeeded for a day: while a source is connected, the late-arrivals
#: schedule (03:00 UTC) imports every day even when the sensor finds nothing new, so 24 h plus a 2-hour margin
#: for that run's own duration passes only when imports stopped (the daemon is down, a key was refused, the
#: run fails). The daemon's freshness evaluation shows it on the asset as Fail.
IMPORT_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=26))


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            name,
            group_name=GROUP,
            kinds={"duckdb"},
            deps=_FEEDBACK_DEPS[name],
            description=_FEEDBACK_DESCRIPTIONS[name],
            metadata=table_metadata(name, *(_SATELLITES if name == "data_points" else ())),
            freshness_policy=IMPORT_FRESHNESS,
        )
        for name in FEEDBACK_ASSETS
    ],
    partitions_def=feedback_daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=False,
    pool=DUCKDB_POOL,
)
def usersnap_feedback(
    context: dg.AssetExecutionContext,
    config: FeedbackImportConfig,
    usersnap: UsersnapResource,
    duckdb: DuckDBResource,
):
    """Fetch the selected UTC days of every connected source's projects and write raw items and data
    points, replacing each (source, project, day) in one DuckDB transaction. A range of days runs in one
    step (single-run backfill), so a 6-month backfill costs one Dagster run, not one per day."""
    first_day, last_day = partition_days(context)
    with duckdb.get_connection() as con:
        ensure_schema(con)
        sources = [
            s
            for s in list_sources(con, connected_only=True)
            if not config.source_ids or s.source_id in config.source_ids
        ]
        synced = synced_units(con, [s.source_id for s in sources]) if config.only_missing else None
    units = plan_units(sources, first_day, last_day, today=utc_today(), already_synced=synced)
    context.log.info(
        f"Importing {len(units)} (source, project, day) units from {first_day} to {last_day} "
        f"for {len(sources)} connected source(s)"
    )

    def client_spec(source: Source) -> ClientSpec:
        return usersnap.client_spec(source.jwt_id_env, source.jwt_secret_env)

    report = import_units(
        units,
        sources,
        client_spec=client_spec,
        connection=duckdb.get_connection,
        workers=config.workers,
        run_id=context.run.run_id,
    )
    if report.failed:
        raise dg.Failure(
            description=report.failure_summary(),
            metadata={
                "units_written": report.units_written,
                "units_planned": report.units_planned,
                "failed_days": len(report.unit_errors),
                "failed_sources": len(report.source_errors),
                **database_metadata(duckdb.database),
            },
        )
    tag_run(context, {**scope_tags(duckdb.database, sources), **run_total_tags(report, first_day, last_day)})
    with duckdb.get_connection() as con:
        held = rows_per_day(con, first_day, last_day)
        totals = table_row_counts(con, ("raw_feedback", "data_points", *_SATELLITES))
    snapshot = refresh_if_last_writer(context, duckdb)
    for key in context.partition_keys:
        day = parse_partition_key(key)
        for name, metadata in _day_metadata(report.per_day.get(day), held.get(day)).items():
            context.add_asset_metadata(metadata, asset_key=name, partition_key=key)
    # the whole tables after the run, and the snapshot, once: on the run's last partition (the one the UI
    # shows as the latest materialization), not stamped on every day
    last_key = context.partition_keys[-1]
    context.add_asset_metadata(
        {"dagster/row_count": totals["rows/raw_feedback"], **snapshot}, asset_key="raw_feedback", partition_key=last_key
    )
    tables = {k: v for k, v in totals.items() if k != "rows/raw_feedback"}
    context.add_asset_metadata(
        {"dagster/row_count": totals["rows/data_points"], **tables, **snapshot},
        asset_key="data_points",
        partition_key=last_key,
    )
    for name in FEEDBACK_ASSETS:
        yield dg.MaterializeResult(asset_key=name, metadata=database_metadata(duckdb.database))


#: Run tags with the import's totals over every day of the run (each day's own counts are on its partition).
RUN_TOTAL_TAGS = {
    "days": "usersnap_channels/run_days",
    "units": "usersnap_channels/run_units",
    "items_fetched": "usersnap_channels/run_items_fetched",
    "data_points_written": "usersnap_channels/run_data_points_written",
    "rejected_items": "usersnap_channels/run_rejected_items",
    "turns_written": "usersnap_channels/run_turns_written",
    "fields_written": "usersnap_channels/run_fields_written",
    "usersnap_requests": "usersnap_channels/run_usersnap_requests",
}


def run_total_tags(report: ImportReport, first: date, last: date) -> dict[str, str]:
    """The import's totals as run tags: what the whole run did, labelled as such."""
    values = {
        "days": f"{first.isoformat()}..{last.isoformat()}",
        "units": report.units_written,
        "items_fetched": report.items,
        "data_points_written": report.data_points,
        "rejected_items": report.rejected,
        "turns_written": report.turns,
        "fields_written": report.fields,
        "usersnap_requests": report.requests,
    }
    return {RUN_TOTAL_TAGS[name]: str(value) for name, value in values.items()}


def _day_metadata(done: DayCounts | None, held: DayRows | None) -> dict[str, dict[str, object]]:
    """One day's own figures per asset: the rows its partition holds now (`dagster/partition_row_count`) and
    what this run did for that day (0 units: the day was already imported and skipped, or had no project)."""
    done = done or DayCounts()
    held = held or DayRows(0, 0, 0)
    common = {"units": done.units, "items_fetched": done.items}
    return {
        "raw_feedback": {
            "dagster/partition_row_count": held.raw_feedback,
            **common,
            "rows_written": done.data_points,
        },
        "data_points": {
            "dagster/partition_row_count": held.data_points,
            **common,
            "rows_written": done.data_points,
            "rejected_items_written": done.rejected,
            "rejected_items": held.rejected,
        },
    }
