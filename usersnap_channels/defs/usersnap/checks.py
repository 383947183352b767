"""Asset checks: per UTC day, DuckDB holds exactly what Usersnap counts.

`data_points_match_usersnap_count` is a *partitioned* asset check (`partitions_def` on `@asset_check`, a
preview feature in Dagster 1.13): it records one pass/fail per daily partition, so the UI shows which
days are off. It targets `data_points`, so it runs in every `feedback_import_job` run right after the
import step, over exactly the days the run imported (one run may cover a range of days: single-run
backfill), and it can be launched on its own for any partitions from the asset's Checks tab.

For every connected source, picked project and day it asks Usersnap `filter/count` for that day and
compares it with `data_points` + `rejected_items` rows of that (source, project, day): every item
Usersnap counts must be a data point or a recorded rejection. Days before a source's backfill window
are not compared (they are never imported). Inside a run whose import was limited to some sources
(`source_ids`: the sensor's and the CLI's runs), only those sources are compared; a check launched on
its own compares every connected source. Today's partition is compared as of the run's start, so feedback
arriving meanwhile is not reported as missing.
"""

import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import dagster as dg
import duckdb as ddb
from dagster_duckdb import DuckDBResource

from usersnap_channels.defs.resources import MissingCredentials, UsersnapResource
from usersnap_channels.defs.usersnap.assets import feedback_daily_partitions
from usersnap_channels.ingest.importer import authorization_error
from usersnap_channels.partitions import day_bounds, parse_partition_key, partition_key
from usersnap_channels.usersnap.client import InvalidCredentials, UsersnapClient, UsersnapError
from usersnap_channels.warehouse.registry import Source, list_sources

try:  # to link each per-partition result to the materialization it checked (not a public class in 1.13)
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationTargetMaterializationData,
    )
except ImportError:  # pragma: no cover - a newer Dagster moved it: results stay valid, only unlinked
    AssetCheckEvaluationTargetMaterializationData = None

CHECK_NAME = "data_points_match_usersnap_count"
CHECKED_ASSET = dg.AssetKey("data_points")
#: Parallel Usersnap count requests of one check run (a 6-month backfill is ~180 per project).
COUNT_WORKERS = 8

Unit = tuple[str, str, date]  # (source_id, project_id, day)


# -- counting in parallel (shared with the sensor) ---------------------------------------------------


@dataclass(frozen=True)
class CountTask:
    """One `filter/count` call: items of one source's project with start <= created_at < end."""

    source_id: str
    project_id: str
    start: datetime
    end: datetime


@dataclass
class CountOutcome:
    """Counts by task index; a source whose key fails is reported once and its other tasks are dropped."""

    counts: dict[int, int] = field(default_factory=dict)
    source_errors: dict[str, str] = field(default_factory=dict)
    task_errors: dict[int, str] = field(default_factory=dict)
    requests: int = 0


def count_many(
    tasks: Sequence[CountTask],
    sources: dict[str, Source],
    client_factory: Callable[[Source], UsersnapClient],
    *,
    workers: int = COUNT_WORKERS,
) -> CountOutcome:
    """Run the count calls on a small thread pool (one client per source and thread), so a tick over 20
    projects costs one round trip of wall time, not twenty."""
    outcome = CountOutcome()
    local = threading.local()
    clients: list[UsersnapClient] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        task = tasks[index]
        source = sources[task.source_id]
        if task.source_id in outcome.source_errors:
            return
        try:
            cache = getattr(local, "clients", None)
            if cache is None:
                cache = local.clients = {}
            if task.source_id not in cache:
                cache[task.source_id] = client_factory(source)
                with lock:
                    clients.append(cache[task.source_id])
            count = cache[task.source_id].count_feedback(task.project_id, task.start, task.end)
        except InvalidCredentials as exc:
            with lock:
                outcome.source_errors.setdefault(task.source_id, authorization_error(source, exc))
        except MissingCredentials as exc:
            with lock:
                outcome.source_errors.setdefault(task.source_id, f"Cannot sync {source.label}: {exc}")
        except UsersnapError as exc:
            with lock:
                outcome.task_errors[index] = f"{source.label}, project {task.project_id}: {exc}"
        else:
            with lock:
                outcome.counts[index] = count

    if tasks:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(tasks))), thread_name_prefix="count") as pool:
            list(pool.map(run, range(len(tasks))))
    for client in clients:
        outcome.requests += client.requests_made
        client.close()
    for index in [i for i, t in enumerate(tasks) if t.source_id in outcome.source_errors]:
        outcome.counts.pop(index, None)
        outcome.task_errors.pop(index, None)
    return outcome


def held_counts(
    con: ddb.DuckDBPyConnection, first: date, last: date, *, submitted_before: datetime | None = None
) -> dict[Unit, tuple[int, int]]:
    """(data points, rejected items) that DuckDB holds per (source, project, day) in [first, last].

    With `submitted_before`, data points submitted later are left out (so a check of today's growing
    partition compares both sides at the same moment)."""
    cutoff = submitted_before or datetime(9999, 1, 1, tzinfo=UTC)
    rows = con.execute(
        """
        SELECT source_id, project_id, partition_date, sum(dp)::BIGINT, sum(rej)::BIGINT FROM (
            SELECT source_id, project_id, partition_date, 1 AS dp, 0 AS rej FROM data_points
            WHERE partition_date BETWEEN ? AND ? AND submitted_at < ?
            UNION ALL
            SELECT source_id, project_id, partition_date, 0, 1 FROM rejected_items
            WHERE partition_date BETWEEN ? AND ?
        ) GROUP BY ALL
        """,
        [first, last, cutoff, first, last],
    ).fetchall()
    return {(r[0], r[1], r[2]): (int(r[3]), int(r[4])) for r in rows}


# -- the check ---------------------------------------------------------------------------------------


def _run_started_at(context: dg.AssetCheckExecutionContext) -> datetime:
    """When this run started: today's partition is compared as of then, so an item that arrives while
    the check runs is not reported as missing."""
    record = context.instance.get_run_record_by_id(context.op_execution_context.run_id)
    if record is not None and record.start_time:
        return datetime.fromtimestamp(record.start_time, UTC)
    return datetime.now(UTC)


def _imported_source_ids(context: dg.AssetCheckExecutionContext) -> list[str]:
    """The sources this run's import was limited to (its `source_ids`), so a run that imported one source
    is not failed by another source whose own run is still queued; empty = every connected source."""
    run_config = context.op_execution_context.run.run_config or {}
    op_config = (run_config.get("ops") or {}).get("usersnap_feedback") or {}
    return list((op_config.get("config") or {}).get("source_ids") or [])


def _target_materialization(context: dg.AssetCheckExecutionContext, key: str) -> object | None:
    """The latest `data_points` materialization of the partition: Dagster shows a per-partition result as
    current only while it points at that materialization."""
    if AssetCheckEvaluationTargetMaterializationData is None:
        return None
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=CHECKED_ASSET, asset_partitions=[key]), limit=1
    ).records
    if not records:
        return None
    record = records[0]
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
    )


@dataclass
class DayVerdict:
    """The comparison of one day over every connected source and picked project."""

    day: date
    usersnap: int = 0
    data_points: int = 0
    rejected: int = 0
    units: int = 0
    mismatches: list[dict[str, object]] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)

    @property
    def duckdb(self) -> int:
        return self.data_points + self.rejected

    @property
    def passed(self) -> bool:
        return not self.mismatches and not self.unverified

    def description(self) -> str:
        held = f"DuckDB holds {self.duckdb} ({self.data_points} data points + {self.rejected} rejected items)"
        if not self.units:
            return f"No connected source imports {self.day.isoformat()}: nothing to compare."
        if self.passed:
            day = self.day.isoformat()
            return f"Usersnap counts {self.usersnap} item(s) on {day} in {self.units} project(s); {held}."
        lines = []
        if self.mismatches:
            lines.append(f"Mismatch on {self.day.isoformat()}: Usersnap counts {self.usersnap} item(s), {held}.")
            lines += [
                f"- {m['source']}, project '{m['project']}': Usersnap {m['usersnap']}, DuckDB {m['duckdb']} "
                f"({m['data_points']} data points + {m['rejected']} rejected)"
                for m in self.mismatches
            ]
        if self.unverified:
            lines.append(f"Could not verify {len(self.unverified)} project(s) on {self.day.isoformat()}:")
            lines += [f"- {u}" for u in self.unverified]
        return "\n".join(lines)


def verify_days(
    days: Sequence[date],
    sources: Sequence[Source],
    held: dict[Unit, tuple[int, int]],
    client_factory: Callable[[Source], UsersnapClient],
    *,
    cutoff: datetime,
    workers: int = COUNT_WORKERS,
) -> tuple[list[DayVerdict], int]:
    """Compare Usersnap's counts with DuckDB for every (connected source, picked project, day in its window).

    One `filter/count` per project covers all the days at once; only a project whose total differs is
    counted again day by day, to name the days. (Errors that cancel out across days — an item moved
    from one day to another — would pass; every loss or duplicate changes the total.) Returns one
    verdict per day and the number of Usersnap requests made."""
    by_id = {s.source_id: s for s in sources}
    names = {(s.source_id, p.project_id): p.name for s in sources for p in s.projects}
    spans: list[tuple[str, str, list[date]]] = []
    for source in sources:
        covered = [d for d in days if d >= source.window_start]
        if covered:
            spans += [(source.source_id, p.project_id, covered) for p in source.projects]

    def bounds(first: date, last: date) -> tuple[datetime, datetime]:
        start, _ = day_bounds(first)
        _, end = day_bounds(last)
        return start, max(start, min(end, cutoff))

    totals = count_many(
        [CountTask(sid, pid, *bounds(covered[0], covered[-1])) for sid, pid, covered in spans],
        by_id,
        client_factory,
        workers=workers,
    )
    requests = totals.requests
    per_day: list[tuple[CountTask, int | None, str | None]] = []
    drill: list[CountTask] = []
    for index, (sid, pid, covered) in enumerate(spans):
        held_by_day = {d: sum(held.get((sid, pid, d), (0, 0))) for d in covered}
        error = totals.source_errors.get(sid) or totals.task_errors.get(index)
        if error is None and totals.counts[index] == sum(held_by_day.values()):
            per_day += [(CountTask(sid, pid, *bounds(d, d)), held_by_day[d], None) for d in covered]
        elif error is not None:
            per_day += [(CountTask(sid, pid, *bounds(d, d)), None, error) for d in covered]
        else:
            drill += [CountTask(sid, pid, *bounds(d, d)) for d in covered]
    if drill:
        detail = count_many(drill, by_id, client_factory, workers=workers)
        requests += detail.requests
        for index, task in enumerate(drill):
            error = detail.source_errors.get(task.source_id) or detail.task_errors.get(index)
            per_day.append((task, detail.counts.get(index), error))

    verdicts = {day: DayVerdict(day) for day in days}
    for task, count, error in per_day:
        source = by_id[task.source_id]
        day = task.start.date()
        verdict = verdicts[day]
        project = names[(task.source_id, task.project_id)]
        verdict.units += 1
        if error is not None or count is None:
            verdict.unverified.append(f"{source.label}, project '{project}': {error or 'not counted'}")
            continue
        dps, rejected = held.get((task.source_id, task.project_id, day), (0, 0))
        verdict.usersnap += count
        verdict.data_points += dps
        verdict.rejected += rejected
        if count != dps + rejected:
            verdict.mismatches.append(
                {
                    "source": source.label,
                    "source_id": source.source_id,
                    "project": project,
                    "project_id": task.project_id,
                    "usersnap": count,
                    "duckdb": dps + rejected,
                    "data_points": dps,
                    "rejected": rejected,
                }
            )
    return [verdicts[d] for d in days], requests


with warnings.catch_warnings():
    # Partitioned asset checks are a preview feature in 1.13; the warning would repeat on every import.
    warnings.simplefilter("ignore", dg.PreviewWarning)

    @dg.asset_check(
        asset=CHECKED_ASSET,
        name=CHECK_NAME,
        partitions_def=feedback_daily_partitions,
        description="Per UTC day: Usersnap's filter/count of every connected source's picked projects equals "
        "the day's data points plus rejected items in DuckDB. A mismatch fails with both numbers.",
    )
    def data_points_match_usersnap_count(
        context: dg.AssetCheckExecutionContext, usersnap: UsersnapResource, duckdb: DuckDBResource
    ):
        """One result per partition of the run (a single day, or every day of a single-run backfill).

        Yields `AssetCheckEvaluation`s itself, because an `AssetCheckResult` in a multi-partition run is
        recorded without a partition."""
        days = sorted(parse_partition_key(k) for k in context.op_execution_context.partition_keys)
        cutoff = _run_started_at(context)
        scope = _imported_source_ids(context)
        with duckdb.get_connection() as con:
            sources = [s for s in list_sources(con, connected_only=True) if not scope or s.source_id in scope]
            held = held_counts(con, days[0], days[-1], submitted_before=cutoff) if days else {}

        def client_factory(source: Source) -> UsersnapClient:
            return usersnap.client(source.jwt_id_env, source.jwt_secret_env)

        verdicts, requests = verify_days(days, sources, held, client_factory, cutoff=cutoff)
        failed = [v for v in verdicts if not v.passed]
        context.log.info(
            f"Compared {len(verdicts)} day(s) of {len(sources)} connected source(s) with Usersnap "
            f"({requests} count request(s)); {len(failed)} day(s) differ or could not be verified"
        )
        for verdict in verdicts:
            key = partition_key(verdict.day)
            yield dg.AssetCheckEvaluation(
                asset_key=CHECKED_ASSET,
                check_name=CHECK_NAME,
                passed=verdict.passed,
                partition=key,
                # a real difference is an ERROR; a project we could not count (rotated key, outage) a WARN
                severity=dg.AssetCheckSeverity.ERROR if verdict.mismatches else dg.AssetCheckSeverity.WARN,
                description=verdict.description(),
                metadata={
                    "usersnap_count": verdict.usersnap,
                    "duckdb_count": verdict.duckdb,
                    "data_points": verdict.data_points,
                    "rejected_items": verdict.rejected,
                    "projects_compared": verdict.units,
                    "mismatches": verdict.mismatches,
                    "unverified": verdict.unverified,
                    "compared_as_of": cutoff.isoformat(),
                    "sources_compared": [s.label for s in sources],
                },
                target_materialization_data=_target_materialization(context, key),
            )
        yield dg.Output(None, output_name="result")  # the check op's own (Nothing) output
