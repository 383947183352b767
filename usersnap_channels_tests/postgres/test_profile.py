"""The Postgres instance profile end to end, on a real Postgres (`make test-postgres` starts one): connect and
`sync` through the real CLI, a sensor tick and its run, then a backfill submitted as the UI submits it (the
`launchPartitionBackfill` GraphQL mutation) and run by the real `dagster-daemon` — every run on the instance
that `deploy/postgres/dagster.yaml` describes, every DuckDB table checked against the dev server's data.

Skipped unless the `DAGSTER_PG_*` variables name a Postgres (so `make test` stays green without one).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

import dagster as dg
import pytest

from usersnap_channels.defs.instance_env import RUN_ENV
from usersnap_channels.defs.jobs import usersnap_sync_job
from usersnap_channels.defs.postgres_storage import PooledPostgresEventLogStorage
from usersnap_channels.defs.usersnap.checks import CHECK_NAME, CHECKED_ASSET
from usersnap_channels.devserver import DevServer
from usersnap_channels.partitions import partition_key, utc_today, window_start
from usersnap_channels.warehouse.connection import connect
from usersnap_channels.warehouse.registry import Source, get_source
from usersnap_channels_tests.conftest import REPO, run_cli
from usersnap_channels_tests.defs.test_sensors import Ticker
from usersnap_channels_tests.helpers import query
from usersnap_channels_tests.postgres.server import PROFILE, configured
from usersnap_channels_tests.reliability.test_faults import assert_equals_server

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not configured(), reason="no Postgres configured (DAGSTER_PG_*): run `make test-postgres`"),
]

CHANNEL = "Product feedback"
ACME = ["--jwt-id-env", "ACME_JWT_ID", "--jwt-secret-env", "ACME_JWT_SECRET"]
BACKFILL = """
mutation($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on PartitionKeysNotFoundError { message }
  }
}
"""


@pytest.fixture
def pg_env(env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The `env` fixture on the Postgres profile, with an empty database of its own."""
    import psycopg2

    name = f"t_{abs(hash(str(tmp_path))) % 10**12}"
    con = psycopg2.connect(
        host=os.environ["DAGSTER_PG_HOST"], port=os.environ["DAGSTER_PG_PORT"], dbname="postgres",
        user=os.environ["DAGSTER_PG_USERNAME"], password=os.environ["DAGSTER_PG_PASSWORD"],
    )  # fmt: skip
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    con.close()
    monkeypatch.setenv("DAGSTER_PG_DB", name)
    (Path(env["DAGSTER_HOME"]) / "dagster.yaml").write_text(PROFILE.read_text())
    return {**env, "DAGSTER_PG_DB": name}


@pytest.fixture
def pg_instance(pg_env: dict[str, str]) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.get() as instance:
        yield instance


def check_days(instance: dg.DagsterInstance, run_id: str) -> dict[str, bool]:
    """The count check's per-day results in a run: day → passed, each linked to that day's latest
    materialization of `data_points` (what keeps the UI's per-day status current)."""
    days = {}
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = record.dagster_event.event_specific_data
        assert evaluation.check_name == CHECK_NAME
        latest = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=CHECKED_ASSET, asset_partitions=[evaluation.partition]), limit=1
        ).records[0]
        assert evaluation.target_materialization_data.storage_id == latest.storage_id
        days[evaluation.partition] = evaluation.passed
    return days


def assert_tables_exact(db: str, devserver: DevServer, source: Source, first: date, last: date) -> None:
    """Every table equals the dev server's data: feedback tables (ids, per unit, turns, fields, sync_state)
    and the projects the key sees."""
    assert_equals_server(db, devserver, source, first, last)
    projects = {(p["project_id"], p["name"]) for p in devserver.workspace("Acme").projects}
    assert set(query(db, "SELECT project_id, name FROM usersnap_projects WHERE source_id = ?", [source.source_id])) == (
        projects
    )


def launch_ui_backfill(instance: dg.DagsterInstance, first: date, last: date) -> str:
    """A partition-range backfill of the import's assets, through the GraphQL mutation the UI sends."""
    from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

    days = [partition_key(first + timedelta(days=n)) for n in range((last - first).days + 1)]
    params = {
        "assetSelection": [{"path": ["raw_feedback"]}, {"path": ["data_points"]}],
        "partitionNames": days,
        "fromFailure": False,
        "tags": [],
    }
    with (
        define_out_of_process_context(str(REPO / "workspace.yaml"), None, instance) as context,
        warnings.catch_warnings(),
    ):
        # Dagster 1.13's own backfill code calls its deprecated `AssetSelection.sources` (not ours to fix)
        warnings.filterwarnings("ignore", message=r".*AssetSelection\.sources", category=DeprecationWarning)
        result = execute_dagster_graphql(context, BACKFILL, {"backfillParams": params})
    launched = result.data["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    return launched["backfillId"]


def run_daemon_until_done(instance: dg.DagsterInstance, backfill_id: str, timeout_s: float = 300) -> None:
    """The real `dagster-daemon` (as under `make dev`) until the backfill is done; then stopped."""
    exe = Path(sys.executable).with_name("dagster-daemon")
    daemon = subprocess.Popen(
        [str(exe), "run", "-w", "workspace.yaml"], cwd=REPO, env={**os.environ, **RUN_ENV},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout_s
        while (backfill := instance.get_backfill(backfill_id)).status.value == "REQUESTED":
            assert daemon.poll() is None, f"the daemon exited: {daemon.stderr.read()[-3000:]}"
            assert time.monotonic() < deadline, "the backfill did not finish in time"
            time.sleep(1)
        assert backfill.status.value == "COMPLETED_SUCCESS", backfill.status
    finally:
        daemon.terminate()
        try:
            daemon.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.communicate()


def test_connect_sync_tick_and_ui_backfill_on_postgres(
    pg_env: dict[str, str], pg_instance: dg.DagsterInstance, devserver: DevServer
) -> None:
    db, today = pg_env["USERSNAP_CHANNELS_DB"], utc_today()
    first = window_start("7d", today)
    assert isinstance(pg_instance.event_log_storage, PooledPostgresEventLogStorage)

    # connect and sync: the real CLI, on the Postgres instance
    connected = run_cli("connect", "--channel", CHANNEL, "--source", "Acme", *ACME, "--all-projects", "--backfill",
                        "7d", env=pg_env)  # fmt: skip
    assert connected.returncode == 0, connected.stderr
    synced = run_cli("sync", env=pg_env)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    con = connect(db)
    acme = get_source(con, CHANNEL, "Acme")
    con.close()
    assert_tables_exact(db, devserver, acme, first, today)
    [run] = pg_instance.get_runs(filters=dg.RunsFilter(job_name=usersnap_sync_job.name))
    assert run.status == dg.DagsterRunStatus.SUCCESS
    days = [partition_key(first + timedelta(days=n)) for n in range((today - first).days + 1)]
    assert check_days(pg_instance, run.run_id) == dict.fromkeys(days, True)
    # the run environment reached the CLI: one planned event per asset for the whole range, not one per day
    planned = pg_instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
    assert len(planned) == 3  # usersnap_projects, raw_feedback, data_points

    # a sensor tick after new feedback today: one run of today, executed on the same instance
    ticker = Ticker(pg_env, pg_instance, devserver)
    ticker.cursor = None
    project = acme.projects[0].project_id
    devserver.add_feedback(project)
    requests, _ = ticker.tick()
    assert len(requests) == 1, requests
    assert ticker.execute(requests[0]).success
    assert_tables_exact(db, devserver, acme, first, today)

    # a late arrival three days back (the sensor watches yesterday and today only), then a UI backfill
    late_day = today - timedelta(days=3)
    devserver.add_feedback(project, created_at=datetime.combine(late_day, dtime(12), tzinfo=UTC))
    backfill_id = launch_ui_backfill(pg_instance, late_day - timedelta(days=1), late_day + timedelta(days=1))
    run_daemon_until_done(pg_instance, backfill_id)
    [backfill_run] = pg_instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    assert backfill_run.status == dg.DagsterRunStatus.SUCCESS
    assert_tables_exact(db, devserver, acme, first, today)
    backfilled = [partition_key(late_day + timedelta(days=n)) for n in (-1, 0, 1)]
    assert check_days(pg_instance, backfill_run.run_id) == dict.fromkeys(backfilled, True)
