"""The Dagster internals this project must touch, in one place.

Dagster 1.13 has no public way to (1) link a per-partition asset check result to the materialization it
checked, (2) free the pool slots of a run whose process died, or (3) run a job in this process as a run of
its code location (`execute_in_process` records runs without an origin: the UI lists them under Runs only,
never on their job's page or the Overview timeline). All are used through this module only, and
`usersnap_channels_tests/defs/test_compat.py` fails loudly when an upgrade moves them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

if TYPE_CHECKING:
    from dagster._core.execution.job_execution_result import JobExecutionResult

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


#: The code location of workspace.yaml and `make dev`, and the repository name Dagster gives a `Definitions`.
LOCATION_NAME = "usersnap_channels"
REPOSITORY_NAME = "__repository__"


def remote_job_origin(job_name: str, workspace: Path | None = None) -> Any:
    """The origin a run of `job_name` launched from the UI has: the code location of `workspace`
    (workspace.yaml, read as the webserver reads it), else the project's location by name. The UI's job page
    finds runs by job name and the tag `.dagster/repository` (`__repository__@usersnap_channels`) Dagster
    derives from it; the Overview timeline groups runs by it and leaves out runs without one."""
    from dagster._core.remote_origin import (
        ManagedGrpcPythonEnvCodeLocationOrigin,
        RemoteJobOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    locations = WorkspaceFileTarget(paths=[str(workspace)]).create_origins() if workspace else []
    location = next((o for o in locations if o.location_name == LOCATION_NAME), None)
    if location is None:
        target = LoadableTargetOrigin(module_name="usersnap_channels.definitions")
        location = ManagedGrpcPythonEnvCodeLocationOrigin(loadable_target_origin=target, location_name=LOCATION_NAME)
    return RemoteJobOrigin(RemoteRepositoryOrigin(location, REPOSITORY_NAME), job_name)


def execute_as_launched(
    job_def: dg.JobDefinition,
    *,
    instance: dg.DagsterInstance,
    run_config: dg.RunConfig | Mapping[str, Any],
    tags: Mapping[str, str],
    origin: Any,
) -> JobExecutionResult:
    """`job_def.execute_in_process(...)` with the run recorded under `origin` (see `remote_job_origin`):
    the same in-process executor and the same events, in this process (the CLI's progress bar follows it)."""
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.definitions.run_config import convert_config_input
    from dagster._core.execution.api import create_execution_plan, execute_run

    job = job_def.as_ephemeral_job(resource_defs={}, input_values={})
    config = convert_config_input(run_config)
    plan = create_execution_plan(InMemoryJob(job), run_config=config, instance_ref=instance.get_ref())
    run = instance.create_run_for_job(
        job_def=job, execution_plan=plan, run_config=config, tags=dict(tags), remote_job_origin=origin
    )
    return execute_run(InMemoryJob(job), run, instance)
