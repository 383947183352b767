"""The Dagster internals this project must touch, in one place.

Dagster 1.13 has no public way to (1) link a per-partition asset check result to the materialization it
checked, or (2) free the pool slots of a run whose process died. Both are used through this module
only, and `usersnap_channels_tests/defs/test_compat.py` fails loudly when an upgrade moves them.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

try:  # not a public class in 1.13
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationTargetMaterializationData as _TargetData,
    )
except ImportError:  # pragma: no cover - a newer Dagster moved it: results stay valid, only unlinked
    _TargetData = None

TARGET_MATERIALIZATION_LINKS = _TargetData is not None


def target_materializations(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partitions: Sequence[str]
) -> dict[str, object]:
    """The latest materialization of each of `asset_key`'s `partitions`, as check evaluations' targets: Dagster
    shows a per-partition result as current only while it points at that materialization. Missing partitions
    (never materialized) are left out.

    One event-log query in the usual case (a check right after its import, every partition just
    materialized): the newest `len(partitions)` records, newest first, where a partition's first record is
    its latest. Older pages are read only for partitions not seen yet (a check launched alone)."""
    if _TargetData is None or not partitions:
        return {}
    wanted, found = set(partitions), {}
    records_filter = dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=sorted(wanted))
    cursor = None
    while len(found) < len(wanted):
        page = instance.fetch_materializations(records_filter, limit=len(wanted), cursor=cursor)
        for record in page.records:
            partition = record.partition_key
            if partition in wanted and partition not in found:
                found[partition] = _TargetData(
                    storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
                )
        if not page.has_more:
            break
        cursor = page.cursor
    return found


def target_materialization(instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition: str) -> object | None:
    """The latest materialization of one partition (see `target_materializations`)."""
    return target_materializations(instance, asset_key, [partition]).get(partition)


def free_pool_slots(instance: dg.DagsterInstance, run_id: str) -> bool:
    """Free the concurrency-pool slots a dead run still holds; False when the storage has no pools."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return False
    storage.free_concurrency_slots_for_run(run_id)
    return True
