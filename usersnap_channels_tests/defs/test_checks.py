"""The per-partition asset check against the dev server: it runs after every import, records one result per
day in the instance, and fails a day whose Usersnap count differs from DuckDB with both numbers."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import dagster as dg

from usersnap_channels.definitions import build_definitions
from usersnap_channels.defs.jobs import feedback_import_job, range_tags
from usersnap_channels.defs.usersnap.checks import CHECK_NAME, data_points_match_usersnap_count
from usersnap_channels.devserver import DevServer
from usersnap_channels.partitions import day_bounds, utc_today, window_start
from usersnap_channels.warehouse.connection import connect
from usersnap_channels_tests.conftest import add_source

CHECK_KEY = dg.AssetCheckKey(dg.AssetKey("data_points"), CHECK_NAME)


def definitions(env: dict[str, str]) -> dg.Definitions:
    """The project's definitions plus a job that runs the check alone (as "Execute check" in the UI does)."""
    check_only = dg.define_asset_job("check_only", selection=dg.AssetSelection.checks(data_points_match_usersnap_count))
    return dg.Definitions.merge(
        build_definitions(database=env["USERSNAP_CHANNELS_DB"]), dg.Definitions(jobs=[check_only])
    )


def evaluations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        e.event_specific_data.partition: e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and e.event_specific_data.asset_check_key == CHECK_KEY
    }


def test_the_check_is_defined_and_runs_after_every_import(env, instance: dg.DagsterInstance) -> None:
    # (a live instance: resolving definitions may reach the current instance's storage)
    defs = definitions(env)
    assert CHECK_KEY in defs.resolve_asset_graph().asset_check_keys
    job = defs.resolve_job_def(feedback_import_job.name)
    assert CHECK_KEY in job.asset_layer.asset_graph.asset_check_keys
    spec = next(iter(data_points_match_usersnap_count.check_specs))
    assert spec.partitions_def is not None


def test_each_day_passes_then_a_late_item_fails_its_day_with_both_numbers(
    env, instance: dg.DagsterInstance, devserver: DevServer
) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    first = window_start("7d", today)
    acme = add_source(db, devserver, "Acme", window="7d")
    defs = definitions(env)
    imported = defs.resolve_job_def(feedback_import_job.name).execute_in_process(
        instance=instance, tags=range_tags(first, today), raise_on_error=False
    )
    assert imported.success
    results = evaluations(imported)
    assert sorted(results) == [(first + timedelta(days=d)).isoformat() for d in range(8)]
    for key, evaluation in results.items():
        start, end = day_bounds(datetime.fromisoformat(key).date())
        truth = sum(len(devserver.items(p.project_id, start, end)) for p in acme.projects)
        assert evaluation.passed, evaluation.description
        assert evaluation.metadata["usersnap_count"].value == truth
        assert evaluation.metadata["duckdb_count"].value == truth
    # recorded per partition, and current (it points at the partition's latest materialization)
    infos = {i.partition_key: i for i in instance.event_log_storage.get_asset_check_partition_info([CHECK_KEY])}
    assert set(infos) == set(results) and all(i.is_current for i in infos.values())

    # an item reaches Usersnap late for a day already imported: that day, and only that day, fails
    day = today - timedelta(days=3)
    devserver.add_feedback(acme.projects[1].project_id, created_at=datetime.combine(day, time(8), tzinfo=UTC))
    checked = defs.resolve_job_def("check_only").execute_in_process(
        instance=instance, tags=range_tags(day - timedelta(days=1), day), raise_on_error=False
    )
    assert checked.success  # a failed check fails the check, not the run
    results = evaluations(checked)
    assert results[(day - timedelta(days=1)).isoformat()].passed
    failed = results[day.isoformat()]
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    usersnap, held = failed.metadata["usersnap_count"].value, failed.metadata["duckdb_count"].value
    assert usersnap == held + 1
    assert f"Usersnap counts {usersnap} item(s), DuckDB holds {held}" in failed.description
    assert f"source 'Acme' of channel 'Product feedback', project '{acme.projects[1].name}'" in failed.description
    mismatch = failed.metadata["mismatches"].value
    assert [(m["project_id"], m["usersnap"], m["duckdb"]) for m in mismatch] == [
        (acme.projects[1].project_id, mismatch[0]["duckdb"] + 1, mismatch[0]["duckdb"])
    ]

    # re-importing the day fixes it
    again = defs.resolve_job_def(feedback_import_job.name).execute_in_process(
        instance=instance, tags=range_tags(day, day), raise_on_error=False
    )
    assert again.success and evaluations(again)[day.isoformat()].passed
    con = connect(db)
    held_now = con.execute("SELECT count(*) FROM data_points WHERE partition_date = ?", [day]).fetchone()[0]
    con.close()
    assert held_now == usersnap


def test_a_day_that_cannot_be_counted_is_a_warning_naming_the_source(
    env, instance: dg.DagsterInstance, devserver: DevServer
) -> None:
    today = utc_today()
    add_source(env["USERSNAP_CHANNELS_DB"], devserver, "Globex", window="7d", projects=["Billing"])
    devserver.rotate_key("Globex")
    checked = (
        definitions(env)
        .resolve_job_def("check_only")
        .execute_in_process(instance=instance, tags=range_tags(today, today), raise_on_error=False)
    )
    assert checked.success
    evaluation = evaluations(checked)[today.isoformat()]
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert "Authorization failed for source 'Globex'" in evaluation.description
