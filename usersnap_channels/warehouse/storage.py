"""Every DuckDB table and every write to them.

Feedback is written per unit — one source, one project, one UTC day — and a unit is always replaced
whole: its old rows are deleted and its new rows inserted in the same transaction, so re-running a
partition any number of times gives the same rows and a reader never sees half a partition.
Rows go in as Arrow tables (bulk, typed), never row by row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import duckdb
import pyarrow as pa

from usersnap_channels.usersnap.mapping import (
    DataPoint,
    Rejection,
    map_item,
    parse_created_at,
    raw_json,
)
from usersnap_channels.warehouse.schema import SCHEMA_SQL, TABLES

#: Tables that hold one source's imported feedback (what `delete` empties for a source).
FEEDBACK_TABLES: tuple[str, ...] = (
    "raw_feedback",
    "data_points",
    "data_point_turns",
    "data_point_fields",
    "rejected_items",
    "sync_state",
)

_TS = pa.timestamp("us", tz="UTC")
_UNIT_SCHEMA = pa.schema([("source_id", pa.string()), ("project_id", pa.string()), ("partition_date", pa.date32())])
_KEY_SCHEMA = pa.schema([("source_id", pa.string()), ("feedback_id", pa.string())])
_RAW_SCHEMA = TABLES["raw_feedback"].arrow_schema()
_DP_SCHEMA = TABLES["data_points"].arrow_schema()
_TURN_SCHEMA = TABLES["data_point_turns"].arrow_schema()
_FIELD_SCHEMA = TABLES["data_point_fields"].arrow_schema()
_REJECTED_SCHEMA = TABLES["rejected_items"].arrow_schema()
_SYNC_SCHEMA = TABLES["sync_state"].arrow_schema()
_PROJECTS_SCHEMA = TABLES["usersnap_projects"].arrow_schema()

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def lock_holder(exc: BaseException) -> str | None:
    """For DuckDB's lock conflict ("Could not set lock on file …: Conflicting lock is held in PROGRAM (PID n)"),
    the holder as " (PROGRAM, PID n)" or ""; None for any other error (even one whose path says "lock")."""
    text = str(exc)
    if "Could not set lock on file" not in text and "Conflicting lock" not in text:
        return None
    holder = re.search(r"Conflicting lock is held in (.+?) \(PID (\d+)\)", text)
    return f" ({holder.group(1)}, PID {holder.group(2)})" if holder else ""


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN … COMMIT, or ROLLBACK on any error (a reader never sees half of what is inside)."""
    con.begin()
    try:
        yield con
    except BaseException:
        con.rollback()
        raise
    con.commit()


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create every table that does not exist yet (cheap; safe to call on every connection)."""
    con.execute(SCHEMA_SQL)


def connect(path: str, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection for the CLI, with the schema in place (read-only connections skip DDL)."""
    con = duckdb.connect(path, read_only=read_only)
    if not read_only:
        ensure_schema(con)
    return con


@dataclass(frozen=True)
class Unit:
    """The smallest piece of feedback written at once: one source's project on one UTC day."""

    source_id: str
    channel_name: str
    source_name: str
    project_id: str
    project_name: str | None
    day: date


@dataclass
class UnitCounts:
    items: int = 0
    data_points: int = 0
    rejected: int = 0


@dataclass
class FeedbackBatch:
    """Rows of several whole units, column by column, ready for one transaction."""

    run_id: str | None = None
    units: list[Unit] = field(default_factory=list)
    raw: dict[str, list[Any]] = field(default_factory=lambda: {n: [] for n in _RAW_SCHEMA.names})
    dps: dict[str, list[Any]] = field(default_factory=lambda: {n: [] for n in _DP_SCHEMA.names})
    turns: dict[str, list[Any]] = field(default_factory=lambda: {n: [] for n in _TURN_SCHEMA.names})
    fields: dict[str, list[Any]] = field(default_factory=lambda: {n: [] for n in _FIELD_SCHEMA.names})
    rejected: dict[str, list[Any]] = field(default_factory=lambda: {n: [] for n in _REJECTED_SCHEMA.names})
    sync: dict[str, list[Any]] = field(default_factory=lambda: {n: [] for n in _SYNC_SCHEMA.names})

    def to_arrow(self) -> dict[str, pa.Table]:
        """The queued rows as one typed Arrow table per feedback table."""
        return {
            "raw_feedback": pa.table(self.raw, schema=_RAW_SCHEMA),
            "data_points": pa.table(self.dps, schema=_DP_SCHEMA),
            "data_point_turns": pa.table(self.turns, schema=_TURN_SCHEMA),
            "data_point_fields": pa.table(self.fields, schema=_FIELD_SCHEMA),
            "rejected_items": pa.table(self.rejected, schema=_REJECTED_SCHEMA),
            "sync_state": pa.table(self.sync, schema=_SYNC_SCHEMA),
        }

    def add_unit(self, unit: Unit, items: Sequence[Any], *, fetched_at: datetime | None = None) -> UnitCounts:
        """Map a unit's items and queue their rows; malformed items become `rejected_items` rows."""
        now = fetched_at or datetime.now(UTC)
        counts = UnitCounts(items=len(items))
        seen: set[str] = set()
        self.units.append(unit)
        for item in items:
            result = map_item(item)
            if isinstance(result, DataPoint):
                problem = _unit_problem(result, unit, seen)
                if problem is not None:
                    result = Rejection(result.feedback_id, problem, raw_json(item))
            if isinstance(result, Rejection):
                self._add_rejection(unit, result, now)
                counts.rejected += 1
                continue
            seen.add(result.feedback_id)
            self._add_data_point(unit, item, result, now)
            counts.data_points += 1
        for name, value in zip(
            _SYNC_SCHEMA.names,
            (unit.source_id, unit.project_id, unit.day, counts.data_points, counts.rejected, now, self.run_id),
            strict=True,
        ):
            self.sync[name].append(value)
        return counts

    def _add_rejection(self, unit: Unit, rejection: Rejection, now: datetime) -> None:
        row = (unit.source_id, unit.project_id, unit.day, rejection.feedback_id, rejection.reason, rejection.payload)
        for name, value in zip(_REJECTED_SCHEMA.names, (*row, now), strict=True):
            self.rejected[name].append(value)

    def _add_data_point(self, unit: Unit, item: dict[str, Any], dp: DataPoint, now: datetime) -> None:
        raw_row = (
            unit.source_id,
            unit.project_id,
            unit.day,
            dp.feedback_id,
            dp.submitted_at,
            raw_json(item),
            now,
        )
        for name, value in zip(_RAW_SCHEMA.names, raw_row, strict=True):
            self.raw[name].append(value)
        dp_row = (
            unit.channel_name,
            unit.source_id,
            unit.source_name,
            unit.project_id,
            unit.project_name,
            dp.feedback_id,
            dp.feedback_number,
            dp.submitted_at,
            dp.link,
            dp.email,
            dp.status,
            dp.priority,
            list(dp.tags),
            dp.text,
            now,
            unit.day,
        )
        for name, value in zip(_DP_SCHEMA.names, dp_row, strict=True):
            self.dps[name].append(value)
        for t in dp.turns:
            for name, value in zip(
                _TURN_SCHEMA.names, (unit.source_id, dp.feedback_id, t.turn, t.label, t.text), strict=True
            ):
                self.turns[name].append(value)
        for f in dp.fields:
            for name, value in zip(
                _FIELD_SCHEMA.names,
                (unit.source_id, dp.feedback_id, f.name, f.value, f.value_type, f.origin),
                strict=True,
            ):
                self.fields[name].append(value)


def _unit_problem(dp: DataPoint, unit: Unit, seen: set[str]) -> str | None:
    """Item-level checks that need the unit: the day it was fetched for, and duplicates within it."""
    if dp.submitted_at.astimezone(UTC).date() != unit.day:
        return f"created_at {dp.submitted_at.isoformat()} is outside the requested day {unit.day.isoformat()}"
    if dp.feedback_id in seen:
        return "duplicate feedback_id within the same day"
    if dp.feedback_number is not None and not _INT64_MIN <= dp.feedback_number <= _INT64_MAX:
        return "feedback_number does not fit a 64-bit integer"
    return None


@dataclass
class WriteResult:
    units: int
    raw_rows: int
    data_points: int
    turns: int
    fields: int
    rejected: int


def write_batch(con: duckdb.DuckDBPyConnection, batch: FeedbackBatch) -> WriteResult:
    """Replace every unit of the batch in one transaction (see `write_arrow`)."""
    return write_arrow(con, batch.units, batch.to_arrow())


def write_arrow(con: duckdb.DuckDBPyConnection, units: Sequence[Unit], tables: dict[str, pa.Table]) -> WriteResult:
    """Replace whole units in one transaction: delete their old rows, insert the new ones.

    `tables` maps each feedback table name to the Arrow rows of exactly these units.
    """
    unit_keys = pa.table(
        {
            "source_id": [u.source_id for u in units],
            "project_id": [u.project_id for u in units],
            "partition_date": [u.day for u in units],
        },
        schema=_UNIT_SCHEMA,
    )
    dps = tables["data_points"]
    keys = pa.table({"source_id": dps["source_id"], "feedback_id": dps["feedback_id"]}, schema=_KEY_SCHEMA)
    con.register("_units", unit_keys)
    con.register("_keys", keys)
    try:
        with transaction(con):
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
    finally:
        con.unregister("_units")
        con.unregister("_keys")
    return WriteResult(
        units=len(units),
        raw_rows=tables["raw_feedback"].num_rows,
        data_points=dps.num_rows,
        turns=tables["data_point_turns"].num_rows,
        fields=tables["data_point_fields"].num_rows,
        rejected=tables["rejected_items"].num_rows,
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


def synced_units(con: duckdb.DuckDBPyConnection, source_ids: Iterable[str]) -> set[tuple[str, str, date]]:
    """(source_id, project_id, day) of every unit written at least once."""
    ids = list(source_ids)
    if not ids:
        return set()
    rows = con.execute(
        "SELECT source_id, project_id, partition_date FROM sync_state WHERE list_contains(?, source_id)", [ids]
    ).fetchall()
    return {(r[0], r[1], r[2]) for r in rows}


def replace_usersnap_projects(
    con: duckdb.DuckDBPyConnection, source_id: str, projects: Sequence[dict[str, Any]], refreshed_at: datetime
) -> int:
    """The projects one key can see now, replacing what it could see before."""
    rows = pa.table(
        {
            "source_id": [source_id] * len(projects),
            "project_id": [str(p.get("project_id")) for p in projects],
            "name": [p.get("name") for p in projects],
            "feedback_count": [_int_or_none(p.get("feedback_count")) for p in projects],
            "open_feedback_count": [_int_or_none(p.get("open_feedback_count")) for p in projects],
            "is_live": [p.get("is_live") if isinstance(p.get("is_live"), bool) else None for p in projects],
            "created_at": [parse_created_at(p.get("created_at")) for p in projects],
            "refreshed_at": [refreshed_at] * len(projects),
        },
        schema=_PROJECTS_SCHEMA,
    )
    with transaction(con):
        con.execute("DELETE FROM usersnap_projects WHERE source_id = ?", [source_id])
        con.register("_projects", rows)
        con.execute("INSERT INTO usersnap_projects BY NAME SELECT * FROM _projects")
        con.unregister("_projects")
    return rows.num_rows


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
