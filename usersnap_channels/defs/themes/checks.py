"""Asset check: the trend lines add up to exactly the themed data points."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from usersnap_channels.defs.themes.assets import theme_trends
from usersnap_channels.warehouse import themes as store


@dg.asset_check(
    asset=theme_trends,
    description="For every channel and theme, the sum of `theme_trends.data_points` over all days equals the "
    "number of its data points in `data_point_themes`.",
)
def theme_trends_sum_to_themed_data_points(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        differing = store.trend_mismatches(con)
    return dg.AssetCheckResult(
        passed=not differing,
        description="Trends sum to the themed data points." if not differing else f"{len(differing)} theme(s) differ",
        metadata={
            "differing_themes": [
                {"channel": c, "theme_id": t, "trends": a, "themed": b} for c, t, a, b in differing[:20]
            ]
        },
    )
