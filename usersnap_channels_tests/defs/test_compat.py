"""The Dagster internals behind `defs/compat.py`, exercised on a real instance: an upgrade that moves or
changes them fails here, by name, instead of silently unlinking check results or leaking pool slots."""

from __future__ import annotations

import dagster as dg

from usersnap_channels.defs import compat

DAYS = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-01-05")


@dg.asset(partitions_def=DAYS)
def daily() -> None:
    """A partitioned asset to have a materialization to point at."""


def test_a_check_result_can_still_point_at_its_partitions_latest_materialization(
    instance: dg.DagsterInstance,
) -> None:
    assert compat.TARGET_MATERIALIZATION_LINKS, "AssetCheckEvaluationTargetMaterializationData moved"
    key = dg.AssetKey("daily")
    assert compat.target_materialization(instance, key, "2026-01-02") is None  # nothing materialized yet
    first = dg.materialize([daily], instance=instance, partition_key="2026-01-02")
    second = dg.materialize([daily], instance=instance, partition_key="2026-01-02")
    dg.materialize([daily], instance=instance, partition_key="2026-01-03")
    target = compat.target_materialization(instance, key, "2026-01-02")
    assert target is not None
    assert target.run_id == second.run_id != first.run_id  # the latest one, of that partition
    record = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=["2026-01-02"]), limit=1
    ).records[0]
    assert (target.storage_id, target.timestamp) == (record.storage_id, record.timestamp)


def test_the_targets_of_many_partitions_are_each_partitions_latest_materialization(
    instance: dg.DagsterInstance,
) -> None:
    key = dg.AssetKey("daily")
    older = dg.materialize([daily], instance=instance, partition_key="2026-01-03")
    runs = [dg.materialize([daily], instance=instance, partition_key="2026-01-02") for _ in range(3)]
    # the newest records are all of 2026-01-02: 2026-01-03's latest is on an older page
    targets = compat.target_materializations(instance, key, ["2026-01-02", "2026-01-03", "2026-01-04"])
    assert sorted(targets) == ["2026-01-02", "2026-01-03"]  # 2026-01-04 was never materialized
    assert targets["2026-01-02"].run_id == runs[-1].run_id
    assert targets["2026-01-03"].run_id == older.run_id
    for partition, target in targets.items():
        record = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
        ).records[0]
        assert (target.storage_id, target.timestamp) == (record.storage_id, record.timestamp)
    assert compat.target_materializations(instance, key, []) == {}


def test_the_pool_slots_of_a_dead_run_can_still_be_freed(instance: dg.DagsterInstance) -> None:
    storage = instance.event_log_storage
    assert storage.supports_global_concurrency_limits
    storage.set_concurrency_slots("compat_pool", 1)
    claim = storage.claim_concurrency_slot("compat_pool", "dead-run", "step")
    assert claim.is_claimed
    assert storage.get_concurrency_info("compat_pool").active_slot_count == 1
    blocked = storage.claim_concurrency_slot("compat_pool", "next-run", "step")
    assert not blocked.is_claimed  # the dead run's slot blocks everyone else ...

    assert compat.free_pool_slots(instance, "dead-run") is True
    assert storage.get_concurrency_info("compat_pool").active_slot_count == 0  # ... until it is freed
    assert storage.claim_concurrency_slot("compat_pool", "next-run", "step").is_claimed


@dg.asset
def plain() -> None:
    """An unpartitioned asset for a job to run."""


def test_a_job_can_still_run_in_process_as_a_run_of_its_code_location(instance: dg.DagsterInstance) -> None:
    from dagster._core.storage.tags import REPOSITORY_LABEL_TAG

    defs = dg.Definitions(assets=[plain], jobs=[dg.define_asset_job("plain_job", selection=[plain])])
    origin = compat.remote_job_origin("plain_job")
    result = compat.execute_as_launched(
        defs.resolve_job_def("plain_job"), instance=instance, run_config={}, tags={"mine": "yes"}, origin=origin
    )
    assert result.success
    run = instance.get_run_by_id(result.run_id)
    assert run.remote_job_origin == origin and run.tags["mine"] == "yes"
    # the job page's query: by job name and the repository label Dagster stores for a run with an origin
    label = f"{compat.REPOSITORY_NAME}@{compat.LOCATION_NAME}"
    found = instance.get_runs(filters=dg.RunsFilter(job_name="plain_job", tags={REPOSITORY_LABEL_TAG: label}))
    assert [r.run_id for r in found] == [result.run_id]
    assert instance.get_latest_materialization_event(dg.AssetKey("plain")).run_id == result.run_id
