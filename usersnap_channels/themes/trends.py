"""A channel's themes as people read them: ranked by size, with share, 7-day growth and emerging flags."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb

from usersnap_channels.warehouse.schema import growth_sql


@dataclass(frozen=True)
class ThemeSummary:
    channel_name: str
    theme_id: int
    label: str
    keywords: list[str]
    size: int
    share: float
    last_7_days: int
    previous_28_days: int
    growth: float | None
    emerging: bool


def top_themes(
    con: duckdb.DuckDBPyConnection, channel: str, today: date, *, limit: int | None = None
) -> list[ThemeSummary]:
    """Active themes of a channel, largest first; share is of the channel's data points with text."""
    total = con.execute(
        "SELECT count(*) FROM data_points WHERE channel_name = ? AND trim(text) <> ''", [channel]
    ).fetchone()[0]
    rows = con.execute(
        f"""
        SELECT channel_name, theme_id, label, keywords, size, last_7_days, previous_28_days, growth, emerging
        FROM ({growth_sql("?::DATE")}) WHERE channel_name = ?
        ORDER BY size DESC, theme_id
        {"LIMIT ?" if limit else ""}
        """,
        [today, today, today, today, channel, *([limit] if limit else [])],
    ).fetchall()
    return [
        ThemeSummary(
            r[0],
            int(r[1]),
            r[2],
            list(r[3]),
            int(r[4]),
            r[4] / max(total, 1),
            int(r[5]),
            int(r[6]),
            None if r[7] is None else float(r[7]),
            bool(r[8]),
        )
        for r in rows
    ]


def unassigned_share(con: duckdb.DuckDBPyConnection, channel: str) -> float:
    """Share of the channel's data points with text that belong to no theme."""
    total, themed = con.execute(
        """
        SELECT count(*), count(t.theme_id) FROM data_points d
        LEFT JOIN data_point_themes t USING (source_id, feedback_id)
        WHERE d.channel_name = ? AND trim(d.text) <> ''
        """,
        [channel],
    ).fetchone()
    return 1 - themed / total if total else 0.0


def format_growth(growth: float | None) -> str:
    return "new" if growth is None else f"{growth:+.0%}"


def markdown_table(themes: list[ThemeSummary]) -> str:
    """The top themes as a markdown table (the `themes` asset's metadata)."""
    lines = ["| theme | label | size | share | 7-day growth | keywords |", "|---|---|---|---|---|---|"]
    for t in themes:
        label = t.label.replace("|", "/") + (" (emerging)" if t.emerging else "")
        keywords = ", ".join(t.keywords[:5]).replace("|", "/")
        lines.append(f"| {t.theme_id} | {label} | {t.size} | {t.share:.1%} | {format_growth(t.growth)} | {keywords} |")
    return "\n".join(lines)
