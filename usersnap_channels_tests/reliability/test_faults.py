"""Nothing lost under network faults: real imports against the dev server's fault injection over HTTP.

Each test makes Usersnap misbehave (429 storms with both `Retry-After` forms, 5xx, truncated bodies,
dropped connections, slow answers, items created while a backfill pages) and then requires the DuckDB
tables to equal the server's ground truth exactly: the same feedback ids, no duplicates, every turn and
field, every (project, day) recorded. At most a bounded number of automatic re-runs is allowed, as the
`sync` command (or the sensor) would do after a failed run.

The faults are real; only our waits shrink: the Usersnap resource backs off in milliseconds and the
server asks for `Retry-After: 0`/`1`, so the whole file runs in well under a minute.
"""

from __future__ import annotations

import random
import threading
import time as clock
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import dagster as dg
import pytest

from usersnap_channels import jsonio
from usersnap_channels.definitions import build_definitions
from usersnap_channels.defs.resources import UsersnapResource
from usersnap_channels.devserver import DevServer
from usersnap_channels.partitions import utc_today, window_start
from usersnap_channels.usersnap.mapping import DataPoint, map_item
from usersnap_channels.warehouse.connection import connect
from usersnap_channels.warehouse.registry import Source
from usersnap_channels_tests.conftest import add_source, run_cli, run_import
from usersnap_channels_tests.helpers import query

#: Resource settings for in-process imports: same retry logic, millisecond backoff.
FAST_USERSNAP: dict[str, Any] = {"backoff_base_s": 0.01, "max_transient_retries": 6}
ACME = ["--jwt-id-env", "ACME_JWT_ID", "--jwt-secret-env", "ACME_JWT_SECRET"]
#: Days of the quick fault tests: 10 days x 3 projects stays under the import's process-pool threshold (32
#: units), so these runs fetch in threads; the 5xx test covers the worker-process path with 30 days.
FAST_DAYS = 10


# -- helpers shared with the other reliability suites ---------------------------------------------


def fast_definitions(db: str, **usersnap: Any) -> dg.Definitions:
    """The project's own assets, checks and jobs over `db`, with a Usersnap resource whose backoff is short.

    Built from `build_definitions` so the job under test is the real one (import step and its checks).
    """
    base = build_definitions(database=db)
    return dg.Definitions(
        assets=base.assets,
        asset_checks=base.asset_checks,
        jobs=base.jobs,
        resources={**(base.resources or {}), "usersnap": UsersnapResource(**{**FAST_USERSNAP, **usersnap})},
    )


def import_until_clean(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    first: date,
    last: date,
    *,
    max_runs: int = 3,
    **config: Any,
) -> list[dg.ExecuteInProcessResult]:
    """Run the range; after a failed run, re-run only what is missing (as `sync` does), at most `max_runs`."""
    results = [run_import(defs, instance, first, last, **config)]
    while not results[-1].success and len(results) < max_runs:
        results.append(run_import(defs, instance, first, last, **{**config, "only_missing": True}))
    assert results[-1].success, f"still failing after {len(results)} runs: {failure_text(results[-1])}"
    return results


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """Every step failure's message of a run (what the UI shows)."""
    messages = []
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            error = event.step_failure_data.error
            messages.append(error.message + (error.cause.message if error.cause else ""))
            user = event.step_failure_data.user_failure_data
            if user is not None and user.description:
                messages.append(user.description)
    return "\n".join(messages)


def day_range(first: date, last: date) -> tuple[datetime, datetime]:
    return datetime.combine(first, time(0), tzinfo=UTC), datetime.combine(last + timedelta(days=1), time(0), tzinfo=UTC)


def server_units(devserver: DevServer, source: Source, first: date, last: date) -> dict[tuple[str, date], list[str]]:
    """Ground truth: the feedback ids of every (project, UTC day) of the source in [first, last]."""
    units: dict[tuple[str, date], list[str]] = {}
    for project in source.projects:
        for day in (first + timedelta(days=n) for n in range((last - first).days + 1)):
            items = devserver.items(project.project_id, *day_range(day, day))
            units[(project.project_id, day)] = [item["feedback_id"] for item in items]
    return units


def assert_equals_server(db: str, devserver: DevServer, source: Source, first: date, last: date) -> int:
    """The source's rows for [first, last] equal the server's items exactly; returns how many there are.

    Checks ids and counts per (project, day) in `data_points` and `raw_feedback`, uniqueness, that every
    unit is recorded in `sync_state`, and that turns and fields equal what the mapping makes of each item.
    """
    truth = server_units(devserver, source, first, last)
    expected_ids = sorted(fid for ids in truth.values() for fid in ids)
    assert len(expected_ids) == len(set(expected_ids))
    params = [source.source_id, first, last]
    window = "source_id = ? AND partition_date BETWEEN ? AND ?"
    dp_ids = [r[0] for r in query(db, f"SELECT feedback_id FROM data_points WHERE {window} ORDER BY 1", params)]
    raw_ids = [r[0] for r in query(db, f"SELECT feedback_id FROM raw_feedback WHERE {window} ORDER BY 1", params)]
    assert len(dp_ids) == len(set(dp_ids)), f"duplicated data points: {Counter(dp_ids).most_common(3)}"
    assert len(raw_ids) == len(set(raw_ids)), f"duplicated raw items: {Counter(raw_ids).most_common(3)}"
    missing, extra = set(expected_ids) - set(dp_ids), set(dp_ids) - set(expected_ids)
    assert not missing and not extra, f"{len(missing)} missing, {len(extra)} extra data points"
    assert raw_ids == dp_ids
    per_unit = {
        (r[0], r[1]): r[2]
        for r in query(
            db, f"SELECT project_id, partition_date, count(*) FROM data_points WHERE {window} GROUP BY 1, 2", params
        )
    }
    assert {k: v for k, v in per_unit.items() if v} == {k: len(v) for k, v in truth.items() if v}
    synced_rows = query(db, f"SELECT project_id, partition_date FROM sync_state WHERE {window}", params)
    synced = {(r[0], r[1]) for r in synced_rows}
    assert synced == set(truth), f"units never recorded: {sorted(set(truth) - synced)[:5]}"
    assert query(db, f"SELECT count(*) FROM rejected_items WHERE {window}", params) == [(0,)]
    # turns and fields: exactly what the mapping makes of the server's items (a sample keeps this quick)
    sample = set(random.Random(len(expected_ids)).sample(expected_ids, min(60, len(expected_ids))))
    items = {
        item["feedback_id"]: item
        for project in source.projects
        for item in devserver.items(project.project_id, *day_range(first, last))
        if item["feedback_id"] in sample
    }
    turns = query(
        db,
        "SELECT feedback_id, turn, label, text FROM data_point_turns WHERE source_id = ? "
        "AND list_contains(?, feedback_id) ORDER BY 1, 2",
        [source.source_id, sorted(sample)],
    )
    fields = query(
        db,
        "SELECT feedback_id, name, value, value_type, origin FROM data_point_fields WHERE source_id = ? "
        "AND list_contains(?, feedback_id)",
        [source.source_id, sorted(sample)],
    )
    expected_turns, expected_fields = [], []
    for fid, item in items.items():
        dp = map_item(jsonio.loads(jsonio.dumps(item)))
        assert isinstance(dp, DataPoint)
        expected_turns += [(fid, t.turn, t.label, t.text) for t in dp.turns]
        expected_fields += [(fid, f.name, f.value, f.value_type, f.origin) for f in dp.fields]
    assert turns == sorted(expected_turns)
    assert sorted(fields) == sorted(expected_fields)
    return len(expected_ids)


def faults_seen(devserver: DevServer) -> Counter[str]:
    """How many API requests got each injected fault."""
    return Counter(r.fault for r in devserver.request_log if r.fault)


def add_busy_day(devserver: DevServer, project_id: str, day: date, n: int) -> None:
    """`n` extra items spread over one UTC day, so its unit needs several pages of 50."""
    start = datetime.combine(day, time(0, 0, 1), tzinfo=UTC)
    for i in range(n):
        devserver.add_feedback(project_id, created_at=start + timedelta(seconds=i * (86_000 // n)))


# -- the faults ---------------------------------------------------------------------------------


def test_a_429_storm_with_retry_after_in_seconds_loses_nothing(env, instance, devserver: DevServer) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    first = today - timedelta(days=FAST_DAYS - 1)
    source = add_source(db, devserver, "Acme", window="30d")
    add_busy_day(devserver, source.projects[0].project_id, today - timedelta(days=3), 120)
    devserver.set_faults(rate_429=0.3, burst_429=12, retry_after="seconds", retry_after_seconds=0, seed=1)
    results = import_until_clean(fast_definitions(db), instance, first, today, max_runs=1)
    assert len(results) == 1, "429s are waited out, they never fail a run"
    assert faults_seen(devserver)["429"] >= 30
    assert assert_equals_server(db, devserver, source, first, today) > 120  # the busy day alone has 120


def test_429_with_retry_after_as_an_http_date_is_waited_out(env, instance, devserver: DevServer) -> None:
    """The client waits until the HTTP date before asking again (one worker, so waits are measurable)."""
    db = env["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    first = today - timedelta(days=2)
    source = add_source(db, devserver, "Acme", window="7d", projects=["Web App"])
    devserver.set_faults(burst_429=2, retry_after="date", retry_after_seconds=1, seed=2)
    results = import_until_clean(fast_definitions(db), instance, first, today, max_runs=1, workers=1)
    assert len(results) == 1
    log = [r for r in devserver.request_log if r.path.endswith("/feedbacks/filter")]
    limited = [i for i, r in enumerate(log) if r.status == 429]
    assert len(limited) == 2
    for i in limited:  # the next request came no earlier than the date the server named (whole seconds)
        assert log[i + 1].at - log[i].at >= 0.9, "Retry-After (HTTP date) was not honoured"
    assert_equals_server(db, devserver, source, first, today)


def test_a_429_storm_longer_than_the_clients_patience_fails_that_day_then_the_rerun_completes(
    env, instance, devserver: DevServer
) -> None:
    """More than 30 consecutive 429s for one request: that day fails with a clear message (no endless wait),
    the other days are written, and the next run completes the window."""
    db = env["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    first = today - timedelta(days=3)
    source = add_source(db, devserver, "Acme", window="7d", projects=["Web App"])
    defs = fast_definitions(db)
    devserver.set_faults(burst_429=31, retry_after="seconds", retry_after_seconds=0)
    failed = run_import(defs, instance, first, today, workers=1)
    assert not failed.success
    message = failure_text(failed)
    assert f"day {first.isoformat()}" in message and "kept rate-limiting" in message, message
    import_until_clean(defs, instance, first, today, max_runs=1, only_missing=True)
    assert_equals_server(db, devserver, source, first, today)


def test_ten_percent_5xx_loses_nothing(env, instance, devserver: DevServer) -> None:
    """A 30-day window: large enough for the import's worker processes, whose failures cross a process boundary."""
    db = env["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    first = window_start("30d", today)
    source = add_source(db, devserver, "Acme", window="30d")
    devserver.set_faults(rate_5xx=0.10, seed=3)
    import_until_clean(fast_definitions(db), instance, first, today)
    seen = faults_seen(devserver)
    assert seen["500"] + seen["502"] + seen["503"] >= 3  # 5xx answers mid-span and mid-day, all retried
    assert_equals_server(db, devserver, source, first, today)


def test_five_percent_truncated_bodies_lose_nothing(env, instance, devserver: DevServer) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    first = today - timedelta(days=FAST_DAYS - 1)
    source = add_source(db, devserver, "Acme", window="30d")
    for offset in (2, 8):  # days of several pages: a truncated page in the middle of a day's cursor
        add_busy_day(devserver, source.projects[1].project_id, today - timedelta(days=offset), 140)
    devserver.set_faults(rate_truncated=0.05, burst_truncated=2, seed=4)
    import_until_clean(fast_definitions(db), instance, first, today)
    assert faults_seen(devserver)["truncated"] >= 2
    assert_equals_server(db, devserver, source, first, today)


def test_connections_dropped_mid_body_lose_nothing(env, instance, devserver: DevServer) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    first = today - timedelta(days=FAST_DAYS - 1)
    source = add_source(db, devserver, "Acme", window="30d")
    add_busy_day(devserver, source.projects[0].project_id, today - timedelta(days=5), 160)
    devserver.set_faults(rate_drop=0.08, burst_drop=2, seed=5)
    import_until_clean(fast_definitions(db), instance, first, today)
    seen = faults_seen(devserver)
    assert seen["drop"] >= 2 and seen["drop_mid"] >= 1, seen
    assert_equals_server(db, devserver, source, first, today)


def test_slow_responses_lose_nothing(env, instance, devserver: DevServer) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    first = today - timedelta(days=7)
    source = add_source(db, devserver, "Acme", window="7d")
    devserver.set_faults(delay_s=0.08)
    started = clock.monotonic()
    import_until_clean(fast_definitions(db), instance, first, today, max_runs=1)
    assert clock.monotonic() - started >= 0.08 * 24 / 4  # the delay really applied (24 units, 4 workers)
    assert_equals_server(db, devserver, source, first, today)


def test_answers_slower_than_the_read_timeout_fail_only_those_days_then_recover(
    env, instance, devserver: DevServer
) -> None:
    """A server slower than the read timeout fails the run quickly and clearly (no hang, no partial day);
    once it answers again, the re-run completes the window exactly."""
    db = env["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    first = today - timedelta(days=4)
    source = add_source(db, devserver, "Acme", window="7d", projects=["Web App"])
    defs = fast_definitions(db, read_timeout_s=0.3, max_transient_retries=2)
    devserver.set_faults(delay_s=1.0)
    started = clock.monotonic()
    slow = run_import(defs, instance, first, today)
    assert not slow.success
    assert clock.monotonic() - started < 20
    message = failure_text(slow)
    assert "Web App" in message and "Timeout" in message, message
    assert query(db, "SELECT count(*) FROM data_points") == [(0,)]
    devserver.set_faults(delay_s=0)
    import_until_clean(defs, instance, first, today, max_runs=1, only_missing=True)
    assert_equals_server(db, devserver, source, first, today)


def test_a_day_that_exhausts_its_retries_fails_alone_and_the_rerun_completes(
    env, instance, devserver: DevServer
) -> None:
    """Bounded retries, then a clear failure of that day only: the other days are written, and the next
    run (only what is missing) completes the window."""
    db = env["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    first = today - timedelta(days=5)
    source = add_source(db, devserver, "Acme", window="7d", projects=["Web App"])
    defs = fast_definitions(db, max_transient_retries=3)
    devserver.set_faults(burst_5xx=3)  # one worker: the first day's first request fails three times
    failed = run_import(defs, instance, first, today, workers=1)
    assert not failed.success
    message = failure_text(failed)
    assert f"day {first.isoformat()}" in message and "Gave up after 3 tries" in message, message
    written = {r[0] for r in query(db, "SELECT DISTINCT partition_date FROM sync_state")}
    assert written == {first + timedelta(days=n) for n in range(1, 6)}
    devserver.clear_log()
    results = import_until_clean(defs, instance, first, today, max_runs=1, only_missing=True)
    assert len(results) == 1
    fetched = [r for r in devserver.request_log if r.path.endswith("/feedbacks/filter")]
    assert len(fetched) == 3  # the failed day, and yesterday and today (always refreshed)
    assert_equals_server(db, devserver, source, first, today)


def test_items_created_while_a_backfill_pages_are_neither_skipped_nor_repeated(
    env, instance, devserver: DevServer
) -> None:
    """New feedback arrives (now, and backdated into the day being paged) while today's cursor walks 4+ pages:
    the run imports every item that existed when it started, never one twice; the next sync adds the rest."""
    db = env["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    first = today - timedelta(days=7)
    source = add_source(db, devserver, "Acme", window="7d")
    project_id = source.projects[0].project_id
    day_start = datetime.combine(today, time(0), tzinfo=UTC)
    rng = random.Random(3)
    for _ in range(180):  # today's unit needs several pages
        devserver.add_feedback(project_id, created_at=day_start + (datetime.now(UTC) - day_start) * rng.random())
    before = {fid for ids in server_units(devserver, source, first, today).values() for fid in ids}
    devserver.set_faults(delay_s=0.05)  # slow pages, so the writer below lands between them
    stop = threading.Event()
    added: list[str] = []

    def keep_adding() -> None:
        rng = random.Random(9)
        while not stop.is_set():
            now = datetime.now(UTC)
            at = None if rng.random() < 0.5 else day_start + (now - day_start) * rng.random()  # now, or backdated
            added.append(devserver.add_feedback(project_id, created_at=at)["feedback_id"])
            stop.wait(0.01)

    writer = threading.Thread(target=keep_adding, daemon=True)
    writer.start()
    try:
        first_run = run_import(fast_definitions(db), instance, first, today)
    finally:
        stop.set()
        writer.join()
    assert first_run.success, failure_text(first_run)
    assert len(added) >= 10
    pages = [r for r in devserver.request_log if r.path == f"/v0.1/projects/{project_id}/feedbacks/filter"]
    cursors = [r.query.get("after") for r in pages if r.query.get("after")]
    assert len(cursors) >= 3 and len(cursors) == len(set(cursors)), "the cursor must move forward only"
    ids = [r[0] for r in query(db, "SELECT feedback_id FROM data_points WHERE source_id = ?", [source.source_id])]
    assert len(ids) == len(set(ids)), "an item was imported twice"
    assert before <= set(ids), f"{len(before - set(ids))} items that existed at the start were skipped"
    assert set(ids) <= before | set(added)
    devserver.set_faults(delay_s=0)
    import_until_clean(fast_definitions(db), instance, first, today, max_runs=1, only_missing=True)
    assert assert_equals_server(db, devserver, source, first, today) == len(before) + len(added)


def test_mixed_faults_through_the_cli_sync_end_exact_within_three_syncs(env, devserver: DevServer) -> None:
    """The real console script with its real (production) retry settings under a mix of every fault."""
    connected = run_cli(
        "connect", "--channel", "Faults", "--source", "Acme", *ACME, "--all-projects", "--backfill", "7d", env=env
    )
    assert connected.returncode == 0, connected.stderr
    devserver.set_faults(
        rate_429=0.05, retry_after_seconds=0, rate_5xx=0.05, rate_truncated=0.03, rate_drop=0.03, delay_s=0.01, seed=6
    )
    outcomes = []
    for _ in range(3):
        outcomes.append(run_cli("sync", env=env))
        if outcomes[-1].returncode == 0:
            break
    assert outcomes[-1].returncode == 0, outcomes[-1].stderr
    assert "Traceback" not in "".join(o.stderr for o in outcomes if o.returncode == 0)
    assert sum(faults_seen(devserver).values()) >= 1
    con = connect(env["USERSNAP_CHANNELS_DB"])
    try:
        from usersnap_channels.warehouse.registry import list_sources

        (source,) = list_sources(con)
    finally:
        con.close()
    today = utc_today()
    assert_equals_server(env["USERSNAP_CHANNELS_DB"], devserver, source, window_start("7d", today), today)


@pytest.mark.slow
def test_soak_every_fault_at_once_over_90_days_of_two_sources(env, instance, devserver: DevServer) -> None:
    """Soak: both workspaces, 90 days, every fault at once (dates in Retry-After included)."""
    db = env["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    first = window_start("90d", today)
    # the fixture's server holds 40 days; give both workspaces a busy, older history
    sources = [add_source(db, devserver, ws, window="90d", source=f"{ws} soak") for ws in ("Acme", "Globex")]
    for source in sources:
        for offset in (1, 33, 61, 89):
            add_busy_day(devserver, source.projects[0].project_id, today - timedelta(days=offset), 130)
    devserver.set_faults(
        rate_429=0.08,
        retry_after="date",
        retry_after_seconds=1,
        rate_5xx=0.10,
        rate_truncated=0.05,
        rate_drop=0.05,
        delay_s=0.01,
        seed=8,
    )
    import_until_clean(fast_definitions(db), instance, first, today, max_runs=4)
    for source in sources:
        assert_equals_server(db, devserver, source, first, today)
