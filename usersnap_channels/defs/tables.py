"""What every DuckDB-writing asset shares: the writers' pool and the tables' metadata in the UI."""

from __future__ import annotations

from datetime import UTC, date, timedelta

import dagster as dg

from usersnap_channels.warehouse.schema import TABLES

#: Dagster concurrency pool of every step that writes DuckDB: one writer at a time (limit in dagster.yaml).
DUCKDB_POOL = "duckdb"


def table_metadata(name: str, *satellites: str) -> dict[str, object]:
    """Column schema, table name and grain of an asset's table (and the other tables it owns)."""
    table = TABLES[name]
    metadata: dict[str, object] = {
        "dagster/column_schema": table.dagster_schema(),
        "dagster/table_name": f"main.{name}",
        "grain": f"one row per {table.grain}",
    }
    if satellites:
        metadata["tables"] = ", ".join((name, *satellites))
    return metadata


def partition_days(context: dg.AssetExecutionContext) -> tuple[date, date]:
    """First and last UTC day of the partitions this step runs for (one day, or a single-run range)."""
    window = context.partition_time_window
    return window.start.astimezone(UTC).date(), (window.end.astimezone(UTC) - timedelta(microseconds=1)).date()
