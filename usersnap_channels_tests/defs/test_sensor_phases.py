"""The sync sensor's pure phases (`sync_plan`) with plain values: no HTTP, no DuckDB, no Dagster instance.

The version-1 cursors below are real: written by the sensor before the phases existed (commit 9866a98),
captured while `test_sensors.py` ran on 2026-12-03.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from usersnap_channels import settings
from usersnap_channels.defs.usersnap.sensors import usersnap_sync_sensor
from usersnap_channels.defs.usersnap.sync_plan import (
    LAUNCH_GRACE_S,
    MAX_ATTEMPTS,
    RETRY_BACKOFF_S,
    BackfillRequest,
    Cursor,
    ProjectCount,
    RunPhase,
    Snapshot,
    Tick,
    UnitRequest,
    is_active,
    next_attempt,
    next_cursor,
    plan_polls,
    plan_runs,
    plan_splits,
)
from usersnap_channels.partitions import day_bounds
from usersnap_channels.usersnap.counts import CountTask
from usersnap_channels.warehouse.feedback import UnitKey
from usersnap_channels.warehouse.registry import Project, Source

#: A backfill just requested (the first tick after `connect`, 3 projects, 7-day window).
V1_BACKFILL = (
    '{"counts": {}, "requests": {"backfill|src_6774227ca2be": {"at": 1796279773.47703, "attempts": 1, '
    '"key": "usersnap-backfill:src_6774227ca2be:2026-11-26..2026-12-03:18:1", "sig": ["2026-11-26", 18]}}, "v": 1}'
)
#: A sync of today just requested for one project (a new item today), the counts of all three projects.
V1_SYNC = (
    '{"counts": {"src_6774227ca2be|12e108cd-20fe-41ba-8101-807813709974": {"days": ["2026-12-02", "2026-12-03"], '
    '"today": 1, "total": 2}, "src_6774227ca2be|dc8670c8-b792-459f-a5ae-43bb7fce73d4": {"days": ["2026-12-02", '
    '"2026-12-03"], "today": null, "total": 3}, "src_6774227ca2be|fbaae4da-f6f7-4330-8a7f-d2af7eba18fd": {"days": '
    '["2026-12-02", "2026-12-03"], "today": null, "total": 0}}, "requests": {"unit|src_6774227ca2be|'
    '12e108cd-20fe-41ba-8101-807813709974|2026-12-03": {"at": 1796279776.712403, "attempts": 1, "key": '
    '"usersnap-sync:2026-12-03..2026-12-03:52f33bc2beb6ec96", "sig": 1}}, "v": 1}'
)
SRC = "src_6774227ca2be"
P1, P2, P3 = (
    "12e108cd-20fe-41ba-8101-807813709974",
    "dc8670c8-b792-459f-a5ae-43bb7fce73d4",
    "fbaae4da-f6f7-4330-8a7f-d2af7eba18fd",
)
TODAY = date(2026, 12, 3)
YESTERDAY = TODAY - timedelta(days=1)
#: One minute after V1_SYNC was written.
TICK = Tick(now=1796279776.712403 + 60, today=TODAY)


def source(source_id: str = SRC, projects: tuple[str, ...] = (P1, P2, P3), start: date = date(2026, 11, 26)) -> Source:
    return Source(
        source_id=source_id,
        channel_name="Product feedback",
        source_name=source_id,
        jwt_id_env="ID",
        jwt_secret_env="SECRET",
        backfill_window="7d",
        window_start=start,
        status="connected",
        connected_at=datetime(2026, 11, 1, tzinfo=UTC),
        disconnected_at=None,
        last_synced_at=None,
        last_error=None,
        projects=tuple(Project(p, p[:4]) for p in projects),
    )


def imported(src: Source, last: date = TODAY) -> set[UnitKey]:
    """Every unit of the source's window up to `last` imported once."""
    days = [src.window_start + timedelta(days=i) for i in range((last - src.window_start).days + 1)]
    return {UnitKey(src.source_id, p.project_id, d) for p in src.projects for d in days}


def snapshot(held: dict[tuple[str, date], int] | None = None, sources: list[Source] | None = None) -> Snapshot:
    """Fully imported sources holding `held` items per (project, day) of SRC (data points only)."""
    sources = sources if sources is not None else [source()]
    synced = set().union(*(imported(s) for s in sources))
    return Snapshot(sources, synced, {UnitKey(SRC, p, d): (n, 0) for (p, d), n in (held or {}).items()})


def unit_request(day: date = TODAY, count: int = 1, attempts: int = 1, at: float = TICK.now - 60) -> UnitRequest:
    return UnitRequest(
        source_id=SRC, project_id=P1, day=day, count=count, run_key=f"k{attempts}", requested_at=at, attempts=attempts
    )


# -- the cursor: version 1 read, version 2 written ---------------------------------------------------


def test_a_v1_sync_cursor_converts_to_typed_entries() -> None:
    cursor = Cursor.load(V1_SYNC)
    assert cursor.backfills == ()
    assert cursor.units == (
        UnitRequest(
            source_id=SRC,
            project_id=P1,
            day=TODAY,
            count=1,
            run_key="usersnap-sync:2026-12-03..2026-12-03:52f33bc2beb6ec96",
            requested_at=1796279776.712403,
            attempts=1,
        ),
    )
    assert {(c.project_id, c.today, c.total, c.today_share) for c in cursor.counts} == {
        (P1, TODAY, 2, 1),
        (P2, TODAY, 3, None),
        (P3, TODAY, 0, None),
    }
    written = json.loads(cursor.dump())
    assert written["version"] == 2 and "requests" not in written and "v" not in written
    assert Cursor.load(cursor.dump()) == cursor


def test_a_v1_backfill_cursor_converts_to_typed_entries() -> None:
    assert Cursor.load(V1_BACKFILL).backfills == (
        BackfillRequest(
            source_id=SRC,
            first_missing=date(2026, 11, 26),
            missing=18,
            run_key="usersnap-backfill:src_6774227ca2be:2026-11-26..2026-12-03:18:1",
            requested_at=1796279773.47703,
            attempts=1,
        ),
    )


def test_a_v1_sync_in_flight_is_not_requested_again() -> None:
    """The first tick after the upgrade: the v1 request's run has not finished, so no run; the remembered
    split of today is reused (no second count), and the request is carried into the v2 cursor."""
    cursor = Cursor.load(V1_SYNC)
    held = {(P1, YESTERDAY): 1, (P2, YESTERDAY): 3}  # P1's new item of today is not imported yet
    snap = snapshot(held)
    polls = plan_polls(snap, cursor, {}, TICK)
    assert polls.backfills == () and len(polls.polls) == 3
    splits = plan_splits(polls.polls, {0: 2, 1: 3, 2: 0}, snap, cursor, TICK)
    assert splits.splits == ()
    for states in ({}, {cursor.units[0].run_key: RunPhase.ACTIVE}):
        runs = plan_runs(snap, splits.with_shares({}), states, cursor, TICK)
        assert (runs.run, runs.requested, runs.differing_units) == (None, cursor.units, 1)
    assert next_cursor(polls, splits.counts, runs).units == cursor.units


def test_a_v1_backfill_in_flight_is_not_requested_again_and_its_source_not_polled() -> None:
    cursor = Cursor.load(V1_BACKFILL)
    snap = Snapshot([source()], set(), {})  # nothing imported yet
    polls = plan_polls(snap, cursor, {}, Tick(now=1796279773.47703 + 5, today=TODAY))
    assert (polls.backfills, polls.requested, polls.polls) == ((), cursor.backfills, ())
    # without the cursor the same run key is derived, so Dagster would drop the request anyway
    fresh = plan_polls(snap, Cursor(), {}, Tick(now=1796279773.47703 + 5, today=TODAY))
    assert [r.run_key for r in fresh.backfills] == [cursor.backfills[0].run_key]


def test_a_finished_v1_sync_that_left_the_gap_is_retried_after_the_backoff() -> None:
    cursor = Cursor.load(V1_SYNC)
    snap = snapshot({(P1, YESTERDAY): 1})
    later = Tick(now=cursor.units[0].requested_at + RETRY_BACKOFF_S + 1, today=TODAY)
    counts = (ProjectCount(source_id=SRC, project_id=P1, today=TODAY, total=2, today_share=1),)
    runs = plan_runs(snap, counts, {cursor.units[0].run_key: RunPhase.FINISHED}, cursor, later)
    assert runs.run is not None and runs.run.run_key != cursor.units[0].run_key
    assert [(r.unit, r.count, r.attempts) for r in runs.requested] == [(UnitKey(SRC, P1, TODAY), 1, 2)]


@pytest.mark.parametrize("raw", [None, "", "not json", "[1, 2]", '{"version": 3}', '{"version": 2, "units": 5}'])
def test_an_unreadable_cursor_starts_afresh(raw: str | None) -> None:
    assert Cursor.load(raw) == Cursor()


def test_a_v1_entry_that_does_not_parse_is_dropped_alone() -> None:
    doc = json.loads(V1_SYNC)
    doc["requests"]["unit|src_x|p|not-a-day"] = {"key": "k", "sig": 1}
    doc["requests"]["backfill|src_y"] = {"key": "k", "sig": "oops"}
    doc["requests"]["other|src_z"] = {"key": "k", "sig": 1}
    cursor = Cursor.load(json.dumps(doc))
    assert [r.source_id for r in cursor.units] == [SRC] and cursor.backfills == ()
    assert set(cursor.requests) == {UnitKey(SRC, P1, TODAY)}


# -- covered, retried or new -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "age_s", "expected"),
    [
        (RunPhase.ACTIVE, 10_000, True),
        (RunPhase.FINISHED, 1, False),
        (None, LAUNCH_GRACE_S - 1, True),  # not launched yet: the daemon launches after the tick
        (None, LAUNCH_GRACE_S + 1, False),  # dropped
    ],
)
def test_is_active(phase: RunPhase | None, age_s: float, expected: bool) -> None:
    request = unit_request(at=TICK.now - age_s)
    states = {request.run_key: phase} if phase else {}
    assert is_active(request, states, TICK.now) is expected


@pytest.mark.parametrize(
    ("attempts", "same", "phase", "age_s", "wait", "expected"),
    [
        (1, False, RunPhase.ACTIVE, 60, False, 1),  # more items: at once
        (1, False, RunPhase.ACTIVE, 60, True, None),  # a backfill in progress changes what it is for
        (1, False, RunPhase.FINISHED, 60, True, 1),
        (1, True, RunPhase.ACTIVE, 60, False, None),  # covered
        (1, True, RunPhase.FINISHED, RETRY_BACKOFF_S - 1, False, None),  # backing off
        (1, True, RunPhase.FINISHED, RETRY_BACKOFF_S + 1, False, 2),
        (2, True, RunPhase.FINISHED, RETRY_BACKOFF_S + 1, False, None),  # the backoff grows
        (2, True, RunPhase.FINISHED, 2 * RETRY_BACKOFF_S + 1, False, 3),
        (MAX_ATTEMPTS, True, RunPhase.FINISHED, 10 * RETRY_BACKOFF_S, False, None),  # given up
        (1, True, None, RETRY_BACKOFF_S + 1, False, 2),  # never launched
    ],
)
def test_next_attempt(
    attempts: int, same: bool, phase: RunPhase | None, age_s: float, wait: bool, expected: int | None
) -> None:
    previous = unit_request(attempts=attempts, at=TICK.now - age_s)
    states = {previous.run_key: phase} if phase else {}
    assert next_attempt(previous, same, states, TICK.now, wait_while_active=wait) == expected


def test_next_attempt_without_a_previous_request_is_the_first() -> None:
    assert next_attempt(None, False, {}, TICK.now) == 1


# -- phase 1: backfills and polls --------------------------------------------------------------------


def backfill(first_missing: date, missing: int, attempts: int = 1, at: float = TICK.now - 60) -> BackfillRequest:
    return BackfillRequest(
        source_id=SRC, first_missing=first_missing, missing=missing, run_key="b", requested_at=at, attempts=attempts
    )


@pytest.mark.parametrize(
    ("synced_until", "previous", "phase", "backfill_range", "polled"),
    [
        (TODAY, None, None, None, 3),  # all imported: polled, one count per project
        (None, None, None, (date(2026, 11, 26), TODAY), 0),  # nothing imported: the whole window, not polled
        (date(2026, 11, 28), None, None, (date(2026, 11, 29), TODAY), 0),  # the missing tail only
        (None, backfill(date(2026, 11, 26), 18), RunPhase.ACTIVE, None, 0),  # covered by the run in progress
        (None, backfill(date(2026, 11, 26), 30), RunPhase.ACTIVE, None, 0),  # progress while it runs: wait
        (None, backfill(date(2026, 11, 26), 30), RunPhase.FINISHED, (date(2026, 11, 26), TODAY), 0),
        (None, backfill(date(2026, 11, 26), 18, MAX_ATTEMPTS), RunPhase.FINISHED, None, 3),  # given up: polled
        (TODAY, backfill(date(2026, 11, 26), 18), RunPhase.ACTIVE, None, 0),  # still importing today
        (TODAY, backfill(date(2026, 11, 26), 18), RunPhase.FINISHED, None, 3),
    ],
)
def test_plan_polls(
    synced_until: date | None,
    previous: BackfillRequest | None,
    phase: RunPhase | None,
    backfill_range: tuple[date, date] | None,
    polled: int,
) -> None:
    src = source()
    synced = imported(src, synced_until) if synced_until else set()
    cursor = Cursor(backfills=(previous,) if previous else ())
    states = {"b": phase} if phase else {}
    plan = plan_polls(Snapshot([src], synced, {}), cursor, states, TICK)
    assert [(r.first, r.last, r.source_ids) for r in plan.backfills] == (
        [(*backfill_range, (SRC,))] if backfill_range else []
    )
    assert len(plan.polls) == polled
    assert all(t == CountTask(SRC, t.project_id, day_bounds(YESTERDAY)[0], day_bounds(TODAY)[1]) for t in plan.polls)
    if backfill_range:
        assert plan.requested[0].run_key == plan.backfills[0].run_key
        assert plan.requested[0].first_missing == backfill_range[0]


def test_plan_polls_backfills_one_source_and_polls_the_other() -> None:
    new, old = source("src_new", (P1,)), source(SRC, (P2, P3))
    snap = Snapshot([new, old], imported(old), {})
    plan = plan_polls(snap, Cursor(), {}, TICK)
    assert [r.source_ids for r in plan.backfills] == [("src_new",)]
    assert [(t.source_id, t.project_id) for t in plan.polls] == [(SRC, P2), (SRC, P3)]
    assert plan.polled_sources == 1


# -- phase 2: which day changed ----------------------------------------------------------------------

POLLS = tuple(CountTask(SRC, p, *day_bounds(YESTERDAY)) for p in (P1, P2))


def remembered(total: int, share: int | None, today: date = TODAY) -> Cursor:
    return Cursor(counts=(ProjectCount(source_id=SRC, project_id=P1, today=today, total=total, today_share=share),))


@pytest.mark.parametrize(
    ("first_counts", "cursor", "split_projects", "shares"),
    [
        ({0: 4, 1: 2}, Cursor(), [], {P1: None, P2: None}),  # DuckDB holds what Usersnap counts
        ({0: 5, 1: 2}, Cursor(), [P1], {P1: None, P2: None}),  # P1 differs: ask for today
        ({0: 5, 1: 2}, remembered(5, 2), [], {P1: 2, P2: None}),  # same total: the known split is reused
        ({0: 6, 1: 2}, remembered(5, 2), [P1], {P1: None, P2: None}),  # the total moved: ask again
        ({0: 5, 1: 2}, remembered(5, 2, YESTERDAY), [P1], {P1: None, P2: None}),  # a new day
        ({1: 3}, Cursor(), [P2], {P2: None}),  # P1's count failed: not in this tick's counts
    ],
)
def test_plan_splits(
    first_counts: dict[int, int], cursor: Cursor, split_projects: list[str], shares: dict[str, int | None]
) -> None:
    snap = snapshot({(P1, YESTERDAY): 3, (P1, TODAY): 1, (P2, YESTERDAY): 2})
    plan = plan_splits(POLLS, first_counts, snap, cursor, TICK)
    assert [t.project_id for t in plan.splits] == split_projects
    assert all((t.start, t.end) == day_bounds(TODAY) for t in plan.splits)
    assert {c.project_id: c.today_share for c in plan.counts} == shares
    assert {c.project_id: c.total for c in plan.counts} == {POLLS[i].project_id: n for i, n in first_counts.items()}


def test_with_shares_fills_only_the_answered_splits() -> None:
    snap = snapshot()
    plan = plan_splits(POLLS, {0: 5, 1: 2}, snap, Cursor(), TICK)
    assert [c.today_share for c in plan.with_shares({0: 4})] == [4, None]
    assert [c.today_share for c in plan.with_shares({})] == [None, None]


# -- phase 3: the sync run ---------------------------------------------------------------------------


def counted(project: str, total: int, share: int | None, source_id: str = SRC) -> ProjectCount:
    return ProjectCount(source_id=source_id, project_id=project, today=TODAY, total=total, today_share=share)


@pytest.mark.parametrize(
    ("counts", "expected_range", "expected_units"),
    [
        ([counted(P1, 4, 1)], None, []),  # held 3 + 1: nothing differs
        ([counted(P1, 5, 2)], (TODAY, TODAY), [(P1, TODAY, 2)]),  # a new item today
        ([counted(P1, 5, 1)], (YESTERDAY, TODAY), [(P1, YESTERDAY, 4)]),  # a late item for yesterday
        (
            [counted(P1, 6, 2), counted(P2, 1, 1)],
            (YESTERDAY, TODAY),
            [(P1, YESTERDAY, 4), (P1, TODAY, 2), (P2, TODAY, 1)],
        ),
        ([counted(P1, 5, None)], None, []),  # today's share unknown (its call failed): next tick
        ([counted(P1, 3, 0)], (TODAY, TODAY), [(P1, TODAY, 0)]),  # an item deleted in Usersnap
    ],
)
def test_plan_runs(
    counts: list[ProjectCount], expected_range: tuple[date, date] | None, expected_units: list[tuple[str, date, int]]
) -> None:
    snap = snapshot({(P1, YESTERDAY): 3, (P1, TODAY): 1})
    plan = plan_runs(snap, counts, {}, Cursor(), TICK)
    assert (None if plan.run is None else (plan.run.first, plan.run.last)) == expected_range
    assert [(r.project_id, r.day, r.count) for r in plan.requested] == expected_units
    assert plan.differing_units == len(expected_units)
    if plan.run is not None:
        assert plan.run.source_ids == (SRC,) and plan.run.trigger == "sensor-sync"
        assert {r.run_key for r in plan.requested} == {plan.run.run_key}
        assert all(r.requested_at == TICK.now and r.attempts == 1 for r in plan.requested)


@pytest.mark.parametrize(
    ("previous", "phase", "requested", "kept"),
    [
        (unit_request(count=2), RunPhase.ACTIVE, False, True),  # the same count, its run in flight
        (unit_request(count=1), RunPhase.ACTIVE, True, False),  # one more item since: requested at once
        (unit_request(count=2, at=TICK.now - RETRY_BACKOFF_S - 1), RunPhase.FINISHED, True, False),  # retry
    ],
)
def test_plan_runs_against_pending_requests(
    previous: UnitRequest, phase: RunPhase, requested: bool, kept: bool
) -> None:
    snap = snapshot({(P1, YESTERDAY): 3, (P1, TODAY): 1})
    plan = plan_runs(snap, [counted(P1, 5, 2)], {previous.run_key: phase}, Cursor(units=(previous,)), TICK)
    assert (plan.run is not None) is requested
    assert (plan.requested == (previous,)) is kept
    assert len(plan.requested) == 1 and plan.requested[0].unit == previous.unit


def test_the_sync_run_key_is_derived_from_what_it_is_for() -> None:
    snap = snapshot({(P1, YESTERDAY): 3, (P1, TODAY): 1})
    key = plan_runs(snap, [counted(P1, 5, 2)], {}, Cursor(), TICK).run
    again = plan_runs(snap, [counted(P1, 5, 2)], {}, Cursor(), Tick(TICK.now + 30, TODAY)).run
    more = plan_runs(snap, [counted(P1, 6, 3)], {}, Cursor(), TICK).run
    assert key is not None and again is not None and more is not None
    assert key.run_key == again.run_key != more.run_key


@pytest.mark.parametrize(
    ("unpolled", "day", "kept"),
    [
        ([SRC], TODAY, True),  # its count failed: the pending request is kept as it was
        ([SRC], YESTERDAY, True),
        ([SRC], YESTERDAY - timedelta(days=1), False),  # older than the polled days: dropped
        (["src_other"], TODAY, False),  # polled, and no longer differing: done
    ],
)
def test_plan_runs_keeps_the_requests_of_unpolled_sources(unpolled: list[str], day: date, kept: bool) -> None:
    pending = unit_request(day=day)
    plan = plan_runs(snapshot(), [], {}, Cursor(units=(pending,)), TICK, unpolled=unpolled)
    assert plan.run is None
    assert plan.requested == ((pending,) if kept else ())


# -- the interval -------------------------------------------------------------------------------------


def test_the_sensor_interval_comes_from_the_settings() -> None:
    assert usersnap_sync_sensor.minimum_interval_seconds == settings.load().sensor_interval_s


@pytest.mark.parametrize(("value", "expected"), [("", 180), ("60", 60)])
def test_the_interval_setting(monkeypatch: pytest.MonkeyPatch, value: str, expected: int) -> None:
    monkeypatch.setenv("USERSNAP_SENSOR_INTERVAL_S", value)
    assert settings.load().sensor_interval_s == expected
