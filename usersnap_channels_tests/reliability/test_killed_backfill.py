"""A backfill killed with SIGKILL half-way: the next `sync` ends with exact data, and no reader ever sees
half a (source, project, day).

The sync runs as the real console script in a subprocess. A second process polls the DuckDB file
read-only the whole time (DuckDB lets one process open a file at a time, so it retries on lock errors
and reads between the writer's transactions) and records, per unit, the rows it saw.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time as clock
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from usersnap_channels.devserver import DevServer
from usersnap_channels.partitions import utc_today, window_start
from usersnap_channels.warehouse.connection import connect
from usersnap_channels.warehouse.registry import Source, list_sources
from usersnap_channels_tests.conftest import run_cli
from usersnap_channels_tests.reliability.test_faults import assert_equals_server, server_units

ACME = ["--jwt-id-env", "ACME_JWT_ID", "--jwt-secret-env", "ACME_JWT_SECRET"]
#: Extra items per (project, day) on the window's first HEAVY_DAYS days: together more than the import's
#: write batch (5000 items), so the backfill commits them around half-way and then keeps going with the
#: light days: a moment when it is visibly half done, to kill it in.
HEAVY_DAYS = 15
HEAVY_UNIT_ITEMS = 120

#: The reader: a separate process that opens the file read-only in a loop and records every unit it sees.
READER = r"""
import json, os, sys, time
import duckdb

path, out, stop = sys.argv[1:4]
SQL = '''
WITH dp AS (SELECT source_id, project_id, partition_date, count(*) AS n, count(DISTINCT feedback_id) AS d
            FROM data_points GROUP BY ALL),
     raw AS (SELECT source_id, project_id, partition_date, count(*) AS n FROM raw_feedback GROUP BY ALL),
     keys AS (SELECT source_id, project_id, partition_date FROM dp
              UNION SELECT source_id, project_id, partition_date FROM raw
              UNION SELECT source_id, project_id, partition_date FROM sync_state)
SELECT k.source_id, k.project_id, k.partition_date::VARCHAR, coalesce(dp.n, 0), coalesce(dp.d, 0),
       coalesce(raw.n, 0), st.items
FROM keys k
LEFT JOIN dp USING (source_id, project_id, partition_date)
LEFT JOIN raw USING (source_id, project_id, partition_date)
LEFT JOIN sync_state st USING (source_id, project_id, partition_date)
'''
locked = 0
with open(out, "w") as fh:
    while not os.path.exists(stop):
        started = time.time()
        try:
            con = duckdb.connect(path, read_only=True)
        except duckdb.Error:
            locked += 1
            time.sleep(0.005)
            continue
        try:
            rows = con.execute(SQL).fetchall()
            total, distinct = con.execute(
                "SELECT count(*), count(DISTINCT (source_id, feedback_id)) FROM data_points"
            ).fetchone()
        except duckdb.CatalogException:  # before `connect` created the tables
            rows, total, distinct = [], 0, 0
        finally:
            con.close()
        fh.write(json.dumps({"t": started, "units": rows, "total": total, "distinct": distinct}) + "\n")
        fh.flush()
        time.sleep(0.02)
    fh.write(json.dumps({"locked": locked}) + "\n")
"""


class Reader:
    """The polling reader process and what it saw."""

    def __init__(self, db: str, tmp: Path) -> None:
        self.out = tmp / "observations.jsonl"
        self.stop_file = tmp / "reader.stop"
        self.proc = subprocess.Popen([sys.executable, "-c", READER, db, str(self.out), str(self.stop_file)])

    def observations(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        lines = self.out.read_text().splitlines()
        return [json.loads(line) for line in lines[:-1] if line.strip()]  # the last line may be half-written

    def wait_for_observation_after(self, t: float, timeout: float = 60) -> dict[str, Any]:
        """The first observation the reader started after wall time `t` (waits for it)."""
        deadline = clock.monotonic() + timeout
        while clock.monotonic() < deadline:
            later = [o for o in self.observations() if o["t"] > t]
            if later:
                return later[0]
            clock.sleep(0.05)
        raise AssertionError(f"the reader made no observation within {timeout} s after the sync")

    def stop(self) -> tuple[list[dict[str, Any]], int]:
        self.stop_file.touch()
        self.proc.wait(timeout=30)
        lines = [json.loads(line) for line in self.out.read_text().splitlines()]
        return [o for o in lines if "units" in o], lines[-1]["locked"]


def add_items(devserver: DevServer, project_id: str, day: date, n: int) -> None:
    start = datetime.combine(day, time(0), tzinfo=UTC)
    for i in range(n):
        devserver.add_feedback(project_id, created_at=start + timedelta(microseconds=i * (86_400_000_000 // n)))


def children_of(pid: int) -> list[int]:
    """Live child processes of `pid` (the import's fetch workers), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def check_observation(obs: dict[str, Any], truth: dict[tuple[str, str, str], int]) -> None:
    """Every unit a reader saw is whole: nothing, or exactly the server's items, in both tables."""
    assert obs["total"] == obs["distinct"], "a reader saw a duplicated data point"
    for source_id, project_id, day, dps, distinct, raw, synced in obs["units"]:
        unit = (source_id, project_id, day)
        assert dps == distinct == raw, f"{unit}: {dps} data points, {distinct} distinct, {raw} raw rows"
        if synced is None:
            assert dps == 0, f"{unit}: {dps} rows visible before the unit was recorded"
        else:
            assert dps == synced == truth[unit], f"{unit}: saw {dps} rows of {truth[unit]}"


def test_sigkill_mid_backfill_then_sync_gives_exact_data_and_no_reader_sees_half_a_day(
    env: dict[str, str], devserver: DevServer, tmp_path: Path
) -> None:
    db, source, first, today, truth = heavy_backfill(env, devserver)
    reader = Reader(db, tmp_path)
    sync = start_sync(env)
    try:
        # once the heavy days are fetched (3 pages each), stall the server: the rest of the backfill crawls,
        # the first batch gets committed meanwhile, and the kill surely lands mid-way
        stall_after_pages(devserver, HEAVY_DAYS * len(source.projects) * 3 + 10, delay_s=2.0)
        partial = wait_for_partial_state(reader, sync, len(truth))
        workers = children_of(sync.pid)
        sync.send_signal(signal.SIGKILL)
        sync.communicate(timeout=30)
        assert sync.returncode == -signal.SIGKILL, "the sync finished before it could be killed"
        assert 0 < partial < len(truth)
        devserver.set_faults(delay_s=0)

        deadline = clock.monotonic() + 10
        while any(alive(p) for p in workers) and clock.monotonic() < deadline:
            clock.sleep(0.1)
        assert not [p for p in workers if alive(p)], "fetch workers outlived the killed sync"

        again = run_cli("sync", env=env, timeout=120)
        assert again.returncode == 0, again.stdout + again.stderr
        final = reader.wait_for_observation_after(clock.time())
    finally:
        observations, locked = reader.stop()
        if sync.poll() is None:
            sync.kill()
    for obs in observations:
        check_observation(obs, truth)
    # the reader saw the half-done backfill and, after the second sync, every unit whole
    assert any(0 < sum(1 for u in o["units"] if u[6] is not None) < len(truth) for o in observations), locked
    assert sum(1 for u in final["units"] if u[6] is not None) == len(truth)
    assert_equals_server(db, devserver, source, first, today)
    assert_no_run_left_started(env)


@pytest.mark.slow
def test_soak_killed_again_and_again_at_random_moments(
    env: dict[str, str], devserver: DevServer, tmp_path: Path
) -> None:
    """Soak: SIGKILL five syncs in a row at random moments (some land inside a commit), then one more sync."""
    db, source, first, today, truth = heavy_backfill(env, devserver)
    reader = Reader(db, tmp_path)
    rng = random.Random(6)
    try:
        for _ in range(5):
            sync = start_sync(env)
            clock.sleep(rng.uniform(2.0, 9.0))
            sync.send_signal(signal.SIGKILL)
            sync.communicate(timeout=30)
        again = run_cli("sync", env=env, timeout=300)
        assert again.returncode == 0, again.stdout + again.stderr
        clock.sleep(0.2)
    finally:
        observations, _ = reader.stop()
    for obs in observations:
        check_observation(obs, truth)
    assert_equals_server(db, devserver, source, first, today)
    assert_no_run_left_started(env)


def heavy_backfill(env: dict[str, str], devserver: DevServer) -> tuple[str, Source, date, date, dict[tuple, int]]:
    """Connect Acme with a 30-day window whose first days are heavy; the server's items per unit."""
    db = env["USERSNAP_CHANNELS_DB"]
    connected = run_cli(
        "connect", "--channel", "Killed", "--source", "Acme", *ACME, "--all-projects", "--backfill", "30d", env=env
    )
    assert connected.returncode == 0, connected.stderr
    source = only_source(db)
    today = utc_today()
    first = window_start("30d", today)
    for project in source.projects:
        for offset in range(HEAVY_DAYS):
            add_items(devserver, project.project_id, first + timedelta(days=offset), HEAVY_UNIT_ITEMS)
    truth = {
        (source.source_id, project_id, day.isoformat()): len(ids)
        for (project_id, day), ids in server_units(devserver, source, first, today).items()
    }
    return db, source, first, today, truth


def start_sync(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("usersnap-channels")), "sync"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stall_after_pages(devserver: DevServer, pages: int, *, delay_s: float, timeout: float = 120) -> None:
    """Once the server has served `pages` feedback pages, make every further answer take `delay_s`."""

    def watch() -> None:
        deadline = clock.monotonic() + timeout
        while clock.monotonic() < deadline:
            if sum(1 for r in list(devserver.request_log) if r.path.endswith("/feedbacks/filter")) >= pages:
                devserver.set_faults(delay_s=delay_s)
                return
            clock.sleep(0.002)

    threading.Thread(target=watch, daemon=True).start()


def wait_for_partial_state(reader: Reader, sync: subprocess.Popen[str], units: int, timeout: float = 120) -> int:
    """Block until the reader saw some but not all units written; returns how many it saw."""
    deadline = clock.monotonic() + timeout
    while clock.monotonic() < deadline:
        assert sync.poll() is None, f"the sync ended before it wrote half: {sync.communicate()}"
        for obs in reversed(reader.observations()[-5:]):
            written = sum(1 for u in obs["units"] if u[6] is not None)
            if 0 < written < units:
                return written
        clock.sleep(0.02)
    raise AssertionError("the backfill never became visible half-done")


def only_source(db: str) -> Source:
    con = connect(db)
    try:
        (source,) = list_sources(con)
        return source
    finally:
        con.close()


def assert_no_run_left_started(env: dict[str, str]) -> None:
    """The killed run does not stay 'started' forever in the Dagster instance."""
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        stuck = instance.get_runs(
            filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING])
        )
    assert not stuck, [(r.job_name, r.status) for r in stuck]
