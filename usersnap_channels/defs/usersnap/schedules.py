"""A daily re-import of the last three UTC days, for late arrivals.

The sensor watches only yesterday and today. Items that show up in Usersnap with an older `created_at`
(offline mobile submissions, imports, clock skew), and items deleted in Usersnap, are caught by this
schedule: every day at 03:00 UTC it re-imports the day before yesterday, yesterday and today of every
connected source in ONE run (a partition range, `only_missing: False`, so every unit is replaced whole).

Default status RUNNING: it costs one small run a day (about three list requests per project), it keeps
the data right for teams that stop the sensor and rely on schedules, and it fills the sensor's blind
spot. Teams that do not want it stop it in the UI (Automation → usersnap_late_arrivals_schedule).
"""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb as ddb
from dagster_duckdb import DuckDBResource

from usersnap_channels.defs.jobs import TRIGGER_TAG, feedback_import_job, import_config, range_tags
from usersnap_channels.defs.provenance import scope_tags
from usersnap_channels.partitions import PARTITIONS_START, partition_key
from usersnap_channels.warehouse.connection import DatabaseBusy, open_database
from usersnap_channels.warehouse.registry import Source, list_sources

#: Days re-imported by each tick, ending today.
LATE_ARRIVAL_DAYS = 3
CRON = "0 3 * * *"


def connected_sources(database: str) -> list[Source] | None:
    """The connected sources, or None when the file cannot be read now (then the run imports all connected
    sources: an empty `source_ids`)."""
    if not Path(database).exists():
        return []
    try:
        con = open_database(database, read_only=True, wait_s=10.0)
    except DatabaseBusy:
        return None
    try:
        return list_sources(con, connected_only=True)
    except ddb.CatalogException:  # no registry tables yet
        return []
    finally:
        con.close()


@dg.schedule(
    name="usersnap_late_arrivals_schedule",
    job=feedback_import_job,
    cron_schedule=CRON,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=f"Daily at 03:00 UTC: re-import the last {LATE_ARRIVAL_DAYS} UTC days of every connected source "
    "in one run, for feedback that reaches Usersnap late.",
)
def usersnap_late_arrivals_schedule(
    context: dg.ScheduleEvaluationContext, duckdb: DuckDBResource
) -> dg.RunRequest | dg.SkipReason:
    moment = context.scheduled_execution_time or datetime.now(UTC)
    today = moment.astimezone(UTC).date()
    first = max(today - timedelta(days=LATE_ARRIVAL_DAYS - 1), PARTITIONS_START)
    sources = connected_sources(duckdb.database)
    if sources == []:
        return dg.SkipReason("No connected source: nothing to re-import.")
    return dg.RunRequest(
        run_key=f"usersnap-late-arrivals:{partition_key(today)}",
        run_config=import_config([s.source_id for s in sources or []], only_missing=False),
        tags={
            **range_tags(first, today),
            TRIGGER_TAG: "schedule-late-arrivals",
            **scope_tags(duckdb.database, sources),  # unknown sources (file busy): the import step adds them
        },
    )
