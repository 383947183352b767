"""What the sync sensor decides, as pure functions of what a tick read: no HTTP, no DuckDB, no Dagster.

A tick is three phases, each a function of data, so each can be tested with plain values:

1. `plan_polls`: ONE backfill run for every source with days of its window never imported; ONE
   `filter/count` (yesterday + today) per picked project of every other connected source;
2. `plan_splits`: a project whose Usersnap total differs from DuckDB's costs a second count (today alone)
   to tell which day changed, unless the cursor already knows today's share of that same total;
3. `plan_runs`: the (project, day) units that differ and are not already covered become ONE sync run.

Run keys are derived from what a run is for (sources, days, Usersnap counts, attempt) and the `Cursor`
remembers what was requested, so a tick never launches a duplicate, and a run that ended without closing
its gap is retried at most `MAX_ATTEMPTS` times with backoff. The cursor is typed (version 2); the JSON
the sensor wrote before (version 1: dicts keyed by `backfill|<source>` strings) is read and converted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from usersnap_channels.ingest.plan import plan_units
from usersnap_channels.partitions import PARTITIONS_START, day_bounds, partition_key
from usersnap_channels.usersnap.counts import CountTask
from usersnap_channels.warehouse.feedback import UnitKey
from usersnap_channels.warehouse.registry import Source

#: A requested run that has not shown up in the instance after this long counts as dropped.
LAUNCH_GRACE_S = 600
#: A run that ended without closing its gap is requested again after 15, then 30 minutes; after
#: MAX_ATTEMPTS the sensor waits for the counts to change (or the daily schedule, or `sync`).
RETRY_BACKOFF_S = 900
MAX_ATTEMPTS = 3

BACKFILL_TRIGGER = "sensor-backfill"
SYNC_TRIGGER = "sensor-sync"


# -- what a tick knows -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tick:
    """When a tick runs: the moment (epoch seconds, for backoff and grace) and the UTC day it polls."""

    now: float
    today: date

    @classmethod
    def at(cls, moment: datetime) -> Tick:
        moment = moment.astimezone(UTC)
        return cls(now=moment.timestamp(), today=moment.date())

    @property
    def yesterday(self) -> date:
        return self.today - timedelta(days=1)


@dataclass
class Snapshot:
    """What a tick needs from DuckDB, read in one go: connected sources, the units imported at least once,
    and the (data points, rejected items) held per unit of yesterday and today."""

    sources: list[Source]
    synced: set[UnitKey]
    held: dict[UnitKey, tuple[int, int]]

    def held_on(self, source_id: str, project_id: str, day: date) -> int:
        """Items DuckDB accounts for in one unit (data points + rejected), what Usersnap's count is compared to."""
        return sum(self.held.get(UnitKey(source_id, project_id, day), (0, 0)))


class RunPhase(StrEnum):
    """Where the run launched for a request is. A run key absent from `RunStates`: not launched (yet)."""

    ACTIVE = "active"
    FINISHED = "finished"


#: The phase of the run behind each run key the cursor remembers (the sensor reads them from the instance).
RunStates = Mapping[str, RunPhase]


# -- the cursor --------------------------------------------------------------------------------------


class Requested(BaseModel):
    """A run the sensor requested: its key (also the run's REQUEST_TAG), when, and which attempt."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    run_key: str
    requested_at: float
    attempts: int = Field(1, ge=1)


class BackfillRequest(Requested):
    """A backfill of one source, for the missing units it saw (a change means progress or new gaps)."""

    source_id: str
    first_missing: date
    missing: int


class UnitRequest(Requested):
    """A sync of one (project, day) unit, for the Usersnap count it saw."""

    source_id: str
    project_id: str
    day: date
    count: int

    @property
    def unit(self) -> UnitKey:
        return UnitKey(self.source_id, self.project_id, self.day)


class ProjectCount(BaseModel):
    """Usersnap's count of a project for yesterday + today, and today's share once a difference made us
    ask, so a gap still being imported is not split again."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    source_id: str
    project_id: str
    today: date
    total: int
    today_share: int | None = None


class Cursor(BaseModel):
    """The state carried from tick to tick (version 2). `load` also reads version 1."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    version: Literal[2] = 2
    backfills: tuple[BackfillRequest, ...] = ()
    units: tuple[UnitRequest, ...] = ()
    counts: tuple[ProjectCount, ...] = ()

    @classmethod
    def load(cls, raw: str | None) -> Cursor:
        """The cursor in `raw`: version 2, or version 1 converted; unreadable or empty → a fresh cursor."""
        try:
            doc = json.loads(raw) if raw else {}
        except ValueError:
            return cls()
        if not isinstance(doc, dict):
            return cls()
        if "version" not in doc:
            return from_v1(doc)
        try:
            return cls.model_validate(doc)
        except ValidationError:
            return cls()

    def dump(self) -> str:
        return self.model_dump_json()

    @property
    def requests(self) -> dict[str | UnitKey, Requested]:
        """Every pending request: backfills by source id, unit syncs by unit."""
        return {**{r.source_id: r for r in self.backfills}, **{r.unit: r for r in self.units}}

    def run_keys(self) -> set[str]:
        """The runs whose phase the next plan needs."""
        return {r.run_key for r in (*self.backfills, *self.units)}


def from_v1(doc: Mapping[str, Any]) -> Cursor:
    """Convert the cursor the sensor wrote before version 2: `requests` keyed `backfill|<source>` or
    `unit|<source>|<project>|<day>` with `sig`/`key`/`at`/`attempts`, `counts` keyed `<source>|<project>`
    with `days`/`total`/`today`. Run keys are kept, so a run still in flight is recognised and not requested
    again; an entry that does not parse is dropped (its run key is derived the same way again, so Dagster
    still drops a duplicate request)."""
    backfills: list[BackfillRequest] = []
    units: list[UnitRequest] = []
    counts: list[ProjectCount] = []
    for scope, entry in _items(doc.get("requests")):
        kind, *ids = scope.split("|")
        try:
            mark = {"run_key": entry["key"], "requested_at": entry.get("at", 0), "attempts": entry.get("attempts", 1)}
            if kind == "backfill" and len(ids) == 1:
                first, missing = entry["sig"]
                backfills.append(BackfillRequest(source_id=ids[0], first_missing=first, missing=missing, **mark))
            elif kind == "unit" and len(ids) == 3:
                source_id, project_id, day = ids
                units.append(
                    UnitRequest(source_id=source_id, project_id=project_id, day=day, count=entry["sig"], **mark)
                )
        except (KeyError, TypeError, ValueError):  # pydantic's ValidationError is a ValueError
            continue
    for name, entry in _items(doc.get("counts")):
        source_id, _, project_id = name.partition("|")
        try:
            counts.append(
                ProjectCount(
                    source_id=source_id,
                    project_id=project_id,
                    today=entry["days"][1],
                    total=entry["total"],
                    today_share=entry.get("today"),
                )
            )
        except (KeyError, IndexError, TypeError, ValueError):
            continue
    return Cursor(backfills=tuple(backfills), units=tuple(units), counts=tuple(counts))


def _items(value: Any) -> list[tuple[str, dict[str, Any]]]:
    """The (key, entry) pairs of a version-1 mapping whose entries are objects."""
    if not isinstance(value, dict):
        return []
    return [(str(k), v) for k, v in value.items() if isinstance(v, dict)]


# -- covered, retried or new -------------------------------------------------------------------------


def is_active(request: Requested, states: RunStates, now: float) -> bool:
    """Whether the request's run is queued or running; a run not in the instance yet counts as active for
    LAUNCH_GRACE_S (the daemon launches right after the tick)."""
    phase = states.get(request.run_key)
    if phase is None:
        return now - request.requested_at < LAUNCH_GRACE_S
    return phase is RunPhase.ACTIVE


def next_attempt(
    previous: Requested | None, same: bool, states: RunStates, now: float, *, wait_while_active: bool = False
) -> int | None:
    """The attempt number to request now, or None when the request is already covered.

    `same`: the previous request was for what is wanted now. Then it is covered while its run is active;
    after it ended without closing the gap, retried with backoff up to MAX_ATTEMPTS. Otherwise (e.g. more
    items) it is requested at once, unless `wait_while_active` (a backfill in progress changes what it is
    for as it writes)."""
    if previous is None:
        return 1
    if not same:
        return None if wait_while_active and is_active(previous, states, now) else 1
    if is_active(previous, states, now):
        return None
    if previous.attempts >= MAX_ATTEMPTS or now - previous.requested_at < RETRY_BACKOFF_S * previous.attempts:
        return None
    return previous.attempts + 1


# -- phase 1: backfills, and the counts of every other source ----------------------------------------


@dataclass(frozen=True)
class PlannedRun:
    """A run to request (the sensor turns it into a RunRequest of the import job), and the line it logs."""

    run_key: str
    source_ids: tuple[str, ...]
    first: date
    last: date
    trigger: str
    note: str


@dataclass(frozen=True)
class PollPlan:
    """Phase 1: the backfill runs, the backfill requests the next cursor keeps, the counts to make."""

    backfills: tuple[PlannedRun, ...]
    requested: tuple[BackfillRequest, ...]
    polls: tuple[CountTask, ...]
    polled_sources: int


def plan_polls(snapshot: Snapshot, cursor: Cursor, states: RunStates, tick: Tick) -> PollPlan:
    """A backfill for each source with missing days; sources being backfilled are not polled (their run
    also imports today), every other source gets one count per picked project since yesterday."""
    previous = {r.source_id: r for r in cursor.backfills}
    runs: list[PlannedRun] = []
    requested: list[BackfillRequest] = []
    polled: list[Source] = []
    for source in snapshot.sources:
        entry, run, busy = plan_backfill(source, snapshot.synced, previous.get(source.source_id), states, tick)
        requested += [entry] if entry is not None else []
        runs += [run] if run is not None else []
        if not busy:
            polled.append(source)
    start, end = day_bounds(tick.yesterday)[0], day_bounds(tick.today)[1]
    polls = tuple(CountTask(s.source_id, p.project_id, start, end) for s in polled for p in s.projects)
    return PollPlan(tuple(runs), tuple(requested), polls, len(polled))


def plan_backfill(
    source: Source, synced: set[UnitKey], previous: BackfillRequest | None, states: RunStates, tick: Tick
) -> tuple[BackfillRequest | None, PlannedRun | None, bool]:
    """(the request the next cursor keeps, a run to request, whether the source is busy) for one source:
    every day of its window up to the day before yesterday imported at least once, else one run over the
    missing range to today. A backfill given up on after MAX_ATTEMPTS leaves the source polled like any
    other, so new feedback still flows."""
    last = tick.today - timedelta(days=2)
    missing = plan_units(
        [source], max(source.window_start, PARTITIONS_START), last, today=tick.today, already_synced=synced
    )
    if not missing:  # still importing today/yesterday?
        active = previous is not None and is_active(previous, states, tick.now)
        return (previous if active else None), None, active
    first_missing = min(u.day for u in missing)
    same = previous is not None and (previous.first_missing, previous.missing) == (first_missing, len(missing))
    attempt = next_attempt(previous, same, states, tick.now, wait_while_active=True)
    if attempt is None and previous is not None:
        return previous, None, is_active(previous, states, tick.now)
    attempt = attempt or 1
    key = f"usersnap-backfill:{source.source_id}:{partition_key(first_missing)}..{partition_key(tick.today)}:"
    key += f"{len(missing)}:{attempt}"
    request = BackfillRequest(
        source_id=source.source_id,
        first_missing=first_missing,
        missing=len(missing),
        run_key=key,
        requested_at=tick.now,
        attempts=attempt,
    )
    note = (
        f"Backfill of {source.label}: {len(missing)} (project, day) unit(s) missing from "
        f"{first_missing.isoformat()}; requested {first_missing.isoformat()}..{tick.today.isoformat()} as one run"
    )
    return request, PlannedRun(key, (source.source_id,), first_missing, tick.today, BACKFILL_TRIGGER, note), True


# -- phase 2: which day changed ----------------------------------------------------------------------


@dataclass(frozen=True)
class SplitPlan:
    """Phase 2: every project counted this tick (today's share when known) and the second counts to make."""

    counts: tuple[ProjectCount, ...]
    splits: tuple[CountTask, ...]

    def with_shares(self, split_counts: Mapping[int, int]) -> tuple[ProjectCount, ...]:
        """The counts with today's shares the second calls returned (by index in `splits`); a failed call
        leaves the share unknown, and the project is split again next tick."""
        shares = {(t.source_id, t.project_id): split_counts[i] for i, t in enumerate(self.splits) if i in split_counts}
        return tuple(
            c.model_copy(update={"today_share": shares[(c.source_id, c.project_id)]})
            if (c.source_id, c.project_id) in shares
            else c
            for c in self.counts
        )


def plan_splits(
    polls: Sequence[CountTask], first_counts: Mapping[int, int], snapshot: Snapshot, cursor: Cursor, tick: Tick
) -> SplitPlan:
    """`first_counts`: Usersnap's totals by index in `polls` (a failed call is absent). A project whose total
    differs from what DuckDB holds needs today's share; the cursor's is reused while the total is unchanged."""
    remembered = {(c.source_id, c.project_id): c for c in cursor.counts}
    counts: list[ProjectCount] = []
    splits: list[CountTask] = []
    for index, task in enumerate(polls):
        if index not in first_counts:
            continue
        total = first_counts[index]
        before = remembered.get((task.source_id, task.project_id))
        known = before is not None and before.today == tick.today and before.total == total
        share = before.today_share if known and before is not None else None
        counts.append(
            ProjectCount(
                source_id=task.source_id, project_id=task.project_id, today=tick.today, total=total, today_share=share
            )
        )
        if share is None and total != _held_both_days(snapshot, task.source_id, task.project_id, tick):
            splits.append(CountTask(task.source_id, task.project_id, *day_bounds(tick.today)))
    return SplitPlan(tuple(counts), tuple(splits))


def _held_both_days(snapshot: Snapshot, source_id: str, project_id: str, tick: Tick) -> int:
    return sum(snapshot.held_on(source_id, project_id, day) for day in (tick.yesterday, tick.today))


# -- phase 3: one sync run ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RunPlan:
    """Phase 3: the sync run (if any), the unit requests the next cursor keeps, how many units differ."""

    run: PlannedRun | None
    requested: tuple[UnitRequest, ...]
    differing_units: int


def plan_runs(
    snapshot: Snapshot,
    counts: Iterable[ProjectCount],
    states: RunStates,
    cursor: Cursor,
    tick: Tick,
    *,
    unpolled: Iterable[str] = (),
) -> RunPlan:
    """One run over today (or yesterday..today) for every unit whose Usersnap count differs from DuckDB's
    and is not covered by a request in flight. Units of `unpolled` sources (a count failed this tick) keep
    their pending requests, so they are neither forgotten nor requested again."""
    previous = {r.unit: r for r in cursor.units}
    wanted: list[tuple[UnitKey, int, int]] = []  # (unit, Usersnap count, attempt)
    kept: dict[UnitKey, UnitRequest] = {}
    differing = 0
    for unit, count in differing_units(snapshot, counts, tick):
        differing += 1
        entry = previous.get(unit)
        attempt = next_attempt(entry, entry is not None and entry.count == count, states, tick.now)
        if attempt is None and entry is not None:
            kept[unit] = entry
        else:
            wanted.append((unit, count, attempt or 1))
    skipped = set(unpolled)
    for entry in cursor.units:
        if entry.source_id in skipped and entry.day >= tick.yesterday:
            kept.setdefault(entry.unit, entry)
    run, requested = sync_run(wanted, tick)
    kept.update((r.unit, r) for r in requested)
    return RunPlan(run, tuple(kept.values()), differing)


def differing_units(snapshot: Snapshot, counts: Iterable[ProjectCount], tick: Tick) -> list[tuple[UnitKey, int]]:
    """(unit, Usersnap's count) of every unit of yesterday or today whose count differs from DuckDB's, for
    the projects whose total differs and whose today's share is known."""
    found: list[tuple[UnitKey, int]] = []
    for c in counts:
        if c.today_share is None or c.total == _held_both_days(snapshot, c.source_id, c.project_id, tick):
            continue
        for day, count in ((tick.yesterday, c.total - c.today_share), (tick.today, c.today_share)):
            if count != snapshot.held_on(c.source_id, c.project_id, day):
                found.append((UnitKey(c.source_id, c.project_id, day), count))
    return found


def sync_run(wanted: Sequence[tuple[UnitKey, int, int]], tick: Tick) -> tuple[PlannedRun | None, list[UnitRequest]]:
    """ONE run for all wanted (unit, count, attempt) over first day..today, keyed by what it is for."""
    if not wanted:
        return None, []
    source_ids = tuple(sorted({u.source_id for u, _, _ in wanted}))
    first = min(u.day for u, _, _ in wanted)
    digest = hashlib.sha1(
        json.dumps(sorted([u.source_id, u.project_id, partition_key(u.day), c, a] for u, c, a in wanted)).encode()
    ).hexdigest()[:16]
    key = f"usersnap-sync:{partition_key(first)}..{partition_key(tick.today)}:{digest}"
    requested = [
        UnitRequest(
            source_id=u.source_id,
            project_id=u.project_id,
            day=u.day,
            count=count,
            run_key=key,
            requested_at=tick.now,
            attempts=attempt,
        )
        for u, count, attempt in wanted
    ]
    note = (
        f"New or changed feedback in {len(wanted)} (project, day) unit(s) of {len(source_ids)} source(s); "
        f"requested {partition_key(first)}..{partition_key(tick.today)}"
    )
    return PlannedRun(key, source_ids, first, tick.today, SYNC_TRIGGER, note), requested


def next_cursor(polls: PollPlan, counts: Iterable[ProjectCount], runs: RunPlan) -> Cursor:
    """What the next tick starts from: the requests still pending and this tick's counts."""
    return Cursor(backfills=polls.requested, units=runs.requested, counts=tuple(counts))
