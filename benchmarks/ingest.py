"""Import 50,000 Usersnap items through the real assets, against a plain `requests` loop baseline.

Both import the same items from the bundled dev server (its own process, so it never competes with the
measured code for the GIL) and write the same rows into a fresh DuckDB file:

- pipeline: `sync` as the CLI runs it — Dagster runs on a real (SQLite) instance, the `usersnap_projects`
  refresh, then one single-run import of the whole range: per (source, project, day) units, 4 fetch
  workers, mapping, Arrow bulk writes, one materialization event per partition and asset.
- baseline: one `requests.Session`, a fresh JWT per request, each project's whole window paged in 50s,
  the same mapping, the same rows inserted in bulk once at the end. No Dagster, no threads.

Two windows: 50,000 items over 30 days (5 projects), and the same volume over a 6-month backfill window
(5 projects, 184 daily partitions), whose `sync` wall time the issue asks for. Both time the import alone
(`USERSNAP_CHANNELS_THEMES=off`). The 30-day import runs ROUNDS times, each in a fresh process as a CLI
`sync` does (its peak RSS, `peak_rss_mb`, is that process's: the import's own, nothing else of this
script's), interleaved with the baseline; its ratio is the median of the rounds'. The 6-month import runs
ROUNDS times on each instance profile — SQLite (`dagster.yaml`) and Postgres (`deploy/postgres/dagster.yaml`,
on a local Postgres this script starts and removes, a fresh database per run), each instance's storage
created before the clock starts — interleaved with the baseline, in an order rotated every round; each
ratio is the median over the rounds of (pipeline rate / that round's baseline rate): this machine is noisy.
Then the 30-day import again with themes on, as users run it (`BENCH_THEMES=off` skips it):
`sync_with_themes_s` (import, embedding of every new text, the first theming of the 50k data points,
trends), and `themes_step_rss_mb`, the peak RSS of the themes worker processes (the model and the
clustering run there, not in the Dagster process).
Last line: one JSON object with the figures.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

import dagster  # imported up front: its import cost is not what we measure
import jwt
import requests

from usersnap_channels import jsonio
from usersnap_channels.devserver.process import DevServerProcess
from usersnap_channels.ingest.rows import FeedbackBatch, write_batch
from usersnap_channels.partitions import minus_months, utc_today
from usersnap_channels.processes import peak_rss_mb
from usersnap_channels.warehouse.connection import connect
from usersnap_channels.warehouse.feedback import Unit
from usersnap_channels.warehouse.registry import Project, connect_source, list_sources

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the shared local-Postgres helper of the tests
from usersnap_channels_tests.postgres.server import LocalPostgres

ITEMS = 50_000
PROJECTS = 5
#: Rounds of the 6-month comparison (baseline, SQLite, Postgres in each); the ratios are their medians.
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
REPO = Path(__file__).resolve().parents[1]
SQLITE_PROFILE = REPO / "dagster.yaml"
POSTGRES_PROFILE = REPO / "deploy" / "postgres" / "dagster.yaml"


def make_workspace(root: str, name: str, first_day: date, today: date) -> dict:
    """A workspace of PROJECTS projects holding ITEMS items evenly spread over [first_day, now)."""
    requests.post(f"{root}/_dev/workspaces", json={"name": name, "projects": {}}, timeout=30).raise_for_status()
    start = datetime.combine(first_day, dtime(0), tzinfo=UTC)
    end = datetime.now(UTC)
    for i in range(PROJECTS):
        requests.post(
            f"{root}/_dev/projects",
            json={
                "workspace": name,
                "name": f"{name} P{i + 1}",
                "n_items": ITEMS // PROJECTS,
                "start": start.isoformat(),
                "end": end.isoformat(),
            },
            timeout=120,
        ).raise_for_status()
    return next(w for w in requests.get(f"{root}/_dev/workspaces", timeout=30).json() if w["name"] == name)


def pipeline(
    ws: dict,
    root: str,
    first_day: date,
    window: str,
    workdir: Path,
    themes: bool = False,
    postgres: dict[str, str] | None = None,
) -> tuple[float, int]:
    """`sync` through Dagster on a fresh instance and DuckDB file; returns (seconds, items imported).

    `postgres`: the `DAGSTER_PG_*` variables of an empty database, for the Postgres instance profile."""
    from usersnap_channels.cli.sync import run_sync

    db = str(workdir / "pipeline.duckdb")
    home = workdir / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((POSTGRES_PROFILE if postgres else SQLITE_PROFILE).read_text())
    os.environ.update(
        {
            "BENCH_JWT_ID": ws["jwt_id"],
            "BENCH_JWT_SECRET": ws["jwt_secret"],
            "USERSNAP_BASE_URL": f"{root}/v0.1",
            "USERSNAP_CHANNELS_DB": db,
            "USERSNAP_CHANNELS_THEMES": "on" if themes else "off",
            **(postgres or {}),
        }
    )
    con = connect(db)
    connect_source(
        con,
        channel="Bench",
        source=ws["name"],
        jwt_id_env="BENCH_JWT_ID",
        jwt_secret_env="BENCH_JWT_SECRET",
        backfill_window=window,
        window_start=first_day,
        projects=[Project(p["project_id"], p["name"]) for p in ws["projects"]],
    )
    sources = list_sources(con)
    con.close()
    # an existing, empty instance, as a team's is: creating its storage (≈ 4 s of DDL on Postgres) is not a sync
    dagster.DagsterInstance.from_config(str(home)).dispose()
    started = time.perf_counter()
    outcome = run_sync(sources, instance_home=home, database=db)
    seconds = time.perf_counter() - started
    if not outcome.success:
        with dagster.DagsterInstance.from_config(str(home)) as instance:
            failures = [
                str(e.dagster_event.event_specific_data.error.message if e.dagster_event else e.message)
                for run_id in outcome.run_ids
                for e in instance.all_logs(run_id, of_type=dagster.DagsterEventType.STEP_FAILURE)
            ]
        raise SystemExit(f"the pipeline sync failed ({window}, themes {'on' if themes else 'off'}): {failures}")
    con = connect(db)
    items = con.execute("SELECT count(*) FROM data_points").fetchone()[0]
    con.close()
    return seconds, items


def baseline(ws: dict, root: str, first_day: date, workdir: Path) -> tuple[float, int]:
    """The plain loop: page each project's whole window, map, insert the same rows once."""
    db = str(workdir / "baseline.duckdb")
    started = time.perf_counter()
    session = requests.Session()
    start = datetime.combine(first_day, dtime(0), tzinfo=UTC)
    end = datetime.combine(utc_today() + timedelta(days=1), dtime(0), tzinfo=UTC)
    body = json.dumps(
        {
            "query": [
                {"filter_type": "created_at", "operator": "gte", "value": start.strftime("%Y-%m-%dT%H:%M:%SZ")},
                {"filter_type": "created_at", "operator": "lt", "value": end.strftime("%Y-%m-%dT%H:%M:%SZ")},
            ],
            "order_by": {"order_by_type": "created_at", "direction": "asc"},
        }
    )
    batch = FeedbackBatch()
    for project in ws["projects"]:
        by_day: dict[date, list] = defaultdict(list)
        params: dict = {"limit": 50}
        while True:
            now = int(time.time())
            token = jwt.encode(
                {"iat": now, "exp": now + 60}, ws["jwt_secret"], algorithm="HS256", headers={"kid": ws["jwt_id"]}
            )
            r = session.post(
                f"{root}/v0.1/projects/{project['project_id']}/feedbacks/filter",
                params=params,
                data=body,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                timeout=60,
            )
            r.raise_for_status()
            data = jsonio.loads(r.content)["data"]
            for item in data["feedbacks"]:
                by_day[date.fromisoformat(item["created_at"][:10])].append(item)
            if not data["has_more"] or not data.get("next"):
                break
            params = {"limit": 50, "after": data["next"]["after"]}
        for day, items in sorted(by_day.items()):
            batch.add_unit(
                Unit("src_baseline", "Bench", ws["name"], project["project_id"], project["name"], day), items
            )
    con = connect(db)
    write_batch(con, batch)
    items = con.execute("SELECT count(*) FROM data_points").fetchone()[0]
    con.close()
    return time.perf_counter() - started, items


def pipeline_child(ws: dict, root: str, first_day: date, window: str, workdir: Path) -> tuple[float, int, float]:
    """`pipeline` in the process this runs in; also returns that process's own peak RSS (MB)."""
    seconds, items = pipeline(ws, root, first_day, window, workdir)
    return seconds, items, peak_rss_mb()


def pipeline_in_fresh_process(
    ws: dict, root: str, first_day: date, window: str, workdir: Path
) -> tuple[float, int, float]:
    """`pipeline` in a newly spawned process, as a CLI `sync` runs: (seconds, items, peak RSS in MB)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(pipeline_child, ws, root, first_day, window, workdir).result()


def thirty_day_rounds(ws: dict, root: str, first_day: date, tmp: str) -> dict[str, list[float]]:
    """ROUNDS rounds of the 30-day import (each in a fresh process) and the baseline, the order swapped
    every round; returns the seconds of each run by kind, and `rss`: each pipeline process's peak (MB)."""
    runs: dict[str, list[float]] = {"pipeline": [], "baseline": [], "rss": []}
    for round_ in range(ROUNDS):
        for kind in ("pipeline", "baseline") if round_ % 2 == 0 else ("baseline", "pipeline"):
            workdir = Path(tempfile.mkdtemp(dir=tmp))
            if kind == "baseline":
                seconds, items = baseline(ws, root, first_day, workdir)
            else:
                seconds, items, rss = pipeline_in_fresh_process(ws, root, first_day, "30d", workdir)
                runs["rss"].append(rss)
            if items != ITEMS:
                raise SystemExit(f"30 days, {kind}: {items} items instead of {ITEMS}")
            print(f"  30 days, round {round_ + 1}, {kind:8}: {seconds:6.2f} s", flush=True)
            runs[kind].append(seconds)
    return runs


def themes_figures(db: str) -> dict:
    """What the themes step left in the DuckDB file."""
    con = connect(db, read_only=True)
    embedded, unique = con.execute("SELECT count(*), count(DISTINCT text_sha256) FROM data_point_embeddings").fetchone()
    themes = con.execute("SELECT count(*) FROM themes WHERE status = 'active'").fetchone()[0]
    with_text, themed = con.execute(
        "SELECT count(*), count(t.theme_id) FROM data_points d LEFT JOIN data_point_themes t "
        "USING (source_id, feedback_id) WHERE trim(d.text) <> ''"
    ).fetchone()
    con.close()
    return {"embedded": embedded, "unique": unique, "themes": themes, "unassigned": 1 - themed / max(with_text, 1)}


def record_worker_rss() -> list[float]:
    """The peak RSS each themes worker reports, as the themes step runs them (same process)."""
    from usersnap_channels.themes.worker import IsolatedWorker

    seen: list[float] = []
    original = IsolatedWorker.run

    def recording(self, fn, *args):
        result, rss = original(self, fn, *args)
        seen.append(rss)
        return result, rss

    IsolatedWorker.run = recording
    return seen


def six_month_rounds(ws: dict, root: str, first_day: date, tmp: str, server: LocalPostgres) -> dict[str, list[float]]:
    """ROUNDS rounds of the baseline and `sync` on both profiles over the 6-month window, in an order rotated
    every round; returns the seconds of each run by kind."""
    kinds = ["sqlite", "postgres", "baseline"]
    runs: dict[str, list[float]] = {kind: [] for kind in kinds}
    for round_ in range(ROUNDS):
        for kind in kinds[round_ % 3 :] + kinds[: round_ % 3]:
            workdir = Path(tempfile.mkdtemp(dir=tmp))
            if kind == "baseline":
                seconds, items = baseline(ws, root, first_day, workdir)
            elif kind == "sqlite":
                seconds, items = pipeline(ws, root, first_day, "6m", workdir)
            else:
                database = server.create_database(f"bench_{round_}")
                seconds, items = pipeline(ws, root, first_day, "6m", workdir, postgres=server.env(database))
            if items != ITEMS:
                raise SystemExit(f"6 months, {kind}: {items} items instead of {ITEMS}")
            print(f"  6 months, round {round_ + 1}, {kind:8}: {seconds:6.2f} s", flush=True)
            runs[kind].append(seconds)
    return runs


def main() -> None:
    today = utc_today()
    first_30d, first_6m = today - timedelta(days=30), minus_months(today, 6)
    themes_on = os.environ.get("BENCH_THEMES", "on") != "off"
    with (
        tempfile.TemporaryDirectory() as tmp,
        DevServerProcess(days=1, items_per_day=0) as server,
        LocalPostgres(fsync=True) as postgres,
    ):
        root = server.root_url
        ws_30d, ws_6m = (
            make_workspace(root, "Bench 30d", first_30d, today),
            make_workspace(root, "Bench 6m", first_6m, today),
        )
        thirty = thirty_day_rounds(ws_30d, root, first_30d, tmp)
        six = six_month_rounds(ws_6m, root, first_6m, tmp, postgres)
        worker_rss, themes_seconds, themed = record_worker_rss(), None, None
        if themes_on:
            themes_dir = Path(tempfile.mkdtemp(dir=tmp))
            themes_seconds, _ = pipeline(ws_30d, root, first_30d, "30d", themes_dir, themes=True)
            themed = themes_figures(str(themes_dir / "pipeline.duckdb"))
    # same items in both: each round's ratio of the rates is baseline seconds / pipeline seconds
    ratio_30d = statistics.median(b / p for b, p in zip(thirty["baseline"], thirty["pipeline"], strict=True))
    seconds_30d, base_30d = statistics.median(thirty["pipeline"]), statistics.median(thirty["baseline"])
    rss_main = max(thirty["rss"])
    ratios = {
        kind: statistics.median(b / p for b, p in zip(six["baseline"], six[kind], strict=True))
        for kind in ("sqlite", "postgres")
    }
    print(
        f"30 days: {ITEMS} items, {PROJECTS} projects, {(today - first_30d).days + 1} daily partitions, {ROUNDS} rounds"
    )
    print(f"  pipeline (sync through Dagster, SQLite): median {seconds_30d:6.2f} s  {ITEMS / seconds_30d:8.0f} items/s")
    print(f"  baseline (plain requests loop):          median {base_30d:6.2f} s  {ITEMS / base_30d:8.0f} items/s")
    print(f"  ratio pipeline/baseline, median of the rounds: {ratio_30d:.2f}")
    print(
        f"6 months: {ITEMS} items, {PROJECTS} projects, {(today - first_6m).days + 1} daily partitions, {ROUNDS} rounds"
    )
    for kind in ("baseline", "sqlite", "postgres"):
        runs = ", ".join(f"{x:.2f}" for x in six[kind])
        print(f"  {kind:8}: median {statistics.median(six[kind]):6.2f} s  (runs {runs})")
    print(f"  ratio pipeline/baseline, median of the rounds: SQLite {ratios['sqlite']:.2f}, ", end="")
    print(f"Postgres {ratios['postgres']:.2f}")
    rss_runs = ", ".join(f"{x:.0f}" for x in thirty["rss"])
    print(f"peak RSS of the 30-day import: {rss_main:.0f} MB, the highest of its fresh processes ({rss_runs} MB;")
    print("  the Dagster process: fetch workers are processes of their own)")
    if themed is not None:
        print(
            f"30 days with themes on: {themes_seconds:.2f} s (import alone {seconds_30d:.2f} s); "
            f"{themed['embedded']} texts embedded ({themed['unique']} distinct), {themed['themes']} themes, "
            f"{themed['unassigned']:.1%} unassigned; themes workers' peak RSS {max(worker_rss, default=0):.0f} MB "
            f"({len(worker_rss)} workers)"
        )
    print(
        json.dumps(
            {
                "items_per_s": round(ITEMS / seconds_30d),
                "baseline_items_per_s": round(ITEMS / base_30d),
                "ratio": round(ratio_30d, 3),
                "peak_rss_mb": round(rss_main, 1),
                "sync_6m_seconds": round(statistics.median(six["sqlite"]), 2),
                "sync_6m_ratio": round(ratios["sqlite"], 3),
                "sync_6m_seconds_postgres": round(statistics.median(six["postgres"]), 2),
                "sync_6m_ratio_postgres": round(ratios["postgres"], 3),
                "baseline_6m_seconds": round(statistics.median(six["baseline"]), 2),
                "rounds": ROUNDS,
                "sync_with_themes_s": round(themes_seconds, 2) if themes_seconds is not None else None,
                "themes_step_rss_mb": round(max(worker_rss, default=0.0), 1) if themed is not None else None,
                "themes": themed["themes"] if themed is not None else None,
            }
        )
    )


if __name__ == "__main__":
    main()
