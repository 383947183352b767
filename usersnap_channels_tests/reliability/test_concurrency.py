"""Two imports at once on one DuckDB file, as separate processes (the real CLI): with a shared Dagster
instance the `duckdb` pool runs their import steps one after the other; without one, DuckDB's file lock
(retried by `DuckDBResource.get_connection`) and whole-unit transactions still give exact data."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import dagster as dg
import pytest

from usersnap_channels.defs.jobs import usersnap_sync_job
from usersnap_channels.devserver import DevServer
from usersnap_channels.partitions import utc_today
from usersnap_channels.usersnap.mapping import DataPoint, map_item
from usersnap_channels.warehouse.connection import connect
from usersnap_channels_tests.conftest import REPO, add_source

IMPORT_STEP = "usersnap_feedback"


def start_sync(env: dict[str, str]) -> subprocess.Popen[str]:
    exe = Path(sys.executable).with_name("usersnap-channels")
    return subprocess.Popen(
        [str(exe), "sync"],
        env={**os.environ, **env, "NO_COLOR": "1"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> None:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, f"sync failed:\n{out}\n{err}"


def import_steps(home: Path) -> list[tuple[float, float]]:
    """(start, end) of every import step recorded in the Dagster instance at `home`."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        spans = []
        for run in instance.get_runs(filters=dg.RunsFilter(job_name=usersnap_sync_job.name)):
            events = [
                e
                for e in instance.all_logs(
                    run.run_id, of_type={dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS}
                )
                if e.step_key == IMPORT_STEP
            ]
            assert len(events) == 2, f"run {run.run_id} did not finish its import step"
            spans.append((events[0].timestamp, events[1].timestamp))
        return sorted(spans)


def assert_exact(db: str, devserver: DevServer, sources: list, days: int) -> None:
    """Every table holds exactly the server's items of the window: none lost, none twice."""
    today = utc_today()
    start = datetime.combine(today - timedelta(days=days), time(0), tzinfo=UTC)
    end = datetime.combine(today + timedelta(days=1), time(0), tzinfo=UTC)
    con = connect(db)
    try:
        for source in sources:
            items = [i for p in source.projects for i in devserver.items(p.project_id, start, end)]
            mapped = [m for m in (map_item(i) for i in items) if isinstance(m, DataPoint)]
            assert len(mapped) == len(items) > 0

            def count(sql: str, source_id: str = source.source_id) -> int:
                return con.execute(sql, [source_id]).fetchone()[0]

            ids = {
                r[0]
                for r in con.execute(
                    "SELECT feedback_id FROM data_points WHERE source_id = ?", [source.source_id]
                ).fetchall()
            }
            assert ids == {i["feedback_id"] for i in items}
            assert count("SELECT count(*) FROM data_points WHERE source_id = ?") == len(items)
            assert count("SELECT count(*) FROM raw_feedback WHERE source_id = ?") == len(items)
            assert count("SELECT count(*) FROM data_point_turns WHERE source_id = ?") == sum(
                len(m.turns) for m in mapped
            )
            assert count("SELECT count(*) FROM data_point_fields WHERE source_id = ?") == sum(
                len(m.fields) for m in mapped
            )
            assert count("SELECT count(*) FROM rejected_items WHERE source_id = ?") == 0
            units = len(source.projects) * (days + 1)
            assert count("SELECT count(*) FROM sync_state WHERE source_id = ?") == units
            assert (
                count("SELECT count(DISTINCT (project_id, partition_date)) FROM sync_state WHERE source_id = ?")
                == units
            )
    finally:
        con.close()


@pytest.fixture
def sources(env, devserver: DevServer) -> list:
    """Two sources, 3 projects, 8 days: 24 units; fetching slowed down a little so that two imports overlap."""
    db = env["USERSNAP_CHANNELS_DB"]
    devserver.set_faults(delay_s=0.02)
    return [
        add_source(db, devserver, "Acme", window="7d", projects=["Web App", "Checkout"]),
        add_source(db, devserver, "Globex", window="7d", projects=["Billing"]),
    ]


def test_two_syncs_on_one_instance_take_turns_in_the_duckdb_pool(
    env, instance: dg.DagsterInstance, devserver: DevServer, sources
) -> None:
    # (the `instance` fixture creates the instance's storage first: two processes initialising a fresh
    # SQLite instance at the same moment can both stamp its schema)
    first, second = start_sync(env), start_sync(env)
    finish(first)
    finish(second)
    assert_exact(env["USERSNAP_CHANNELS_DB"], devserver, sources, days=7)
    spans = import_steps(Path(env["DAGSTER_HOME"]))
    assert len(spans) == 2
    assert spans[0][1] <= spans[1][0], f"import steps overlapped despite the pool limit: {spans}"


def test_two_syncs_on_separate_instances_still_end_with_exact_data(
    env, instance: dg.DagsterInstance, devserver: DevServer, sources, tmp_path: Path
) -> None:
    other_home = tmp_path / "other_dagster_home"
    other_home.mkdir()
    (other_home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    dg.DagsterInstance.from_config(str(other_home)).dispose()
    devserver.set_faults(delay_s=0.3)  # long enough imports that the two nearly always overlap
    first, second = start_sync(env), start_sync({**env, "DAGSTER_HOME": str(other_home)})
    finish(first)
    finish(second)
    assert_exact(env["USERSNAP_CHANNELS_DB"], devserver, sources, days=7)
    (a_start, a_end), (b_start, b_end) = import_steps(Path(env["DAGSTER_HOME"])) + import_steps(other_home)
    if not (a_start < b_end and b_start < a_end):
        # Exact data is the guarantee; overlap is only what makes this test interesting, and process
        # start-up jitter on a loaded machine can still keep the two apart.
        warnings.warn("the two imports did not overlap this time", stacklevel=1)
