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

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import dagster as dg
from dagster_duckdb import DuckDBResource

from usersnap_channels.defs.compat import target_materializations
from usersnap_channels.defs.resources import UsersnapResource
from usersnap_channels.defs.usersnap.config import imported_source_ids
from usersnap_channels.defs.usersnap.partitions import feedback_daily_partitions
from usersnap_channels.ingest.plan import source_error
from usersnap_channels.partitions import day_bounds, parse_partition_key, partition_key
from usersnap_channels.usersnap.client import UsersnapClient
from usersnap_channels.usersnap.counts import COUNT_WORKERS, CountOutcome, CountTask, count_many
from usersnap_channels.warehouse.feedback import UnitKey, held_counts
from usersnap_channels.warehouse.registry import Source, list_sources

CHECK_NAME = "data_points_match_usersnap_count"
CHECKED_ASSET = dg.AssetKey("data_points")


# -- the check ---------------------------------------------------------------------------------------


def _run_started_at(context: dg.AssetCheckExecutionContext) -> datetime:
    """When this run started: today's partition is compared as of then, so an item that arrives while
    the check runs is not reported as missing."""
    record = context.instance.get_run_record_by_id(context.op_execution_context.run_id)
    if record is not None and record.start_time:
        return datetime.fromtimestamp(record.start_time, UTC)
    return datetime.now(UTC)


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


Span = tuple[str, str, list[date]]  # (source_id, project_id, the days of its window being compared)
Measured = tuple[CountTask, int | None, str | None]  # a one-day count task, Usersnap's count, or an error


def verify_days(
    days: Sequence[date],
    sources: Sequence[Source],
    held: dict[UnitKey, tuple[int, int]],
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
    spans = [
        (s.source_id, p.project_id, covered)
        for s in sources
        if (covered := [d for d in days if d >= s.window_start])
        for p in s.projects
    ]

    def factory(source_id: str) -> UsersnapClient:
        return client_factory(by_id[source_id])

    def bounds(first: date, last: date) -> tuple[datetime, datetime]:
        start, end = day_bounds(first)[0], day_bounds(last)[1]
        return start, max(start, min(end, cutoff))

    totals = count_many([CountTask(sid, pid, *bounds(c[0], c[-1])) for sid, pid, c in spans], factory, workers=workers)
    per_day, drill = _split_totals(spans, totals, held, by_id, bounds)
    requests = totals.requests
    if drill:
        detail = count_many(drill, factory, workers=workers)
        requests += detail.requests
        for index, task in enumerate(drill):
            error = detail.source_errors.get(task.source_id) or detail.task_errors.get(index)
            message = source_error(by_id[task.source_id], error, task.project_id) if error else None
            per_day.append((task, detail.counts.get(index), message))
    return _verdicts(days, per_day, held, sources), requests


def _split_totals(
    spans: list[Span],
    totals: CountOutcome,
    held: dict[UnitKey, tuple[int, int]],
    by_id: dict[str, Source],
    bounds: Callable[[date, date], tuple[datetime, datetime]],
) -> tuple[list[Measured], list[CountTask]]:
    """Spans whose total matches are settled day by day at once; the others need a count per day."""
    per_day: list[Measured] = []
    drill: list[CountTask] = []
    for index, (sid, pid, covered) in enumerate(spans):
        held_by_day = {d: sum(held.get(UnitKey(sid, pid, d), (0, 0))) for d in covered}
        error = totals.source_errors.get(sid) or totals.task_errors.get(index)
        if error is None and totals.counts[index] == sum(held_by_day.values()):
            per_day += [(CountTask(sid, pid, *bounds(d, d)), held_by_day[d], None) for d in covered]
        elif error is not None:
            message = source_error(by_id[sid], error, pid)
            per_day += [(CountTask(sid, pid, *bounds(d, d)), None, message) for d in covered]
        else:
            drill += [CountTask(sid, pid, *bounds(d, d)) for d in covered]
    return per_day, drill


def _verdicts(
    days: Sequence[date], per_day: list[Measured], held: dict[UnitKey, tuple[int, int]], sources: Sequence[Source]
) -> list[DayVerdict]:
    """One verdict per day from the per-(project, day) counts."""
    by_id = {s.source_id: s for s in sources}
    names = {(s.source_id, p.project_id): p.name for s in sources for p in s.projects}
    verdicts = {day: DayVerdict(day) for day in days}
    for task, count, error in per_day:
        source, day = by_id[task.source_id], task.start.date()
        verdict, project = verdicts[day], names[(task.source_id, task.project_id)]
        verdict.units += 1
        if error is not None or count is None:
            verdict.unverified.append(f"{source.label}, project '{project}': {error or 'not counted'}")
            continue
        dps, rejected = held.get(UnitKey(task.source_id, task.project_id, day), (0, 0))
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
    return [verdicts[d] for d in days]


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
        scope = imported_source_ids(context.op_execution_context.run.run_config)
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
        # the materializations each day's result points at, all in one event-log query (was one per day)
        targets = target_materializations(context.instance, CHECKED_ASSET, [partition_key(v.day) for v in verdicts])
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
                target_materialization_data=targets.get(key),
            )
        yield dg.Output(None, output_name="result")  # the check op's own (Nothing) output
