"""What one machine and one DuckDB file carry: the figures behind the README's "Scaling beyond one machine".

All against the bundled dev server (its own process), through the real import job on a real (SQLite)
Dagster instance, themes off (`USERSNAP_CHANNELS_THEMES=off`: the import alone):

1. Items/s with 1, 2 and 4 fetch workers: the same 20,000 items (5 projects, 30 days, 155 units) imported
   into a fresh DuckDB file and instance each time, REPEATS times interleaved, the fastest run kept. Each
   import runs in a fresh process, so its peak RSS is that one run's: the Dagster process's (`RUSAGE_SELF`)
   and its largest fetch worker's (`RUSAGE_CHILDREN`). Worker processes are capped at the CPU count
   (`ingest/importer.py`), so "4" is 2 on a 2-core machine.
2. DuckDB file size per 100,000 data points: the file after the import and a CHECKPOINT, minus the file
   with only the schema and the source in it, scaled.
3. How many sources one DuckDB writer keeps current at the sensor's cadence: SOURCES sources (5 projects
   each, 7-day window) imported; then new feedback in one source, a real sensor tick and the run it
   requests, timed; then new feedback in every source, the same. The difference gives the cost of one more
   source in a tick and its run; the rest is the fixed cost of a tick and a run. Sources per interval =
   (interval - fixed) / per source, when every source has new feedback at every tick (the worst case).

The machine's load is printed with the figures (on a shared machine each figure moves by ±30 %). Last
line: one JSON object with the figures.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import requests
from sensor_tick import LATENCY_S, clear_log, requests_logged, set_delay

from usersnap_channels.devserver.process import DevServerProcess

REPO = Path(__file__).resolve().parents[1]
PROJECTS = 5
ITEMS = 20_000
WORKERS = (1, 2, 4)
REPEATS = 2
SOURCES = 8
SOURCE_ITEMS_PER_PROJECT = 100
NEW_ITEMS_PER_PROJECT = 2
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def add_workspace(root: str, name: str, items_per_project: int) -> dict[str, Any]:
    """A workspace of PROJECTS projects whose items are spread over the server's days (admin endpoint)."""
    projects = {f"{name} P{i + 1}": items_per_project for i in range(PROJECTS)}
    response = requests.post(f"{root}/_dev/workspaces", json={"name": name, "projects": projects}, timeout=120)
    response.raise_for_status()
    return response.json()


def fresh_home(parent: Path) -> Path:
    """A Dagster instance folder with the project's dagster.yaml (its `duckdb` pool included)."""
    home = Path(tempfile.mkdtemp(dir=parent)) / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    return home


def connect(db: str, env_prefix: str, workspace: dict[str, Any], window: str) -> str:
    """Register the workspace as a source of channel "Scale"; returns its source id."""
    from usersnap_channels.partitions import utc_today, window_start
    from usersnap_channels.warehouse.connection import connect as open_db
    from usersnap_channels.warehouse.registry import Project, connect_source

    os.environ[f"{env_prefix}_JWT_ID"], os.environ[f"{env_prefix}_JWT_SECRET"] = (
        workspace["jwt_id"],
        workspace["jwt_secret"],
    )
    con = open_db(db)
    source = connect_source(
        con,
        channel="Scale",
        source=workspace["name"],
        jwt_id_env=f"{env_prefix}_JWT_ID",
        jwt_secret_env=f"{env_prefix}_JWT_SECRET",
        backfill_window=window,
        window_start=window_start(window, utc_today()),
        projects=[Project(p["project_id"], p["name"]) for p in workspace["projects"]],
    )
    con.close()
    return source.source_id


def file_bytes(db: str) -> int:
    """The DuckDB file after a CHECKPOINT (nothing left in the write-ahead log)."""
    from usersnap_channels.warehouse.connection import connect as open_db

    con = open_db(db)
    con.execute("CHECKPOINT")
    con.close()
    return os.path.getsize(db) + (os.path.getsize(db + ".wal") if os.path.exists(db + ".wal") else 0)


def import_run(args: dict[str, Any]) -> dict[str, Any]:
    """One import in this (fresh) process: the job over the window, with `workers` fetch workers."""
    import dagster as dg

    from usersnap_channels.definitions import build_definitions
    from usersnap_channels.defs.jobs import feedback_import_job, import_config, range_tags
    from usersnap_channels.partitions import utc_today, window_start
    from usersnap_channels.warehouse.connection import connect as open_db

    db = args["db"]
    connect(db, "SCALE", args["workspace"], "30d")
    base = file_bytes(db)
    today = utc_today()
    config = import_config(workers=args["workers"], loggers=QUIET_LOGS["loggers"])
    job = build_definitions(database=db).resolve_job_def(feedback_import_job.name)
    with dg.DagsterInstance.get() as instance:
        started = time.perf_counter()
        result = job.execute_in_process(
            instance=instance, run_config=config, tags=range_tags(window_start("30d", today), today)
        )
        seconds = time.perf_counter() - started
    if not result.success:
        raise SystemExit(f"the import with {args['workers']} worker(s) failed")
    con = open_db(db, read_only=True)
    items = con.execute("SELECT count(*) FROM data_points").fetchone()[0]
    con.close()
    return {
        "seconds": seconds,
        "items": items,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "base_bytes": base,
        "bytes": file_bytes(db),
    }


def run_in_fresh_process(root: str, workspace: dict[str, Any], workers: int, tmp: Path) -> dict[str, Any]:
    """`import_run` in a child process, so that its peak RSS belongs to that run alone."""
    env = {
        **os.environ,
        "DAGSTER_HOME": str(fresh_home(tmp)),
        "USERSNAP_BASE_URL": f"{root}/v0.1",
        "USERSNAP_CHANNELS_THEMES": "off",
    }
    db = str(Path(tempfile.mkdtemp(dir=tmp)) / "channels.duckdb")
    env["USERSNAP_CHANNELS_DB"] = db
    payload = json.dumps({"db": db, "workspace": workspace, "workers": workers})
    done = subprocess.run(
        [sys.executable, __file__, "--import-run", payload], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"the import with {workers} worker(s) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def throughput(root: str, tmp: Path) -> dict[int, dict[str, Any]]:
    """REPEATS imports per worker count, interleaved; the fastest for each count (the one the machine's other
    load disturbed least: capacity, not luck; every run's time is printed too)."""
    workspace = add_workspace(root, "Throughput", ITEMS // PROJECTS)
    runs: dict[int, list[dict[str, Any]]] = {w: [] for w in WORKERS}
    for _ in range(REPEATS):
        for w in WORKERS:
            runs[w].append(run_in_fresh_process(root, workspace, w, tmp))
    return {w: min(rs, key=lambda r: r["seconds"]) | {"all_s": [r["seconds"] for r in rs]} for w, rs in runs.items()}


def add_feedback(root: str, workspaces: list[dict[str, Any]]) -> None:
    for workspace in workspaces:
        for project in workspace["projects"]:
            for _ in range(NEW_ITEMS_PER_PROJECT):
                requests.post(
                    f"{root}/_dev/feedback", json={"project_id": project["project_id"]}, timeout=10
                ).raise_for_status()


def sensor_sync(root: str, tmp: Path) -> dict[tuple[float, str], dict[str, Any]]:
    """SOURCES sources imported; then one tick + its run with new feedback in 1 source, then in all; once
    against the local server, once with LATENCY_S added to every request (a real API's round trip)."""
    home = fresh_home(tmp)
    db = str(tmp / "sensor.duckdb")
    os.environ.update(
        {
            "DAGSTER_HOME": str(home),
            "USERSNAP_BASE_URL": f"{root}/v0.1",
            "USERSNAP_CHANNELS_DB": db,
            "USERSNAP_CHANNELS_THEMES": "off",
        }
    )
    import dagster as dg
    from dagster_duckdb import DuckDBResource

    from usersnap_channels.definitions import build_definitions
    from usersnap_channels.defs.jobs import feedback_import_job, range_tags
    from usersnap_channels.defs.resources import UsersnapResource
    from usersnap_channels.defs.usersnap.sensors import usersnap_sync_sensor
    from usersnap_channels.partitions import utc_today, window_start

    workspaces = [add_workspace(root, f"Source {i + 1}", SOURCE_ITEMS_PER_PROJECT) for i in range(SOURCES)]
    for i, workspace in enumerate(workspaces):
        connect(db, f"SRC{i + 1}", workspace, "7d")
    job = build_definitions(database=db).resolve_job_def(feedback_import_job.name)
    resources = {"usersnap": UsersnapResource(base_url=f"{root}/v0.1"), "duckdb": DuckDBResource(database=db)}
    today = utc_today()
    figures: dict[tuple[float, str], dict[str, Any]] = {}
    with dg.DagsterInstance.get() as instance:
        first = job.execute_in_process(
            instance=instance, run_config=QUIET_LOGS, tags=range_tags(window_start("7d", today), today)
        )
        assert first.success
        cursor = usersnap_sync_sensor(dg.build_sensor_context(instance=instance, resources=resources)).cursor
        for latency, label, changed in [
            (d, lb, ws) for d in (0.0, LATENCY_S) for lb, ws in (("one", workspaces[:1]), ("all", workspaces))
        ]:
            set_delay(root, 0.0)
            add_feedback(root, changed)
            set_delay(root, latency)
            clear_log(root)
            started = time.perf_counter()
            outcome = usersnap_sync_sensor(
                dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
            )
            tick_s = time.perf_counter() - started
            assert isinstance(outcome, dg.SensorResult) and len(outcome.run_requests) == 1, outcome
            cursor = outcome.cursor
            (request,) = outcome.run_requests
            started = time.perf_counter()
            result = job.execute_in_process(
                instance=instance, run_config={**request.run_config, **QUIET_LOGS}, tags=request.tags
            )
            run_s = time.perf_counter() - started
            assert result.success
            made = requests_logged(root)
            figures[latency, label] = {"tick_s": tick_s, "run_s": run_s, "requests": made, "sources": len(changed)}
        set_delay(root, 0.0)
    return figures


def sustained(one: dict[str, Any], every: dict[str, Any], interval: int) -> tuple[float, float, int]:
    """(fixed s, s per source, sources kept current per interval) from the one-source and all-sources syncs."""
    one_s, all_s = one["tick_s"] + one["run_s"], every["tick_s"] + every["run_s"]
    per_source = max((all_s - one_s) / (every["sources"] - one["sources"]), 1e-6)
    fixed = max(one_s - per_source, 0.0)
    return fixed, per_source, int((interval - fixed) / per_source)


def main() -> None:
    warnings.filterwarnings("ignore")
    from usersnap_channels import settings

    interval = settings.load().sensor_interval_s
    load_before = os.getloadavg()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, DevServerProcess(days=30, items_per_day=0) as server:
        runs = throughput(server.root_url, Path(tmp))
        sensor = sensor_sync(server.root_url, Path(tmp))
    load_after = os.getloadavg()
    cpus = os.cpu_count() or 1

    print(
        f"{ITEMS} items, {PROJECTS} projects, 30 days; a fresh process, DuckDB file and instance per run, "
        f"best of {REPEATS}"
    )
    for w, r in runs.items():
        effective = min(w, cpus)
        r["rate"] = r["items"] / r["seconds"]
        print(
            f"  {w} fetch worker(s) ({effective} process(es) here): {r['seconds']:6.2f} s  {r['rate']:6.0f} items/s  "
            f"{r['rate'] / effective:6.0f} items/s per worker process   peak RSS {r['rss_mb']:.0f} MB "
            f"(largest fetch worker {r['worker_rss_mb']:.0f} MB)   runs: {', '.join(f'{x:.1f}' for x in r['all_s'])} s"
        )
    sizes = [(r["bytes"] - r["base_bytes"]) / r["items"] * 100_000 / 2**20 for r in runs.values()]
    size_100k = min(sizes)
    ref = runs[WORKERS[0]]
    print(
        f"DuckDB file: {ref['bytes'] / 2**20:.1f} MB for {ref['items']} data points "
        f"({ref['base_bytes'] / 2**20:.1f} MB with the schema alone): {size_100k:.1f} MB per 100,000 data points"
    )
    verdicts = {}
    for latency in (0.0, LATENCY_S):
        where = "local server" if not latency else f"{latency * 1000:.0f} ms added to every request"
        for label in ("one", "all"):
            f = sensor[latency, label]
            print(
                f"sensor tick + its run, {where}, new feedback in {f['sources']} of {SOURCES} sources "
                f"({PROJECTS} projects each): tick {f['tick_s']:.2f} s, run {f['run_s']:.2f} s, "
                f"{f['requests']} requests"
            )
        fixed, per_source, kept = verdicts[latency] = sustained(
            sensor[latency, "one"], sensor[latency, "all"], interval
        )
        print(
            f"  one more source costs {per_source:.2f} s of tick and run (fixed {fixed:.2f} s): "
            f"one DuckDB writer keeps ~{kept} sources current at a {interval} s interval "
            "when every source has new feedback every tick"
        )
    print(
        f"machine: {cpus} cores, load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
        f"({time.perf_counter() - started:.0f} s in all)"
    )
    print(
        json.dumps(
            {
                "items_per_s_by_workers": {str(w): round(r["rate"]) for w, r in runs.items()},
                "items_per_s_per_worker": round(runs[1]["rate"]),
                "cpus": cpus,
                "peak_rss_mb": round(max(r["rss_mb"] for r in runs.values()), 1),
                "fetch_worker_rss_mb": round(max(r["worker_rss_mb"] for r in runs.values()), 1),
                "duckdb_mb_per_100k": round(size_100k, 1),
                "incremental_fixed_s": round(verdicts[0.0][0], 2),
                "incremental_per_source_s": round(verdicts[0.0][1], 3),
                "sources_per_interval": verdicts[0.0][2],
                "incremental_per_source_s_50ms": round(verdicts[LATENCY_S][1], 3),
                "sources_per_interval_50ms": verdicts[LATENCY_S][2],
                "sensor_interval_s": interval,
                "load_avg_1m": [round(load_before[0], 2), round(load_after[0], 2)],
            }
        )
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--import-run":
        warnings.filterwarnings("ignore")
        print(json.dumps(import_run(json.loads(sys.argv[2]))))
    else:
        main()
