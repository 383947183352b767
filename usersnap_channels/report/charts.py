"""The report's charts as Vega-Lite specs built with Altair. Their data are named sources (`top`,
`multiples`) that the page fills and refills in the browser whenever a filter changes, so one spec serves
every selection. Days are UTC midnights in epoch milliseconds, shown on UTC scales."""

from __future__ import annotations

from typing import Any

import altair as alt

EMERGING_COLOR = "#d94801"
STEADY_COLOR = "#4a6fa5"
#: Themes drawn in the overview line chart (the small multiples draw every theme).
TOP_LINES = 8
#: Small multiples drawn at first (a button draws every theme): 150 facets cost Vega ~2 s to lay out.
MULTIPLES = 24


def _day_axis() -> alt.X:
    return alt.X("day:T", title=None, scale=alt.Scale(type="utc"), axis=alt.Axis(format="%b %d", labelAngle=0))


def trend_chart() -> dict[str, Any]:
    """The largest themes of the selection over the window, one line each; emerging themes drawn thicker.
    Clicking a legend entry highlights its line."""
    pick = alt.selection_point(name="pick", fields=["theme"], bind="legend")
    chart = (
        alt.Chart(alt.NamedData(name="top"))
        .mark_line(point=False, interpolate="monotone")
        .encode(
            x=_day_axis(),
            y=alt.Y("n:Q", title="data points per day"),
            color=alt.Color(
                "theme:N",
                sort=alt.EncodingSortField(field="rank", op="min"),
                legend=alt.Legend(title=None, orient="bottom", columns=2, labelLimit=320, symbolType="stroke"),
            ),
            strokeWidth=alt.condition(alt.datum.emerging, alt.value(3.2), alt.value(1.6)),
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.15)),
            tooltip=[
                alt.Tooltip("theme:N"),
                alt.Tooltip("day:T", format="%Y-%m-%d", timeUnit="utcyearmonthdate", title="day (UTC)"),
                alt.Tooltip("n:Q", title="data points"),
            ],
        )
        .add_params(pick)
        .properties(width="container", height=260)
    )
    return _spec(chart)


def multiples_chart(columns: int = 4) -> dict[str, Any]:
    """One small trend per theme, ranked by size in the selection; emerging themes in orange. Each panel
    has its own y scale so a small theme's shape shows."""
    chart = (
        alt.Chart(alt.NamedData(name="multiples"))
        .mark_area(line=True, opacity=0.35, interpolate="monotone")
        .encode(
            x=alt.X("day:T", title=None, scale=alt.Scale(type="utc"), axis=alt.Axis(format="%b %d", tickCount=3)),
            y=alt.Y("n:Q", title=None, axis=alt.Axis(tickCount=3, grid=False)),
            color=alt.Color(
                "emerging:N",
                scale=alt.Scale(domain=[True, False], range=[EMERGING_COLOR, STEADY_COLOR]),
                legend=None,
            ),
            tooltip=[
                alt.Tooltip("theme:N"),
                alt.Tooltip("day:T", format="%Y-%m-%d", timeUnit="utcyearmonthdate", title="day (UTC)"),
                alt.Tooltip("n:Q", title="data points"),
            ],
        )
        .properties(width=190, height=70)
        .facet(
            facet=alt.Facet(
                "theme:N",
                sort=alt.EncodingSortField(field="rank", op="min"),
                header=alt.Header(title=None, labelLimit=190, labelFontSize=11, labelAlign="left", labelAnchor="start"),
            ),
            columns=columns,
        )
        .resolve_scale(y="independent")
        .configure_view(stroke=None)
    )
    return _spec(chart)


def _spec(chart: alt.TopLevelMixin) -> dict[str, Any]:
    """The validated Vega-Lite spec without data (the page supplies it) or an external config."""
    spec = chart.to_dict(validate=True)
    spec.pop("datasets", None)
    config = spec.setdefault("config", {})
    config.setdefault("font", "system-ui, -apple-system, Segoe UI, Roboto, sans-serif")
    return spec
