"""The Dagster internals this project must touch, in one place.

Dagster 1.13 has no public way to (1) link a per-partition asset check result to the materialization it
checked, or (2) free the pool slots of a run whose process died. Both are used through this module
only, and `usersnap_channels_tests/defs/test_compat.py` fails loudly when an upgrade moves them.
"""

from __future__ import annotations

import dagster as dg

try:  # not a public class in 1.13
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationTargetMaterializationData as _TargetData,
    )
except ImportError:  # pragma: no cover - a newer Dagster moved it: results stay valid, only unlinked
    _TargetData = None

TARGET_MATERIALIZATION_LINKS = _TargetData is not None


def target_materialization(instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition: str) -> object | None:
    """The latest materialization of `asset_key`'s partition, as a check evaluation's target: Dagster shows
    a per-partition result as current only while it points at that materialization."""
    if _TargetData is None:
        return None
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition]), limit=1
    ).records
    if not records:
        return None
    record = records[0]
    return _TargetData(storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp)


def free_pool_slots(instance: dg.DagsterInstance, run_id: str) -> bool:
    """Free the concurrency-pool slots a dead run still holds; False when the storage has no pools."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return False
    storage.free_concurrency_slots_for_run(run_id)
    return True
