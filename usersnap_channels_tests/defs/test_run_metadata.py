"""What the UI shows per partition and per run, read back from the instance's event log and run storage:
each day's own counts on its partition, the run's totals on the run, and which DuckDB file every run and
every materialization belongs to."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, time, timedelta

import dagster as dg

from usersnap_channels.definitions import build_definitions
from usersnap_channels.defs.provenance import CHANNELS_TAG, DATABASE_KEY, SOURCES_TAG
from usersnap_channels.defs.usersnap.assets import IMPORT_FRESHNESS, RUN_TOTAL_TAGS
from usersnap_channels.devserver import DevServer
from usersnap_channels.partitions import partition_key, utc_today
from usersnap_channels_tests.conftest import add_source, run_import
from usersnap_channels_tests.helpers import query

FEEDBACK = ("raw_feedback", "data_points")


def _materialization(instance: dg.DagsterInstance, asset: str, key: str) -> dg.AssetMaterialization:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[key]), limit=1
    ).records
    assert records, (asset, key)
    return records[0].asset_materialization


def _per_day(db: str, table: str) -> dict[str, int]:
    return dict(query(db, f"SELECT partition_date::VARCHAR, count(*) FROM {table} GROUP BY 1"))


def test_each_day_of_a_multi_day_run_carries_its_own_counts(env, instance, devserver: DevServer) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    first, last = today - timedelta(days=8), today - timedelta(days=1)
    project = devserver.workspace("Acme").projects[0]
    busy = today - timedelta(days=4)  # a day with more than the others, and one rejected item
    for minute in range(12):
        devserver.add_feedback(project["project_id"], created_at=datetime.combine(busy, time(9, minute), tzinfo=UTC))
    devserver.add_malformed(
        project["project_id"], "wrong_types", created_at=datetime.combine(busy, time(10), tzinfo=UTC)
    )
    add_source(db, devserver, "Acme", window="30d")
    result = run_import(build_definitions(database=db), instance, first, last)
    assert result.success

    keys = [partition_key(first + timedelta(days=i)) for i in range(8)]
    held = {table: _per_day(db, table) for table in ("raw_feedback", "data_points", "rejected_items")}
    assert len({held["data_points"].get(k, 0) for k in keys}) > 1, "the days must differ for the test to mean much"
    totals = {"items": 0, "rows": 0, "units": 0}
    for key in keys:
        for asset in FEEDBACK:
            md = _materialization(instance, asset, key).metadata
            assert md["dagster/partition_row_count"].value == held[asset].get(key, 0), (asset, key)
            assert md["rows_written"].value == held["data_points"].get(key, 0), (asset, key)
            assert md[DATABASE_KEY].value == os.path.abspath(db)
            # the whole table's rows only on the run's last day, where the UI shows the latest materialization
            assert ("dagster/row_count" in md) == (key == keys[-1]), (asset, key)
        md = _materialization(instance, "data_points", key).metadata
        assert md["rejected_items"].value == held["rejected_items"].get(key, 0)
        assert md["items_fetched"].value == held["data_points"].get(key, 0) + held["rejected_items"].get(key, 0)
        assert md["units"].value == len(devserver.workspace("Acme").projects)
        totals["items"] += md["items_fetched"].value
        totals["rows"] += md["rows_written"].value
        totals["units"] += md["units"].value
    assert held["rejected_items"][partition_key(busy)] == 1

    # the run's totals are on the run, labelled as the run's
    tags = instance.get_run_by_id(result.run_id).tags
    assert int(tags[RUN_TOTAL_TAGS["items_fetched"]]) == totals["items"]
    assert int(tags[RUN_TOTAL_TAGS["data_points_written"]]) == totals["rows"] == sum(held["data_points"].values())
    assert int(tags[RUN_TOTAL_TAGS["units"]]) == totals["units"]
    assert tags[RUN_TOTAL_TAGS["days"]] == f"{keys[0]}..{keys[-1]}"
    assert tags[DATABASE_KEY] == os.path.abspath(db)
    assert json.loads(tags[CHANNELS_TAG]) == ["Product feedback"]
    assert json.loads(tags[SOURCES_TAG]) == ["Product feedback / Acme"]
    last_md = _materialization(instance, "data_points", keys[-1]).metadata
    assert last_md["dagster/row_count"].value == query(db, "SELECT count(*) FROM data_points")[0][0]


def test_a_day_skipped_as_already_imported_still_shows_the_rows_it_holds(env, instance, devserver: DevServer) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    first, last = today - timedelta(days=5), today - timedelta(days=3)
    add_source(db, devserver, "Acme", window="30d")
    defs = build_definitions(database=db)
    assert run_import(defs, instance, first, last).success
    again = run_import(defs, instance, first, last, only_missing=True)
    assert again.success
    held = _per_day(db, "data_points")
    for offset in range(3):
        key = partition_key(first + timedelta(days=offset))
        md = _materialization(instance, "data_points", key).metadata
        assert md["units"].value == 0 and md["rows_written"].value == 0, "nothing fetched again for an old day"
        assert md["dagster/partition_row_count"].value == held[key] > 0
    assert instance.get_run_by_id(again.run_id).tags[RUN_TOTAL_TAGS["units"]] == "0"


def test_every_asset_names_its_database_and_the_imported_data_has_a_freshness_policy(
    tmp_path, instance: dg.DagsterInstance
) -> None:
    # (a live instance: resolving definitions can otherwise reach one an earlier test disposed of)
    database = str(tmp_path / "elsewhere" / "channels.duckdb")
    defs = build_definitions(database=database)
    graph = defs.resolve_asset_graph()
    specs = {key.to_user_string(): defs.resolve_assets_def(key).specs_by_key[key] for key in graph.get_all_asset_keys()}
    assert set(specs) >= {"usersnap_projects", *FEEDBACK, "data_point_themes", "themes", "theme_trends", "theme_report"}
    for name, spec in specs.items():
        assert spec.metadata[DATABASE_KEY] == dg.MetadataValue.path(database), name
        assert spec.metadata["dagster/storage_kind"] == "duckdb", name
    for name in FEEDBACK:
        assert specs[name].freshness_policy == IMPORT_FRESHNESS
        assert graph.get(dg.AssetKey(name)).freshness_policy == IMPORT_FRESHNESS
    assert IMPORT_FRESHNESS.fail_window.to_timedelta() == timedelta(hours=26)
