"""Every DuckDB table is visible in Dagster: its columns in some asset's definition metadata, its rows counted."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from usersnap_channels.definitions import build_definitions
from usersnap_channels.devserver import DevServer
from usersnap_channels.partitions import utc_today
from usersnap_channels.warehouse import schema
from usersnap_channels_tests.conftest import add_source, run_import
from usersnap_channels_tests.helpers import query


def _specs(database: str) -> list[dg.AssetSpec]:
    defs = build_definitions(database=database)
    graph = defs.resolve_asset_graph()
    return [spec for key in graph.get_all_asset_keys() for spec in [defs.resolve_assets_def(key).specs_by_key[key]]]


def _schemas_in_metadata(specs: list[dg.AssetSpec]) -> dict[str, dg.TableSchema]:
    """Table name -> column schema, from `dagster/column_schema` (+ `dagster/table_name`) and `columns/<t>`."""
    found: dict[str, dg.TableSchema] = {}
    for spec in specs:
        md = spec.metadata
        if "dagster/column_schema" in md:
            found[str(md["dagster/table_name"]).removeprefix("main.")] = md["dagster/column_schema"]
        for key, value in md.items():
            if key.startswith("columns/"):
                found[key.removeprefix("columns/")] = value
    return found


def test_every_table_shows_its_columns_in_some_assets_metadata(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    # (a live instance: resolving definitions can otherwise reach one an earlier test disposed of)
    found = _schemas_in_metadata(_specs(str(tmp_path / "x.duckdb")))
    for table in schema.TABLES.values():
        assert table.name in found, table.name
        assert [c.name for c in found[table.name].columns] == table.column_names, table.name
        assert [c.type for c in found[table.name].columns] == [c.sql_type for c in table.columns], table.name


def test_every_asset_names_its_storage_and_table(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    # (a live instance: resolving definitions can otherwise reach one an earlier test disposed of)
    specs = _specs(str(tmp_path / "x.duckdb"))
    assert specs
    for spec in specs:
        assert spec.metadata["dagster/storage_kind"] == "duckdb", spec.key
        if spec.key.to_user_string() == "theme_report":  # writes HTML files, no table
            assert "dagster/table_name" not in spec.metadata
        else:
            name = spec.metadata["dagster/table_name"]
            assert name == f"main.{spec.key.to_user_string()}" or name.removeprefix("main.") in schema.TABLES


def test_an_import_records_the_rows_of_every_table_of_data_points(env, instance, devserver: DevServer) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    add_source(db, devserver, "Acme", window="7d")
    assert run_import(build_definitions(database=db), instance, today, today).success
    event = instance.get_latest_materialization_event(dg.AssetKey("data_points"))
    assert event is not None and event.asset_materialization is not None
    metadata = event.asset_materialization.metadata
    for table in ("data_points", "data_point_turns", "data_point_fields", "rejected_items", "sync_state"):
        held = query(db, f"SELECT count(*) FROM {table}")[0][0]
        assert metadata[f"rows/{table}"].value == held, table
    assert metadata["rows/data_points"].value > 0
