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
(`USERSNAP_CHANNELS_THEMES=off`). Then the 30-day import again with themes on, as users run it
(`sync_with_themes_s`: import, embedding of every new text, the first theming of the 50k data points,
trends), and `themes_step_rss_mb`, the peak RSS of the themes worker processes (the model and the
clustering run there, not in the Dagster process).
Last line: one JSON object with the figures.
"""

from __future__ import annotations

import json
import os
import resource
import tempfile
import time
from collections import defaultdict
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
from usersnap_channels.warehouse.connection import connect
from usersnap_channels.warehouse.feedback import Unit
from usersnap_channels.warehouse.registry import Project, connect_source, list_sources

ITEMS = 50_000
PROJECTS = 5


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
    ws: dict, root: str, first_day: date, window: str, workdir: Path, themes: bool = False
) -> tuple[float, int]:
    """`sync` through Dagster on a fresh instance and DuckDB file; returns (seconds, items imported)."""
    from usersnap_channels.cli.sync import run_sync

    db = str(workdir / "pipeline.duckdb")
    home = workdir / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((Path(__file__).resolve().parents[1] / "dagster.yaml").read_text())
    os.environ.update(
        {
            "BENCH_JWT_ID": ws["jwt_id"],
            "BENCH_JWT_SECRET": ws["jwt_secret"],
            "USERSNAP_BASE_URL": f"{root}/v0.1",
            "USERSNAP_CHANNELS_DB": db,
            "USERSNAP_CHANNELS_THEMES": "on" if themes else "off",
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


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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


def main() -> None:
    import dagster  # noqa: F401 - import cost is not what we measure

    today = utc_today()
    windows = (("30 days", "30d", today - timedelta(days=30)), ("6 months", "6m", minus_months(today, 6)))
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp, DevServerProcess(days=1, items_per_day=0) as server:
        root = server.root_url
        workspaces = {window: make_workspace(root, f"Bench {window}", first, today) for _, window, first in windows}
        # Both pipelines first, so the peak RSS read after them is theirs, not the baseline's.
        for _, window, first_day in windows:
            seconds, items = pipeline(workspaces[window], root, first_day, window, Path(tempfile.mkdtemp(dir=tmp)))
            results[window] = {"seconds": seconds, "items": items}
        rss_main = peak_rss_mb()
        worker_rss = record_worker_rss()
        themes_dir = Path(tempfile.mkdtemp(dir=tmp))
        themes_seconds, themes_items = pipeline(workspaces["30d"], root, windows[0][2], "30d", themes_dir, themes=True)
        themed = themes_figures(str(themes_dir / "pipeline.duckdb"))
        for _, window, first_day in windows:
            base_seconds, base_items = baseline(workspaces[window], root, first_day, Path(tempfile.mkdtemp(dir=tmp)))
            results[window] |= {"base_seconds": base_seconds, "base_items": base_items}
    for label, window, first_day in windows:
        r = results[window]
        if not r["items"] == r["base_items"] == ITEMS:
            raise SystemExit(f"item counts differ: pipeline {r['items']}, baseline {r['base_items']}, expected {ITEMS}")
        r["rate"], r["base_rate"] = r["items"] / r["seconds"], r["base_items"] / r["base_seconds"]
        print(f"{label}: {ITEMS} items, {PROJECTS} projects, {(today - first_day).days + 1} daily partitions")
        print(f"  pipeline (sync through Dagster): {r['seconds']:6.2f} s  {r['rate']:8.0f} items/s")
        print(f"  baseline (plain requests loop):  {r['base_seconds']:6.2f} s  {r['base_rate']:8.0f} items/s")
        print(f"  ratio pipeline/baseline: {r['rate'] / r['base_rate']:.2f}")
    print(f"peak RSS of the pipeline: {rss_main:.0f} MB (the Dagster process; fetch workers are separate processes)")
    print(
        f"30 days with themes on: {themes_seconds:.2f} s for {themes_items} items (import alone "
        f"{results['30d']['seconds']:.2f} s); {themed['embedded']} texts embedded ({themed['unique']} distinct), "
        f"{themed['themes']} themes, {themed['unassigned']:.1%} unassigned; themes workers' peak RSS "
        f"{max(worker_rss, default=0):.0f} MB ({len(worker_rss)} workers)"
    )
    main_fig = results["30d"]
    print(
        json.dumps(
            {
                "items_per_s": round(main_fig["rate"]),
                "baseline_items_per_s": round(main_fig["base_rate"]),
                "ratio": round(main_fig["rate"] / main_fig["base_rate"], 3),
                "peak_rss_mb": round(rss_main, 1),
                "sync_6m_seconds": round(results["6m"]["seconds"], 2),
                "sync_6m_ratio": round(results["6m"]["rate"] / results["6m"]["base_rate"], 3),
                "sync_with_themes_s": round(themes_seconds, 2),
                "themes_step_rss_mb": round(max(worker_rss, default=0.0), 1),
                "themes": themed["themes"],
            }
        )
    )


if __name__ == "__main__":
    main()
