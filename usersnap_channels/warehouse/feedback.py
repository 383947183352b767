"""Writing imported feedback: whole units replaced in one transaction, and what DuckDB holds per unit.

Feedback is written per unit — one source, one project, one UTC day — and a unit is always replaced
whole: its old rows are deleted and its new rows inserted in the same transaction, so re-running a
partition any number of times gives the same rows and a reader never sees half a partition.
Rows arrive as Arrow tables (bulk, typed), built by the ingest layer; nothing here maps Usersnap items.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

import duckdb
import pyarrow as pa

from usersnap_channels.warehouse.connection import transaction

#: Tables that hold one source's imported feedback (what `delete` empties for a source).
FEEDBACK_TABLES: tuple[str, ...] = (
    "raw_feedback",
    "data_points",
    "data_point_turns",
    "data_point_fields",
    "rejected_items",
    "sync_state",
)


class UnitKey(NamedTuple):
    """Which unit: (source_id, project_id, day). The key of `sync_state` and of every per-unit count."""

    source_id: str
    project_id: str
    day: date


@dataclass(frozen=True)
class Unit:
    """The smallest piece of feedback written at once: one source's project on one UTC day."""

    source_id: str
    channel_name: str
    source_name: str
    project_id: str
    project_name: str | None
    day: date

    @property
    def key(self) -> UnitKey:
        return UnitKey(self.source_id, self.project_id, self.day)


@dataclass
class WriteResult:
    units: int
    raw_rows: int
    data_points: int
    turns: int
    fields: int
    rejected: int


def write_arrow(con: duckdb.DuckDBPyConnection, units: Sequence[Unit], tables: dict[str, pa.Table]) -> WriteResult:
    """Replace whole units in one transaction: delete their old rows, insert the new ones.

    `tables` maps each feedback table name to the Arrow rows of exactly these units.
    """
    # The small tables are built by DuckDB and by slicing Arrow, never from Python lists: pyarrow imports
    # pandas for that (≈ 40 MB resident in the Dagster process, for three columns of a few units).
    dps = tables["data_points"]
    con.register("_keys", dps.select(["source_id", "feedback_id"]))
    try:
        with transaction(con):
            _create_unit_keys(con, units)
            # Everything the units held before, plus any row of the same feedback elsewhere, goes first,
            # so (source_id, feedback_id) stays unique whatever happened in earlier runs.
            con.execute(
                """
                CREATE OR REPLACE TEMP TABLE _old_keys AS
                SELECT dp.source_id, dp.feedback_id FROM data_points dp
                JOIN _units u USING (source_id, project_id, partition_date)
                UNION SELECT source_id, feedback_id FROM _keys
                """
            )
            for table in ("data_point_turns", "data_point_fields", "data_points", "raw_feedback"):
                con.execute(
                    f"DELETE FROM {table} t USING _old_keys k "
                    "WHERE t.source_id = k.source_id AND t.feedback_id = k.feedback_id"
                )
            for table in ("raw_feedback", "data_points", "rejected_items", "sync_state"):
                con.execute(
                    f"DELETE FROM {table} t USING _units u WHERE t.source_id = u.source_id "
                    "AND t.project_id = u.project_id AND t.partition_date = u.partition_date"
                )
            for table in FEEDBACK_TABLES:
                rows = tables[table]
                if rows.num_rows:
                    con.register("_rows", rows)
                    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _rows")
                    con.unregister("_rows")
            con.execute("DROP TABLE _old_keys")
            con.execute("DROP TABLE _units")
    finally:
        con.unregister("_keys")
    return WriteResult(
        units=len(units),
        raw_rows=tables["raw_feedback"].num_rows,
        data_points=dps.num_rows,
        turns=tables["data_point_turns"].num_rows,
        fields=tables["data_point_fields"].num_rows,
        rejected=tables["rejected_items"].num_rows,
    )


def _create_unit_keys(con: duckdb.DuckDBPyConnection, units: Sequence[Unit]) -> None:
    """The temp table `_units` (source_id, project_id, partition_date) of the units being replaced, in one
    statement (`executemany` costs ≈ 0.2 ms a row)."""
    con.execute("CREATE OR REPLACE TEMP TABLE _units (source_id VARCHAR, project_id VARCHAR, partition_date DATE)")
    con.execute(
        "INSERT INTO _units SELECT unnest($1::VARCHAR[]), unnest($2::VARCHAR[]), unnest($3::DATE[])",
        [[u.source_id for u in units], [u.project_id for u in units], [u.day for u in units]],
    )


@dataclass
class ArrowBatch:
    """Whole units already turned into Arrow rows (by fetch workers), gathered for one transaction."""

    units: list[Unit] = field(default_factory=list)
    parts: dict[str, list[pa.Table]] = field(default_factory=lambda: {name: [] for name in FEEDBACK_TABLES})
    items: int = 0

    def add(self, units: Sequence[Unit], tables: dict[str, pa.Table], items: int) -> None:
        self.units.extend(units)
        for name in FEEDBACK_TABLES:
            self.parts[name].append(tables[name])
        self.items += items

    def write(self, con: duckdb.DuckDBPyConnection) -> WriteResult:
        tables = {name: pa.concat_tables(parts) for name, parts in self.parts.items()}
        return write_arrow(con, self.units, tables)


def synced_units(con: duckdb.DuckDBPyConnection, source_ids: Iterable[str]) -> set[UnitKey]:
    """(source_id, project_id, day) of every unit written at least once."""
    ids = list(source_ids)
    if not ids:
        return set()
    rows = con.execute(
        "SELECT source_id, project_id, partition_date FROM sync_state WHERE list_contains(?, source_id)", [ids]
    ).fetchall()
    return {UnitKey(r[0], r[1], r[2]) for r in rows}


def held_counts(
    con: duckdb.DuckDBPyConnection, first: date, last: date, *, submitted_before: datetime | None = None
) -> dict[UnitKey, tuple[int, int]]:
    """(data points, rejected items) that DuckDB holds per unit for the days in [first, last].

    With `submitted_before`, data points submitted later are left out (so a check of today's growing
    partition compares both sides at the same moment)."""
    cutoff = submitted_before or datetime(9999, 1, 1, tzinfo=UTC)
    rows = con.execute(
        """
        SELECT source_id, project_id, partition_date, sum(dp)::BIGINT, sum(rej)::BIGINT FROM (
            SELECT source_id, project_id, partition_date, 1 AS dp, 0 AS rej FROM data_points
            WHERE partition_date BETWEEN ? AND ? AND submitted_at < ?
            UNION ALL
            SELECT source_id, project_id, partition_date, 0, 1 FROM rejected_items
            WHERE partition_date BETWEEN ? AND ?
        ) GROUP BY ALL
        """,
        [first, last, cutoff, first, last],
    ).fetchall()
    return {UnitKey(r[0], r[1], r[2]): (int(r[3]), int(r[4])) for r in rows}


class DayRows(NamedTuple):
    """What DuckDB holds for one UTC day: the rows of that day's partition of each feedback asset."""

    raw_feedback: int
    data_points: int
    rejected: int


def rows_per_day(con: duckdb.DuckDBPyConnection, first: date, last: date) -> dict[date, DayRows]:
    """Rows held per UTC day in [first, last] (days holding nothing are absent), in one scan per table: each
    partition's own row count, for its materialization metadata."""
    rows = con.execute(
        """
        SELECT partition_date, sum(raw)::BIGINT, sum(dp)::BIGINT, sum(rej)::BIGINT FROM (
            SELECT partition_date, count(*) AS raw, 0 AS dp, 0 AS rej FROM raw_feedback
            WHERE partition_date BETWEEN $1 AND $2 GROUP BY ALL
            UNION ALL SELECT partition_date, 0, count(*), 0 FROM data_points
            WHERE partition_date BETWEEN $1 AND $2 GROUP BY ALL
            UNION ALL SELECT partition_date, 0, 0, count(*) FROM rejected_items
            WHERE partition_date BETWEEN $1 AND $2 GROUP BY ALL
        ) GROUP BY ALL
        """,
        [first, last],
    ).fetchall()
    return {r[0]: DayRows(int(r[1]), int(r[2]), int(r[3])) for r in rows}


def replace_usersnap_projects(con: duckdb.DuckDBPyConnection, source_id: str, rows: Sequence[dict[str, Any]]) -> int:
    """The projects one key can see now (`usersnap_projects` rows, column by name), replacing what it could
    see before."""
    with transaction(con):
        con.execute("DELETE FROM usersnap_projects WHERE source_id = ?", [source_id])
        if rows:
            columns = list(rows[0])
            marks = ", ".join("?" * len(columns))
            con.executemany(
                f"INSERT INTO usersnap_projects ({', '.join(columns)}) VALUES ({marks})",
                [[row[c] for c in columns] for row in rows],
            )
    return len(rows)
