"""What every DuckDB-writing asset shares: the writers' pool and the tables' metadata in the UI."""

from __future__ import annotations

from datetime import UTC, date, timedelta

import dagster as dg
import duckdb

from usersnap_channels.warehouse.schema import TABLES

#: Dagster concurrency pool of every step that writes DuckDB: one writer at a time (limit in dagster.yaml).
DUCKDB_POOL = "duckdb"


#: What every asset's definition metadata says about its storage (the UI's storage badge and lineage).
STORAGE_KIND = "duckdb"


def table_metadata(name: str | None, *satellites: str) -> dict[str, object]:
    """Column schema, table name and grain of an asset's table, and `columns/<table>` for every other table
    it owns. The other tables ride on the asset rather than being assets: each partitioned asset costs
    one event per partition per run, which a 6-month backfill pays hundreds of times over."""
    metadata: dict[str, object] = {"dagster/storage_kind": STORAGE_KIND}
    if name is None:  # an asset that reads DuckDB but writes no table (the report)
        return metadata
    table = TABLES[name]
    metadata.update(
        {
            "dagster/column_schema": table.dagster_schema(),
            "dagster/table_name": f"main.{name}",
            "grain": f"one row per {table.grain}",
        }
    )
    if satellites:
        metadata["tables"] = ", ".join((name, *satellites))
        for other in satellites:
            metadata[f"columns/{other}"] = TABLES[other].dagster_schema()
    return metadata


def table_row_counts(con: duckdb.DuckDBPyConnection, tables: tuple[str, ...]) -> dict[str, int]:
    """`rows/<table>`: every row each table holds now, for materialization metadata (one cheap scan)."""
    query = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in tables)
    return {f"rows/{name}": int(n) for name, n in con.execute(query).fetchall()}


def partition_days(context: dg.AssetExecutionContext) -> tuple[date, date]:
    """First and last UTC day of the partitions this step runs for (one day, or a single-run range)."""
    window = context.partition_time_window
    return window.start.astimezone(UTC).date(), (window.end.astimezone(UTC) - timedelta(microseconds=1)).date()
