"""One tick of `usersnap_sync_sensor` with nothing new, over 20 imported projects, against a plain loop.

The bundled dev server runs in its own process (so it never competes with the measured code for the
GIL); a workspace of 20 projects is added to it (`DevServer.add_workspace`, through its admin endpoint),
connected as one source with a 7-day window and imported through the real job. Then:

- sensor: real evaluations (`build_sensor_context` on a real SQLite instance, the cursor carried over):
  a read-only DuckDB snapshot, the backfill plan, one `filter/count` per project on a small thread
  pool, the comparison, the cursor. Nothing is new, so no run is requested.
- baseline: the same 20 counts with one `requests.Session`, a fresh JWT per request, one after another;
  no DuckDB, no Dagster.

Each is timed over several repetitions (median reported), once against the local server and once with
50 ms added to every request, the order of a real round trip to Usersnap (where the thread pool pays
off). Last line: one JSON object with the local figures.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
import warnings
from datetime import timedelta
from pathlib import Path

import jwt
import requests

from usersnap_channels.devserver.process import DevServerProcess

PROJECTS = 20
ITEMS_PER_PROJECT = 80  # over the server's last 8 days
REPEATS = 7
#: Added to every request in the second measurement: what a distant API's round trip costs.
LATENCY_S = 0.05
REPO = Path(__file__).resolve().parents[1]


def requests_logged(root: str) -> int:
    return int(requests.get(f"{root}/_dev/log", timeout=5).json()["requests"])


def clear_log(root: str) -> None:
    requests.post(f"{root}/_dev/log/clear", timeout=5).raise_for_status()


def baseline(base_url: str, jwt_id: str, secret: str, project_ids: list[str], start, end) -> float:
    """The same counts, one after another, with a plain session."""
    from usersnap_channels.usersnap.client import feedback_window_query

    body = json.dumps(feedback_window_query(start, end))
    started = time.perf_counter()
    with requests.Session() as session:
        for project_id in project_ids:
            now = int(time.time())
            token = jwt.encode({"iat": now, "exp": now + 60}, secret, algorithm="HS256", headers={"kid": jwt_id})
            response = session.post(
                f"{base_url}/projects/{project_id}/feedbacks/filter/count",
                data=body,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                timeout=10,
            )
            response.raise_for_status()
            int(response.json()["data"]["total_count"])
    return time.perf_counter() - started


def main() -> None:
    warnings.filterwarnings("ignore")
    with DevServerProcess(days=8, items_per_day=0) as server, tempfile.TemporaryDirectory() as tmp:
        run(server.root_url, Path(tmp))


def run(root: str, tmp: Path) -> None:
    home = tmp / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    db = str(tmp / "channels.duckdb")
    workspace = requests.post(
        f"{root}/_dev/workspaces",
        json={"name": "Bench", "projects": {f"Project {i:02d}": ITEMS_PER_PROJECT for i in range(PROJECTS)}},
        timeout=60,
    ).json()
    base_url = f"{root}/v0.1"
    os.environ.update(
        {
            "DAGSTER_HOME": str(home),
            "USERSNAP_BASE_URL": base_url,
            "USERSNAP_CHANNELS_DB": db,
            "BENCH_JWT_ID": workspace["jwt_id"],
            "BENCH_JWT_SECRET": workspace["jwt_secret"],
        }
    )

    import dagster as dg
    from dagster_duckdb import DuckDBResource

    from usersnap_channels.definitions import build_definitions
    from usersnap_channels.defs.jobs import feedback_import_job, range_tags
    from usersnap_channels.defs.resources import UsersnapResource
    from usersnap_channels.defs.usersnap.sensors import usersnap_sync_sensor
    from usersnap_channels.partitions import day_bounds, utc_today, window_start
    from usersnap_channels.warehouse.connection import connect
    from usersnap_channels.warehouse.registry import Project, connect_source

    today = utc_today()
    projects = [Project(p["project_id"], p["name"]) for p in workspace["projects"]]
    con = connect(db)
    connect_source(
        con,
        channel="Benchmark",
        source="Bench",
        jwt_id_env="BENCH_JWT_ID",
        jwt_secret_env="BENCH_JWT_SECRET",
        backfill_window="7d",
        window_start=window_start("7d", today),
        projects=projects,
    )
    con.close()

    with dg.DagsterInstance.get() as instance:
        started = time.perf_counter()
        result = (
            build_definitions(database=db)
            .resolve_job_def(feedback_import_job.name)
            .execute_in_process(
                instance=instance,
                tags=range_tags(window_start("7d", today), today),
                run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
            )
        )
        assert result.success
        con = connect(db)
        held = con.execute("SELECT count(*) FROM data_points").fetchone()[0]
        con.close()
        print(f"imported {held} data points of {PROJECTS} projects in {time.perf_counter() - started:.1f} s")

        resources = {"usersnap": UsersnapResource(base_url=base_url), "duckdb": DuckDBResource(database=db)}
        start, end = day_bounds(today - timedelta(days=1))[0], day_bounds(today)[1]
        ids = [p.project_id for p in projects]
        figures = {}
        for latency in (0.0, LATENCY_S):
            set_delay(root, latency)
            ticks, counts = measure_ticks(dg, instance, resources, usersnap_sync_sensor, root)
            base = [baseline(base_url, workspace["jwt_id"], workspace["jwt_secret"], ids, start, end) for _ in ticks]
            figures[latency] = (statistics.median(ticks), statistics.median(base), counts, ticks)

    for latency, (sensor_s, base_s, counts, ticks) in figures.items():
        where = "local dev server" if not latency else f"{latency * 1000:.0f} ms added to every request (a distant API)"
        print(f"sensor tick, nothing new, {PROJECTS} projects, {where}: {counts} Usersnap requests per tick")
        print(
            f"  sensor tick (median of {len(ticks)}): {sensor_s * 1000:7.1f} ms   "
            f"(first {ticks[0] * 1000:.1f} ms, max {max(ticks) * 1000:.1f} ms)"
        )
        print(f"  baseline: the same {PROJECTS} counts in a plain requests loop: {base_s * 1000:7.1f} ms")
        print(f"  ratio sensor/baseline: {sensor_s / base_s:.2f}")
    sensor_s, _, counts, _ = figures[0.0]
    print(json.dumps({"projects": PROJECTS, "requests": counts, "seconds": round(sensor_s, 4)}))


def set_delay(root: str, seconds: float) -> None:
    requests.post(f"{root}/_dev/faults", json={"delay_s": seconds}, timeout=5).raise_for_status()


def measure_ticks(dg, instance, resources, sensor, root: str) -> tuple[list[float], int]:
    """Wall time of REPEATS ticks (cursor carried over) and the Usersnap requests of each (all equal)."""
    cursor = None
    seconds: list[float] = []
    made: list[int] = []
    for _ in range(REPEATS):
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
        clear_log(root)
        t0 = time.perf_counter()
        outcome = sensor(context)
        seconds.append(time.perf_counter() - t0)
        made.append(requests_logged(root))
        assert isinstance(outcome, dg.SensorResult) and not outcome.run_requests, "expected nothing new"
        cursor = outcome.cursor
    assert len(set(made)) == 1, made
    return seconds, made[0]


if __name__ == "__main__":
    main()
