"""The ongoing sync: `usersnap_sync_sensor`, which the Dagster daemon (`dagster dev`) ticks every few minutes.

Each tick
1. reads the registry and what DuckDB holds in one short read-only connection; when an import holds the
   file the tick is skipped (a SkipReason, never a failure) and the next tick tries again;
2. requests, for every connected source with days of its backfill window not imported yet, ONE run over
   the whole missing range (single-run backfill, `only_missing`);
3. polls every other connected source: ONE Usersnap `filter/count` per picked project for the items
   created since the start of yesterday (UTC), compared with the data points + rejected items DuckDB
   holds for yesterday and today. Only a project that differs costs a second call (today alone), to tell
   which of the two days changed; the cursor keeps that split, so a gap still being imported is not
   split again;
4. requests ONE run over today (or yesterday..today) for every source that differs.

This module only does the I/O (DuckDB, the Dagster instance, Usersnap, logs); every decision is a pure
function in `sync_plan`, where run keys, retries and the cursor are explained. Disconnected sources are
never polled. A source whose key is refused or missing is logged, recorded in `sources.last_error` (what
`status` shows) and skipped; the other sources are polled as usual.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb as ddb
from dagster_duckdb import DuckDBResource

from usersnap_channels import settings
from usersnap_channels.defs.instance_env import apply_run_env
from usersnap_channels.defs.jobs import TRIGGER_TAG, feedback_import_job, import_config, range_tags
from usersnap_channels.defs.provenance import scope_tags
from usersnap_channels.defs.resources import UsersnapResource
from usersnap_channels.defs.usersnap.sync_plan import (
    RETRY_BACKOFF_S,
    Cursor,
    PlannedRun,
    RunPhase,
    Snapshot,
    Tick,
    next_cursor,
    plan_polls,
    plan_runs,
    plan_splits,
)
from usersnap_channels.ingest.plan import source_error
from usersnap_channels.usersnap.client import Credentials, RetryPolicy, UsersnapClient, read_credentials
from usersnap_channels.usersnap.counts import CountOutcome, CountTask, count_many
from usersnap_channels.warehouse.connection import DatabaseBusy, open_database
from usersnap_channels.warehouse.feedback import held_counts, synced_units
from usersnap_channels.warehouse.registry import Source, list_sources, record_sync

__all__ = ["REQUEST_TAG", "RETRY_BACKOFF_S", "Cursor", "evaluate_tick", "usersnap_sync_sensor"]

# The code server that ticks this sensor starts the run workers of its runs: they inherit these settings.
apply_run_env()

#: The sensor's interval setting (its variable and default, for the description).
_INTERVAL = settings.Settings.model_fields["sensor_interval_s"]

#: The request a run was launched for (its run key), so the next tick can see whether it is still running.
REQUEST_TAG = "usersnap_channels/request"

#: How long a tick waits for a DuckDB file held by an import before skipping.
DB_WAIT_S = 2.0

#: A tick must stay short: few quick retries, and a rate limit is not waited out for minutes.
SENSOR_RETRY = RetryPolicy(
    max_transient=2, max_rate_limited=2, backoff_base_s=0.25, backoff_max_s=2.0, retry_after_max_s=10.0
)
SENSOR_TIMEOUT = (5.0, 15.0)

_FINISHED = frozenset({dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED})


# -- reading DuckDB without getting in an import's way -----------------------------------------------


def read_snapshot(path: str, first: date, last: date) -> Snapshot:
    """Sources, imported units and held counts in one short read-only connection."""
    con = open_database(path, read_only=True, wait_s=DB_WAIT_S)
    try:
        try:
            sources = list_sources(con, connected_only=True)
        except ddb.CatalogException:  # the file exists but no source was ever connected
            return Snapshot([], set(), {})
        return Snapshot(
            sources=sources,
            synced=synced_units(con, [s.source_id for s in sources]),
            held=held_counts(con, first, last),
        )
    finally:
        con.close()


def record_source_errors(path: str, errors: dict[str, str], context_log: Any) -> None:
    """Write each source's new `last_error` in a short write; a busy file just means: next tick."""
    if not errors:
        return
    try:
        con = open_database(path, wait_s=DB_WAIT_S)
    except DatabaseBusy as exc:
        context_log.warning(f"Could not record {len(errors)} source error(s) now ({exc}); will retry next tick")
        return
    try:
        for source_id, message in errors.items():
            record_sync(con, source_id, error=message)
    finally:
        con.close()


# -- reading the Dagster instance --------------------------------------------------------------------


def read_run_states(instance: dg.DagsterInstance | None, run_keys: Iterable[str]) -> dict[str, RunPhase]:
    """The phase of the newest run tagged with each run key, in one query; keys without a run are absent."""
    keys = sorted(run_keys)
    if instance is None or not keys:
        return {}
    states: dict[str, RunPhase] = {}
    for run in instance.get_runs(filters=dg.RunsFilter(tags={REQUEST_TAG: keys})):  # newest first
        phase = RunPhase.FINISHED if run.status in _FINISHED else RunPhase.ACTIVE
        states.setdefault(run.tags[REQUEST_TAG], phase)
    return states


def _instance(context: dg.SensorEvaluationContext) -> dg.DagsterInstance | None:
    try:
        return context.instance
    except dg.DagsterInvariantViolationError:  # a test context without an instance
        return None


# -- asking Usersnap ---------------------------------------------------------------------------------


def _credentials(source: Source) -> Credentials:
    """The source's key from the variables it names (read in this process; never stored)."""
    return read_credentials(source.jwt_id_env, source.jwt_secret_env, where=" where the Dagster daemon runs")


def _sensor_client_factory(usersnap: UsersnapResource, by_id: dict[str, Source]) -> Callable[[str], UsersnapClient]:
    """Clients with the sensor's short timeouts and retries (a tick must stay well under a minute)."""

    def factory(source_id: str) -> UsersnapClient:
        credentials = _credentials(by_id[source_id])
        return UsersnapClient(usersnap.resolved_base_url(), credentials, timeout=SENSOR_TIMEOUT, retry=SENSOR_RETRY)

    return factory


# -- one tick ----------------------------------------------------------------------------------------


@dataclass
class TickReport:
    """What one tick did (also what the benchmark prints)."""

    projects_polled: int = 0
    requests: int = 0
    seconds: float = 0.0
    backfills: list[str] = field(default_factory=list)
    differing_units: int = 0
    source_errors: dict[str, str] = field(default_factory=dict)


def run_request(run: PlannedRun, database: str, by_id: dict[str, Source]) -> dg.RunRequest:
    """The import job over the run's days for its sources, tagged with its key to find it next tick, and
    with the DuckDB file and the channels and sources it imports."""
    sources = [by_id[sid] for sid in run.source_ids if sid in by_id]
    return dg.RunRequest(
        run_key=run.run_key,
        run_config=import_config(list(run.source_ids), only_missing=True),
        tags={
            **range_tags(run.first, run.last),
            TRIGGER_TAG: run.trigger,
            REQUEST_TAG: run.run_key,
            **scope_tags(database, sources),
        },
    )


def evaluate_tick(
    context: dg.SensorEvaluationContext,
    usersnap: UsersnapResource,
    database: str,
    *,
    now: datetime | None = None,
    report: TickReport | None = None,
) -> dg.SensorResult | dg.SkipReason:
    """One evaluation of the sync sensor (see the module docstring): read, plan, count, plan, count, plan."""
    started = time.monotonic()
    report = report if report is not None else TickReport()
    tick = Tick.at(now or datetime.now(UTC))
    if not Path(database).exists():
        return dg.SkipReason(f"No channels database at {database} yet: connect a source first.")
    try:
        snap = read_snapshot(database, tick.yesterday, tick.today)
    except DatabaseBusy as exc:
        return dg.SkipReason(f"Skipped: {exc}; the next tick tries again.")
    if not snap.sources:
        return dg.SensorResult(skip_reason="No connected source to sync.", cursor=Cursor().dump())
    cursor = Cursor.load(context.cursor)
    states = read_run_states(_instance(context), cursor.run_keys())
    by_id = {s.source_id: s for s in snap.sources}
    factory = _sensor_client_factory(usersnap, by_id)

    polls = plan_polls(snap, cursor, states, tick)
    first = count_many(polls.polls, factory)
    splits = plan_splits(polls.polls, first.counts, snap, cursor, tick)
    second = count_many(splits.splits, factory)
    counts = splits.with_shares(second.counts)
    unpolled = _unpolled(polls.polls, first) | _unpolled(splits.splits, second)
    runs = plan_runs(snap, counts, states, cursor, tick, unpolled=unpolled)

    planned = [*polls.backfills, *([runs.run] if runs.run else [])]
    for run in planned:
        context.log.info(run.note)
    report.backfills = [r.source_ids[0] for r in polls.backfills]
    report.projects_polled, report.requests = len(polls.polls), first.requests + second.requests
    report.differing_units = runs.differing_units
    report.source_errors = _report_errors(context, database, by_id, polls.polls, first, second)
    report.seconds = time.monotonic() - started
    summary = (
        f"Polled {report.projects_polled} project(s) of {polls.polled_sources} source(s) with {report.requests} "
        f"Usersnap request(s) in {report.seconds:.2f}s"
    )
    context.log.info(summary)
    new_cursor = next_cursor(polls, counts, runs).dump()
    if planned:
        return dg.SensorResult(run_requests=[run_request(r, database, by_id) for r in planned], cursor=new_cursor)
    if report.differing_units:
        verdict = f"{report.differing_units} (project, day) unit(s) differ and are already requested"
    else:
        verdict = "Nothing new"
    return dg.SensorResult(skip_reason=f"{verdict}. {summary}.", cursor=new_cursor)


def _unpolled(tasks: tuple[CountTask, ...], outcome: CountOutcome) -> set[str]:
    """Sources with a count that failed (their pending requests are kept, not re-decided)."""
    return set(outcome.source_errors) | {tasks[i].source_id for i in outcome.task_errors}


def _report_errors(
    context: dg.SensorEvaluationContext,
    database: str,
    by_id: dict[str, Source],
    polls: tuple[CountTask, ...],
    first: CountOutcome,
    second: CountOutcome,
) -> dict[str, str]:
    """Log failed counts; record each failing source's error for `status` (only when it changed)."""
    for index, exc in first.task_errors.items():
        task = polls[index]
        context.log.warning(f"Could not poll {source_error(by_id[task.source_id], exc, task.project_id)}")
    failed = {**first.source_errors, **second.source_errors}
    errors = {sid: source_error(by_id[sid], exc) for sid, exc in failed.items()}
    for message in errors.values():
        context.log.warning(message)
    changed = {sid: msg for sid, msg in errors.items() if by_id[sid].last_error != msg}
    record_source_errors(database, changed, context.log)
    return errors


@dg.sensor(
    name="usersnap_sync_sensor",
    job=feedback_import_job,
    minimum_interval_seconds=settings.load().sensor_interval_s,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Keeps every connected Usersnap source in sync: backfills new sources' windows, and re-imports "
    "today (and yesterday) when Usersnap's count differs from DuckDB's. One Usersnap request per project per "
    f"tick when nothing is new. Interval: ${_INTERVAL.alias} seconds (default {_INTERVAL.default}).",
)
def usersnap_sync_sensor(
    context: dg.SensorEvaluationContext, usersnap: UsersnapResource, duckdb: DuckDBResource
) -> dg.SensorResult | dg.SkipReason:
    """The daemon's entry point: one tick over the configured DuckDB file."""
    return evaluate_tick(context, usersnap, duckdb.database)
