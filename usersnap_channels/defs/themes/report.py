"""`theme_report`: the shareable HTML report of every channel, rewritten after each theme refresh.

One self-contained file per channel (`<reports folder>/<channel>.html`, beside the DuckDB file unless
`USERSNAP_CHANNELS_REPORT_DIR` says otherwise); the paths and a markdown preview of each channel's top
themes are the materialization's metadata, so the UI shows what the page says without opening it.
"""

import dagster as dg
from dagster_duckdb import DuckDBResource

from usersnap_channels import settings
from usersnap_channels.defs.provenance import database_metadata, scope_tags, tag_run
from usersnap_channels.defs.tables import DUCKDB_POOL, table_metadata
from usersnap_channels.defs.themes.assets import GROUP, theme_trends
from usersnap_channels.partitions import utc_today
from usersnap_channels.themes.trends import markdown_table
from usersnap_channels.warehouse import report as store

#: Themes per channel in the metadata preview.
PREVIEW_THEMES = 10


@dg.asset(
    group_name=GROUP,
    kinds={"html", "duckdb"},
    deps=[theme_trends],
    pool=DUCKDB_POOL,
    automation_condition=dg.AutomationCondition.eager(),
    description="One self-contained HTML page per channel (themes ranked by size with examples, trend lines, "
    "emerging themes, ratings and NPS, filters that recompute everything offline), written to the reports "
    "folder next to the DuckDB file; `usersnap-channels report` writes the same page on demand.",
    metadata=table_metadata(None),
)
def theme_report(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    config = settings.load()
    if not config.themes:
        context.log.info("Themes are off (USERSNAP_CHANNELS_THEMES=off): no report.")
        return dg.MaterializeResult(
            metadata={"skipped": "USERSNAP_CHANNELS_THEMES=off", **database_metadata(duckdb.database)}
        )
    # imported when run, not when definitions load: Altair and Jinja2 would add ~25 MB to every process
    # that loads the definitions (the import's own run, the daemon, the code server)
    from usersnap_channels.report.ratings import named_fields
    from usersnap_channels.report.render import build, write

    paths, sections = {}, []
    with duckdb.get_connection() as con:
        for channel in store.channels(con):
            page = build(con, [channel], today=utc_today(), rating_names=named_fields([], config.report_rating_fields))
            path = write(page.html, settings.report_path(channel, duckdb.database))
            paths[channel] = path
            themes = page.channels[0].themes
            sections.append(f"### {channel}\n`{path}`\n\n" + (markdown_table(themes[:PREVIEW_THEMES]) or ""))
    context.log.info(f"Wrote {len(paths)} report(s): {', '.join(str(p) for p in paths.values())}")
    metadata: dict[str, object] = {
        "reports": len(paths),
        **database_metadata(duckdb.database),
        "top_themes": dg.MetadataValue.md("\n\n".join(sections) or "No channel yet."),
    }
    if paths:
        metadata["path"] = dg.MetadataValue.path(str(next(iter(paths.values()))))
        metadata["paths"] = dg.MetadataValue.json({name: str(p) for name, p in paths.items()})
    tag_run(context, scope_tags(duckdb.database))
    return dg.MaterializeResult(metadata=metadata)
