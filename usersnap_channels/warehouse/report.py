"""Read queries of the HTML report: a channel's sources, its data points as compact rows, theme examples and
the numeric form fields that may be ratings. Plain SQL; what the report does with it lives in `report/`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import duckdb


@dataclass(frozen=True)
class SourceInfo:
    """A source of the channel as the report shows it (never its credential variable names)."""

    source_id: str
    source_name: str
    status: str
    backfill_window: str
    window_start: date
    last_synced_at: datetime | None


def channel_sources(con: duckdb.DuckDBPyConnection, channel: str) -> list[SourceInfo]:
    """The channel's sources, by name."""
    rows = con.execute(
        "SELECT source_id, source_name, status, backfill_window, window_start, last_synced_at FROM sources "
        "WHERE channel_name = ? ORDER BY source_name",
        [channel],
    ).fetchall()
    return [SourceInfo(*r) for r in rows]


def channels(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every registered channel, by name (with or without data points)."""
    return [r[0] for r in con.execute("SELECT channel_name FROM channels ORDER BY 1").fetchall()]


@dataclass
class DataPointRows:
    """Every data point of a channel, one entry per list and data point, in a fixed order (day, ids)."""

    keys: list[tuple[str, str]]
    source_ids: list[str]
    project_ids: list[str]
    project_names: list[str | None]
    statuses: list[str | None]
    priorities: list[str | None]
    tags: list[list[str]]
    days: list[date]
    theme_ids: list[int | None]
    has_text: list[bool]


def data_point_rows(con: duckdb.DuckDBPyConnection, channel: str) -> DataPointRows:
    """What the report's filters and aggregates need of each data point (no text, no email): its source and
    project, status, priority, tags, UTC day of `submitted_at` (as `theme_trends` counts it) and theme."""
    table = con.sql(
        """
        SELECT d.source_id, d.feedback_id, d.project_id, d.project_name, d.status, d.priority, d.tags,
               (d.submitted_at AT TIME ZONE 'UTC')::DATE AS day, t.theme_id, trim(d.text) <> '' AS has_text
        FROM data_points d LEFT JOIN data_point_themes t USING (source_id, feedback_id)
        WHERE d.channel_name = ?
        ORDER BY day, d.source_id, d.feedback_id
        """,
        params=[channel],
    ).to_arrow_table()
    column = {name: table[name].to_pylist() for name in table.column_names}
    return DataPointRows(
        keys=list(zip(column["source_id"], column["feedback_id"], strict=True)),
        source_ids=column["source_id"],
        project_ids=column["project_id"],
        project_names=column["project_name"],
        statuses=column["status"],
        priorities=column["priority"],
        tags=column["tags"],
        days=column["day"],
        theme_ids=column["theme_id"],
        has_text=column["has_text"],
    )


@dataclass(frozen=True)
class Example:
    """A theme's example data point: its text, when and where it came from, and its link to Usersnap."""

    theme_id: int
    source_id: str
    feedback_id: str
    submitted_at: datetime
    project_name: str | None
    text: str
    link: str | None


def theme_examples(con: duckdb.DuckDBPyConnection, channel: str, per_theme: int) -> list[Example]:
    """Up to `per_theme` examples of every active theme: the data points closest to its centroid, newest
    first among equals (the most typical texts, not the longest or the latest)."""
    rows = con.execute(
        """
        SELECT t.theme_id, d.source_id, d.feedback_id, d.submitted_at, d.project_name, d.text, d.link
        FROM data_point_themes t JOIN data_points d USING (source_id, feedback_id)
        JOIN themes th ON th.theme_id = t.theme_id AND th.channel_name = d.channel_name AND th.status = 'active'
        WHERE d.channel_name = ? AND trim(d.text) <> ''
        QUALIFY row_number() OVER (PARTITION BY t.theme_id ORDER BY t.score DESC, d.submitted_at DESC,
                                   d.feedback_id) <= ?
        ORDER BY t.theme_id, t.score DESC, d.submitted_at DESC, d.feedback_id
        """,
        [channel, per_theme],
    ).fetchall()
    return [Example(*r) for r in rows]


@dataclass(frozen=True)
class NumericField:
    """A numeric form field of a channel: how many values it has, whether all are whole, and their range."""

    name: str
    values: int
    all_integers: bool
    minimum: float
    maximum: float


def numeric_form_fields(con: duckdb.DuckDBPyConnection, channel: str) -> list[NumericField]:
    """Every form field of the channel with numeric values (view `data_point_numbers`), by name."""
    rows = con.execute(
        """
        SELECT n.name, count(*), bool_and(n.number = round(n.number)), min(n.number), max(n.number)
        FROM data_point_numbers n JOIN data_points d USING (source_id, feedback_id)
        WHERE d.channel_name = ? AND n.origin = 'form' AND n.number IS NOT NULL AND isfinite(n.number)
        GROUP BY n.name ORDER BY n.name
        """,
        [channel],
    ).fetchall()
    return [NumericField(r[0], int(r[1]), bool(r[2]), float(r[3]), float(r[4])) for r in rows]


def numeric_values(
    con: duckdb.DuckDBPyConnection, channel: str, names: list[str]
) -> dict[str, dict[tuple[str, str], float]]:
    """Per field name: (source_id, feedback_id) → its numeric value, for the channel's data points."""
    found: dict[str, dict[tuple[str, str], float]] = {name: {} for name in names}
    if not names:
        return found
    rows = con.execute(
        """
        SELECT n.name, n.source_id, n.feedback_id, n.number
        FROM data_point_numbers n JOIN data_points d USING (source_id, feedback_id)
        WHERE d.channel_name = ? AND n.origin = 'form' AND list_contains(?, n.name) AND isfinite(n.number)
        """,
        [channel, names],
    ).fetchall()
    for name, source_id, feedback_id, number in rows:
        found[name][(source_id, feedback_id)] = float(number)
    return found
