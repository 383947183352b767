"""Turning fetched Usersnap items into the warehouse's Arrow rows (the mapping happens here, not in DuckDB code)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

from usersnap_channels.usersnap.mapping import DataPoint, Rejection, map_item, parse_created_at, raw_json
from usersnap_channels.warehouse.feedback import Unit, WriteResult, write_arrow
from usersnap_channels.warehouse.schema import TABLES

_RAW_SCHEMA = TABLES["raw_feedback"].arrow_schema()
_DP_SCHEMA = TABLES["data_points"].arrow_schema()
_TURN_SCHEMA = TABLES["data_point_turns"].arrow_schema()
_FIELD_SCHEMA = TABLES["data_point_fields"].arrow_schema()
_REJECTED_SCHEMA = TABLES["rejected_items"].arrow_schema()
_SYNC_SCHEMA = TABLES["sync_state"].arrow_schema()

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


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


def project_rows(source_id: str, projects: Sequence[dict[str, Any]], refreshed_at: datetime) -> list[dict[str, Any]]:
    """`usersnap_projects` rows, column by name, for the projects one key can see; fields of the wrong type
    become NULL. Plain rows, not Arrow: a few of them, and Arrow from Python lists imports pandas."""
    return [
        {
            "source_id": source_id,
            "project_id": str(p.get("project_id")),
            "name": p.get("name"),
            "feedback_count": _int_or_none(p.get("feedback_count")),
            "open_feedback_count": _int_or_none(p.get("open_feedback_count")),
            "is_live": p.get("is_live") if isinstance(p.get("is_live"), bool) else None,
            "created_at": parse_created_at(p.get("created_at")),
            "refreshed_at": refreshed_at,
        }
        for p in projects
    ]


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def write_batch(con: duckdb.DuckDBPyConnection, batch: FeedbackBatch) -> WriteResult:
    """Replace every unit of the batch in one transaction (see `write_arrow`)."""
    return write_arrow(con, batch.units, batch.to_arrow())
