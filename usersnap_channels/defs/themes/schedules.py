"""A daily full recompute of every channel's themes (between recomputes, syncs only assign)."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from usersnap_channels.defs.jobs import themes_job, themes_run_config
from usersnap_channels.defs.provenance import scope_tags

CRON = "0 4 * * *"


@dg.schedule(
    name="themes_recompute_schedule",
    job=themes_job,
    cron_schedule=CRON,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily at 04:00 UTC: recompute every channel's themes in full on the stored embeddings (theme "
    "ids of surviving themes kept), then rebuild the trends.",
)
def themes_recompute_schedule(context: dg.ScheduleEvaluationContext, duckdb: DuckDBResource) -> dg.RunRequest:
    day = context.scheduled_execution_time.date().isoformat() if context.scheduled_execution_time else "now"
    return dg.RunRequest(
        run_key=f"themes-recompute:{day}",
        run_config=themes_run_config(recompute=True, reason="schedule"),
        tags=scope_tags(duckdb.database),
    )
