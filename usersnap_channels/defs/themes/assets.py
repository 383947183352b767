"""Themes and trends downstream of the imported data points.

- `data_point_themes` (daily partitions, like `data_points`): the one extra step of an import. It embeds
  the new texts of its days (in a worker process, so the model's memory never adds to the import's) and
  assigns them to their nearest theme; a channel with no themes yet, or whose drift rule fires, gets a full
  recompute (see `themes.service`). It also owns `data_point_embeddings`.
- `themes`: brings every channel's themes up to date (sizes, first/last seen); with `recompute: true` (the
  daily schedule, `usersnap-channels themes`) a full recompute that keeps the ids of surviving themes.
- `theme_trends`: data points per theme and UTC day, rebuilt from the assignments.

All three follow every materialized `data_points` partition through declarative automation (not only the
latest), and run inside the import's own run when it is launched by `sync`, the sensor or the schedule.
"""

import warnings

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from usersnap_channels import settings
from usersnap_channels.defs.provenance import channels_tag, database_metadata, scope_tags, tag_run
from usersnap_channels.defs.snapshot import refresh_if_last_writer
from usersnap_channels.defs.tables import DUCKDB_POOL, partition_days, table_metadata
from usersnap_channels.defs.usersnap.partitions import feedback_daily_partitions
from usersnap_channels.partitions import utc_today
from usersnap_channels.themes.trends import markdown_table, top_themes, unassigned_share
from usersnap_channels.warehouse import themes as store
from usersnap_channels.warehouse.connection import ensure_schema

GROUP = "themes"
#: Run tags with what the run's themes step did as a whole: the worker's peak RSS (MB) and texts embedded.
WORKER_RSS_TAG = "usersnap_channels/themes_worker_peak_rss_mb"
EMBEDDED_TAG = "usersnap_channels/themes_embedded"
#: An imported day (any day, not only the latest) is followed by its themes step once it settles.
FOLLOWS_IMPORTS = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
)


with warnings.catch_warnings():
    # `backfill_policy` on a plain asset is beta in 1.13 (the import's multi-asset uses it without a warning);
    # single-run backfills are what keeps a UI backfill of 184 days one run, as for `data_points`
    warnings.simplefilter("ignore", dg.BetaWarning)

    @dg.asset(
        group_name=GROUP,
        kinds={"duckdb", "python"},
        deps=["data_points"],
        partitions_def=feedback_daily_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=DUCKDB_POOL,
        automation_condition=FOLLOWS_IMPORTS,
        description="Each imported day's data points embedded (table `data_point_embeddings`, once per text and "
        "model) and assigned to their nearest theme (table `data_point_themes`); a channel without themes, or "
        "whose drift rule fires, is recomputed in full.",
        metadata=table_metadata("data_point_themes", "data_point_embeddings"),
    )
    def data_point_themes(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
        return _theme_step(context, duckdb)


def _theme_step(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    """Embed and assign the run's days; each day's own counts on its partition, run figures on the run."""
    if not settings.load().themes:
        return _skipped(context, duckdb)
    first, last = partition_days(context)
    with duckdb.get_connection() as con:
        ensure_schema(con)
    from usersnap_channels.themes import service  # imported when run: scipy and the clustering cost ~25 MB

    report = service.theme_step(duckdb.get_connection, (first, last))
    with duckdb.get_connection() as con:
        per_day = store.themed_per_day(con, (first, last))
    for key in context.partition_keys:
        day = per_day.get(key, (0, 0, 0, 0))
        context.add_asset_metadata(
            {
                "dagster/partition_row_count": day[0],
                "data_points": day[1],
                "unassigned": day[1] - day[0],
                "embedded_data_points": day[2],
                "empty_texts": day[3],
            },
            partition_key=key,
        )
    tag_run(
        context,
        {
            **scope_tags(duckdb.database),
            WORKER_RSS_TAG: f"{report.worker_rss_mb:.0f}",
            EMBEDDED_TAG: str(report.embedded),
        },
    )
    context.log.info(
        f"Embedded {report.embedded} text(s), assigned {report.assigned} data point(s) to existing themes, "
        f"recomputed {report.recomputed or 'no channel'}; worker peak RSS {report.worker_rss_mb:.0f} MB"
    )
    snapshot = refresh_if_last_writer(context, duckdb)
    if snapshot:  # once, on the run's last partition: not a per-day figure
        context.add_asset_metadata(snapshot, partition_key=context.partition_keys[-1])
    return dg.MaterializeResult(metadata=database_metadata(duckdb.database))


def _skipped(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    context.log.info("Themes are off (USERSNAP_CHANNELS_THEMES=off): nothing embedded or themed.")
    tag_run(context, scope_tags(duckdb.database))
    metadata = {"skipped": "USERSNAP_CHANNELS_THEMES=off", **database_metadata(duckdb.database)}
    return dg.MaterializeResult(metadata={**metadata, **refresh_if_last_writer(context, duckdb)})


class ThemesConfig(dg.Config):
    """What a `themes` run does beyond keeping themes current."""

    recompute: bool = Field(default=False, description="Recompute every channel's themes in full (ids kept).")
    reason: str = Field(default="manual", description="Recorded in `theme_recomputes.reason`.")
    channel: str | None = Field(default=None, description="Only this channel.")


@dg.asset(
    group_name=GROUP,
    kinds={"duckdb", "python"},
    deps=[data_point_themes],
    pool=DUCKDB_POOL,
    automation_condition=dg.AutomationCondition.eager(),
    description="Every channel's themes (table `themes`, with `theme_events`, `theme_recomputes`, "
    "`theme_labels`): label, keywords, size, first and last seen, stable ids.",
    metadata=table_metadata("themes", "theme_events", "theme_recomputes", "theme_labels"),
)
def themes(context: dg.AssetExecutionContext, config: ThemesConfig, duckdb: DuckDBResource) -> dg.MaterializeResult:
    if not settings.load().themes:
        return _skipped(context, duckdb)
    force = config.reason if config.recompute else None
    from usersnap_channels.themes import service  # imported when run: scipy and the clustering cost ~25 MB

    report = service.refresh_all(duckdb.get_connection, channel=config.channel, force=force)
    with duckdb.get_connection() as con:
        channels = store.channels_in(con)
        metadata = _themes_metadata(con, channels)
    context.log.info(f"Themes: recomputed {report.recomputed or 'no channel'}, {report.assigned} assigned")
    tag_run(context, {**scope_tags(duckdb.database), **channels_tag(channels)})
    metadata.update(database_metadata(duckdb.database))
    metadata.update(refresh_if_last_writer(context, duckdb))
    return dg.MaterializeResult(metadata={**metadata, "recomputed_channels": sorted(report.recomputed)})


def _themes_metadata(con, channels: list[str]) -> dict[str, object]:
    """Number of themes, unassigned share and the top themes of every channel, for the UI."""
    today = utc_today()
    sections, total = [], 0
    for channel in channels:
        top = top_themes(con, channel, today)
        total += len(top)
        sections.append(
            f"### {channel}\n{len(top)} themes, {unassigned_share(con, channel):.1%} of data points unassigned\n\n"
            + markdown_table(top[:15])
        )
    return {
        "dagster/row_count": total,
        "themes": total,
        "channels": len(channels),
        "top_themes": dg.MetadataValue.md("\n\n".join(sections) or "No themes yet."),
    }


@dg.asset(
    group_name=GROUP,
    kinds={"duckdb"},
    deps=[themes],
    pool=DUCKDB_POOL,
    automation_condition=dg.AutomationCondition.eager(),
    description="Data points per theme and UTC day (table `theme_trends`); growth and emerging themes in the "
    "view `emerging_themes` (last 7 days against the 28 before).",
    metadata=table_metadata("theme_trends"),
)
def theme_trends(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    if not settings.load().themes:
        return _skipped(context, duckdb)
    with duckdb.get_connection() as con:
        rows = store.refresh_trends(con)
        emerging = con.execute("SELECT count(*) FROM emerging_themes WHERE emerging").fetchone()[0]
    tag_run(context, scope_tags(duckdb.database))
    metadata = {"dagster/row_count": rows, "emerging_themes": int(emerging), **database_metadata(duckdb.database)}
    return dg.MaterializeResult(metadata={**metadata, **refresh_if_last_writer(context, duckdb)})


THEME_ASSETS = [data_point_themes, themes, theme_trends]
