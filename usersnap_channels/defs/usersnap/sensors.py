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

Run keys are derived from what a run is for (sources, days, Usersnap counts, attempt) and the cursor
remembers what was requested, so a tick never launches a duplicate, and a run that ended without closing
the gap is retried at most `MAX_ATTEMPTS` times with backoff. Disconnected sources are never polled. A
source whose key is refused or missing is logged, recorded in `sources.last_error` (what `status` shows)
and skipped; the other sources are polled as usual.
"""

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb as ddb
from dagster_duckdb import DuckDBResource

from usersnap_channels.defs.jobs import TRIGGER_TAG, feedback_import_job, import_config, range_tags
from usersnap_channels.defs.resources import UsersnapResource
from usersnap_channels.ingest.plan import plan_units, source_error
from usersnap_channels.partitions import PARTITIONS_START, day_bounds, partition_key
from usersnap_channels.usersnap.client import Credentials, RetryPolicy, UsersnapClient, read_credentials
from usersnap_channels.usersnap.counts import CountTask, count_many
from usersnap_channels.warehouse.connection import DatabaseBusy, open_database
from usersnap_channels.warehouse.feedback import UnitKey, held_counts, synced_units
from usersnap_channels.warehouse.registry import Source, list_sources, record_sync

INTERVAL_ENV = "USERSNAP_SENSOR_INTERVAL_S"
DEFAULT_INTERVAL_S = 180

#: The request a run was launched for (its run key), so the next tick can see whether it is still running.
REQUEST_TAG = "usersnap_channels/request"

#: A requested run that has not shown up in the instance after this long counts as dropped.
LAUNCH_GRACE_S = 600
#: A run that ended without closing its gap is requested again after 15, then 30 minutes; after
#: MAX_ATTEMPTS the sensor waits for the counts to change (or the daily schedule, or `sync`).
RETRY_BACKOFF_S = 900
MAX_ATTEMPTS = 3
#: How long a tick waits for a DuckDB file held by an import before skipping.
DB_WAIT_S = 2.0

#: A tick must stay short: few quick retries, and a rate limit is not waited out for minutes.
SENSOR_RETRY = RetryPolicy(
    max_transient=2, max_rate_limited=2, backoff_base_s=0.25, backoff_max_s=2.0, retry_after_max_s=10.0
)
SENSOR_TIMEOUT = (5.0, 15.0)

_FINISHED = frozenset({dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED})


def sensor_interval_s() -> int:
    """Seconds between ticks: $USERSNAP_SENSOR_INTERVAL_S (a positive integer), default 180."""
    raw = os.environ.get(INTERVAL_ENV, "").strip()
    try:
        value = int(raw) if raw else DEFAULT_INTERVAL_S
    except ValueError:
        return DEFAULT_INTERVAL_S
    return value if value > 0 else DEFAULT_INTERVAL_S


# -- reading DuckDB without getting in an import's way -----------------------------------------------


@dataclass
class Snapshot:
    """What a tick needs from DuckDB, read in one go."""

    sources: list[Source]
    synced: set[UnitKey]
    held: dict[UnitKey, tuple[int, int]]


def read_snapshot(path: str, first: date, last: date) -> Snapshot:
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


# -- the cursor --------------------------------------------------------------------------------------


@dataclass
class Cursor:
    """JSON state carried from tick to tick.

    `requests`: what was last requested per scope (`backfill|<source>` or `unit|<source>|<project>|<day>`):
    the signature it was for (missing days, or Usersnap's count), its run key, when, and the attempt.
    `counts`: the last Usersnap counts per `<source>|<project>`: the two days polled, their total and,
    when a difference made us ask, today's share.
    """

    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    counts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, raw: str | None) -> "Cursor":
        try:
            doc = json.loads(raw) if raw else {}
        except ValueError:
            doc = {}
        if not isinstance(doc, dict):
            doc = {}
        return cls(requests=dict(doc.get("requests") or {}), counts=dict(doc.get("counts") or {}))

    def dump(self) -> str:
        return json.dumps({"v": 1, "requests": self.requests, "counts": self.counts}, sort_keys=True)


class RunStates:
    """Whether the run launched for a request is still queued or running (one lookup per key and tick)."""

    def __init__(self, instance: dg.DagsterInstance | None, now: float) -> None:
        self._instance = instance
        self._now = now
        self._cache: dict[str, dg.DagsterRunStatus | None] = {}

    def active(self, entry: dict[str, Any]) -> bool:
        key = entry["key"]
        if key not in self._cache:
            runs = (
                self._instance.get_runs(filters=dg.RunsFilter(tags={REQUEST_TAG: key}), limit=1)
                if self._instance is not None
                else []
            )
            self._cache[key] = runs[0].status if runs else None
        status = self._cache[key]
        if status is None:  # not launched (yet): the daemon launches right after the tick
            return self._now - float(entry.get("at", 0)) < LAUNCH_GRACE_S
        return status not in _FINISHED


def next_attempt(
    entry: dict[str, Any] | None, signature: Any, states: RunStates, now: float, *, wait_while_active: bool = False
) -> int | None:
    """The attempt number to request now, or None when the request is already covered.

    Same signature: covered while its run is active; after it ended without closing the gap, retried
    with backoff up to MAX_ATTEMPTS. New signature (e.g. more items): requested at once, unless
    `wait_while_active` (a backfill in progress changes its own signature as it writes)."""
    if entry is None:
        return 1
    if entry.get("sig") != signature:
        return None if wait_while_active and states.active(entry) else 1
    if states.active(entry):
        return None
    attempts = int(entry.get("attempts", 1))
    if attempts >= MAX_ATTEMPTS or now - float(entry.get("at", 0)) < RETRY_BACKOFF_S * attempts:
        return None
    return attempts + 1


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


def _credentials(source: Source) -> Credentials:
    """The source's key from the variables it names (read in this process; never stored)."""
    return read_credentials(source.jwt_id_env, source.jwt_secret_env, where=" where the Dagster daemon runs")


def _sensor_client_factory(usersnap: UsersnapResource, by_id: dict[str, Source]):
    """Clients with the sensor's short timeouts and retries (a tick must stay well under a minute)."""

    def factory(source_id: str) -> UsersnapClient:
        credentials = _credentials(by_id[source_id])
        return UsersnapClient(usersnap.resolved_base_url(), credentials, timeout=SENSOR_TIMEOUT, retry=SENSOR_RETRY)

    return factory


def _instance(context: dg.SensorEvaluationContext) -> dg.DagsterInstance | None:
    try:
        return context.instance
    except dg.DagsterInvariantViolationError:  # a test context without an instance
        return None


def evaluate_tick(
    context: dg.SensorEvaluationContext,
    usersnap: UsersnapResource,
    database: str,
    *,
    now: datetime | None = None,
    report: TickReport | None = None,
) -> dg.SensorResult | dg.SkipReason:
    """One evaluation of the sync sensor (see the module docstring)."""
    started = time.monotonic()
    report = report if report is not None else TickReport()
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    now_s = moment.timestamp()
    today = moment.date()
    yesterday = today - timedelta(days=1)
    if not Path(database).exists():
        return dg.SkipReason(f"No channels database at {database} yet: connect a source first.")
    try:
        snap = read_snapshot(database, yesterday, today)
    except DatabaseBusy as exc:
        return dg.SkipReason(f"Skipped: {exc}; the next tick tries again.")
    cursor = Cursor.load(context.cursor)
    if not snap.sources:
        return dg.SensorResult(skip_reason="No connected source to sync.", cursor=Cursor().dump())

    states = RunStates(_instance(context), now_s)
    new_cursor = Cursor()
    run_requests: list[dg.RunRequest] = []

    # 1. Backfills: every day of a source's window up to the day before yesterday imported at least once.
    busy_sources: set[str] = set()
    floor = PARTITIONS_START
    for source in snap.sources:
        scope = f"backfill|{source.source_id}"
        entry = cursor.requests.get(scope)
        first = max(source.window_start, floor)
        missing = plan_units([source], first, today - timedelta(days=2), today=today, already_synced=snap.synced)
        if not missing:
            if entry is not None and states.active(entry):  # still importing today/yesterday
                busy_sources.add(source.source_id)
                new_cursor.requests[scope] = entry
            continue
        first_missing = min(u.day for u in missing)
        signature = [partition_key(first_missing), len(missing)]
        attempt = next_attempt(entry, signature, states, now_s, wait_while_active=True)
        if attempt is None and entry is not None:
            # covered by a run in progress (which also imports today), or given up on after
            # MAX_ATTEMPTS: then the source is polled like any other, so new feedback still flows
            new_cursor.requests[scope] = entry
            if states.active(entry):
                busy_sources.add(source.source_id)
            continue
        busy_sources.add(source.source_id)
        key = f"usersnap-backfill:{source.source_id}:{partition_key(first_missing)}..{partition_key(today)}:"
        key += f"{len(missing)}:{attempt}"
        run_requests.append(
            dg.RunRequest(
                run_key=key,
                run_config=import_config([source.source_id], only_missing=True),
                tags={**range_tags(first_missing, today), TRIGGER_TAG: "sensor-backfill", REQUEST_TAG: key},
            )
        )
        report.backfills.append(source.source_id)
        new_cursor.requests[scope] = {"sig": signature, "key": key, "at": now_s, "attempts": attempt}
        context.log.info(
            f"Backfill of {source.label}: {len(missing)} (project, day) unit(s) missing from "
            f"{first_missing.isoformat()}; requested {first_missing.isoformat()}..{today.isoformat()} as one run"
        )

    # 2. Poll: one count per picked project of every other connected source, since the start of yesterday.
    polled = [s for s in snap.sources if s.source_id not in busy_sources]
    by_id = {s.source_id: s for s in snap.sources}
    window_start, window_end = day_bounds(yesterday)[0], day_bounds(today)[1]
    totals = [CountTask(s.source_id, p.project_id, window_start, window_end) for s in polled for p in s.projects]
    factory = _sensor_client_factory(usersnap, by_id)
    first_pass = count_many(totals, factory)
    report.projects_polled = len(totals)
    report.requests += first_pass.requests

    days_key = [partition_key(yesterday), partition_key(today)]
    differing: dict[int, int] = {}  # task index -> Usersnap total, where DuckDB differs
    for index, task in enumerate(totals):
        if index not in first_pass.counts:
            continue
        total = first_pass.counts[index]
        held = sum(sum(snap.held.get((task.source_id, task.project_id, d), (0, 0))) for d in (yesterday, today))
        name = f"{task.source_id}|{task.project_id}"
        previous = cursor.counts.get(name) or {}
        remembered = previous.get("days") == days_key and previous.get("total") == total
        today_share = previous.get("today") if remembered else None
        new_cursor.counts[name] = {"days": days_key, "total": total, "today": today_share}
        if total != held:
            differing[index] = total

    # Only a project that differs costs a second request: today's share, unless the cursor knows it.
    splits = [
        CountTask(totals[i].source_id, totals[i].project_id, *day_bounds(today))
        for i in differing
        if new_cursor.counts[f"{totals[i].source_id}|{totals[i].project_id}"]["today"] is None
    ]
    second_pass = count_many(splits, factory)
    report.requests += second_pass.requests
    for index, task in enumerate(splits):
        if index in second_pass.counts:
            new_cursor.counts[f"{task.source_id}|{task.project_id}"]["today"] = second_pass.counts[index]

    wanted: list[tuple[UnitKey, int, int]] = []  # (unit, Usersnap count, attempt)
    for index, total in differing.items():
        task = totals[index]
        today_count = new_cursor.counts[f"{task.source_id}|{task.project_id}"]["today"]
        if today_count is None:  # the second call failed: try again next tick
            continue
        for day, count in ((yesterday, total - today_count), (today, today_count)):
            unit = UnitKey(task.source_id, task.project_id, day)
            if count == sum(snap.held.get(unit, (0, 0))):
                continue
            report.differing_units += 1
            scope = f"unit|{task.source_id}|{task.project_id}|{partition_key(day)}"
            entry = cursor.requests.get(scope)
            attempt = next_attempt(entry, count, states, now_s)
            if attempt is None:
                new_cursor.requests[scope] = entry or {}
            else:
                wanted.append((unit, count, attempt))

    # Units of sources we could not poll this tick keep their pending requests.
    unpolled = set(first_pass.source_errors) | {totals[i].source_id for i in first_pass.task_errors}
    for scope, entry in cursor.requests.items():
        parts = scope.split("|")
        if parts[0] == "unit" and parts[1] in unpolled and parts[3] >= partition_key(yesterday):
            new_cursor.requests.setdefault(scope, entry)

    # 3. One run for every source that differs, over today or yesterday..today.
    if wanted:
        source_ids = sorted({u[0] for u, _, _ in wanted})
        first = min(u[2] for u, _, _ in wanted)
        digest = hashlib.sha1(
            json.dumps(sorted([u[0], u[1], partition_key(u[2]), c, a] for u, c, a in wanted)).encode()
        ).hexdigest()[:16]
        key = f"usersnap-sync:{partition_key(first)}..{partition_key(today)}:{digest}"
        run_requests.append(
            dg.RunRequest(
                run_key=key,
                run_config=import_config(source_ids, only_missing=True),
                tags={**range_tags(first, today), TRIGGER_TAG: "sensor-sync", REQUEST_TAG: key},
            )
        )
        for unit, count, attempt in wanted:
            scope = f"unit|{unit[0]}|{unit[1]}|{partition_key(unit[2])}"
            new_cursor.requests[scope] = {"sig": count, "key": key, "at": now_s, "attempts": attempt}
        context.log.info(
            f"New or changed feedback in {len(wanted)} (project, day) unit(s) of {len(source_ids)} source(s); "
            f"requested {partition_key(first)}..{partition_key(today)}"
        )

    # 4. Sources whose key failed: logged, recorded for `status`, skipped.
    for index, exc in first_pass.task_errors.items():
        task = totals[index]
        context.log.warning(f"Could not poll {source_error(by_id[task.source_id], exc, task.project_id)}")
    failed = {**first_pass.source_errors, **second_pass.source_errors}
    errors = {sid: source_error(by_id[sid], exc) for sid, exc in failed.items()}
    for message in errors.values():
        context.log.warning(message)
    report.source_errors = errors
    record_source_errors(
        database, {sid: msg for sid, msg in errors.items() if by_id[sid].last_error != msg}, context.log
    )

    report.seconds = time.monotonic() - started
    summary = (
        f"Polled {report.projects_polled} project(s) of {len(polled)} source(s) with {report.requests} Usersnap "
        f"request(s) in {report.seconds:.2f}s"
    )
    context.log.info(summary)
    if run_requests:
        return dg.SensorResult(run_requests=run_requests, cursor=new_cursor.dump())
    if report.differing_units:
        verdict = f"{report.differing_units} (project, day) unit(s) differ and are already requested"
    else:
        verdict = "Nothing new"
    return dg.SensorResult(skip_reason=f"{verdict}. {summary}.", cursor=new_cursor.dump())


@dg.sensor(
    name="usersnap_sync_sensor",
    job=feedback_import_job,
    minimum_interval_seconds=sensor_interval_s(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Keeps every connected Usersnap source in sync: backfills new sources' windows, and re-imports "
    "today (and yesterday) when Usersnap's count differs from DuckDB's. One Usersnap request per project per "
    f"tick when nothing is new. Interval: ${INTERVAL_ENV} seconds (default {DEFAULT_INTERVAL_S}).",
)
def usersnap_sync_sensor(
    context: dg.SensorEvaluationContext, usersnap: UsersnapResource, duckdb: DuckDBResource
) -> dg.SensorResult | dg.SkipReason:
    return evaluate_tick(context, usersnap, duckdb.database)
