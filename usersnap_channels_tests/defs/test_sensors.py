"""Real sensor and schedule evaluations on a real Dagster instance against the dev server over HTTP, and
the runs they request executed for real into a DuckDB file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, time, timedelta
from typing import Any

import dagster as dg
import pytest
from dagster_duckdb import DuckDBResource

from usersnap_channels.definitions import build_definitions
from usersnap_channels.defs.jobs import RANGE_END_TAG, RANGE_START_TAG, feedback_import_job, import_config
from usersnap_channels.defs.provenance import CHANNELS_TAG, DATABASE_KEY, SOURCES_TAG
from usersnap_channels.defs.resources import UsersnapResource
from usersnap_channels.defs.usersnap.schedules import usersnap_late_arrivals_schedule
from usersnap_channels.defs.usersnap.sensors import (
    REQUEST_TAG,
    RETRY_BACKOFF_S,
    Cursor,
    evaluate_tick,
    usersnap_sync_sensor,
)
from usersnap_channels.devserver import DevServer
from usersnap_channels.ingest.plan import authorization_error
from usersnap_channels.partitions import utc_today, window_start
from usersnap_channels.warehouse.connection import connect
from usersnap_channels.warehouse.registry import get_source, set_disconnected
from usersnap_channels_tests.conftest import add_source, run_cli
from usersnap_channels_tests.helpers import query


class Ticker:
    """Evaluates the sync sensor like the daemon does: same instance, cursor carried from tick to tick."""

    def __init__(self, env: dict[str, str], instance: dg.DagsterInstance, devserver: DevServer) -> None:
        self.env = env
        self.instance = instance
        self.devserver = devserver
        self.cursor: str | None = None
        self.defs = build_definitions(database=env["USERSNAP_CHANNELS_DB"])

    def context(self) -> dg.SensorEvaluationContext:
        return dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources={
                "usersnap": UsersnapResource(base_url=self.env["USERSNAP_BASE_URL"]),
                "duckdb": DuckDBResource(database=self.env["USERSNAP_CHANNELS_DB"]),
            },
        )

    def tick(self, now: datetime | None = None) -> tuple[list[dg.RunRequest], list[Any]]:
        """(run requests, Usersnap requests made) of one tick."""
        self.devserver.clear_log()
        context = self.context()
        if now is None:
            result = usersnap_sync_sensor(context)
        else:
            result = evaluate_tick(context, context.resources.usersnap, self.env["USERSNAP_CHANNELS_DB"], now=now)
        assert isinstance(result, dg.SensorResult), result
        if result.cursor is not None:
            self.cursor = result.cursor
        return list(result.run_requests or []), list(self.devserver.request_log)

    def execute(self, request: dg.RunRequest, **overrides: Any) -> dg.ExecuteInProcessResult:
        """Run a request the way the daemon would: the job with the request's config and tags."""
        return self.defs.resolve_job_def(feedback_import_job.name).execute_in_process(
            instance=self.instance,
            run_config=overrides.get("run_config", request.run_config),
            tags=request.tags,
            raise_on_error=False,
        )


def server_ids(devserver: DevServer, workspace: str, first, last, projects: set[str] | None = None) -> set[str]:
    """The server's feedback ids of a workspace's projects (all, or those ids) for the UTC days first..last."""
    start = datetime.combine(first, time(0), tzinfo=UTC)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=UTC)
    return {
        item["feedback_id"]
        for project in devserver.workspace(workspace).projects
        if projects is None or project["project_id"] in projects
        for item in devserver.items(project["project_id"], start, end)
    }


def db_ids(db: str, source_id: str) -> set[str]:
    return {r[0] for r in query(db, "SELECT feedback_id FROM data_points WHERE source_id = ?", [source_id])}


def only_counts(log: list[Any]) -> bool:
    return all(r.method == "POST" and r.path.endswith("/feedbacks/filter/count") for r in log)


@pytest.fixture
def ticker(env, instance, devserver) -> Ticker:
    return Ticker(env, instance, devserver)


def test_connect_backfill_new_items_run_exactly_the_new_rows(env, devserver: DevServer, ticker: Ticker) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    connected = run_cli(
        "connect", "--channel", "Product feedback", "--source", "Acme", "--jwt-id-env", "ACME_JWT_ID",
        "--jwt-secret-env", "ACME_JWT_SECRET", "--all-projects", "--backfill", "7d", env=env,
    )  # fmt: skip
    assert connected.returncode == 0, connected.stderr
    con = connect(db)
    acme = get_source(con, "Product feedback", "Acme")
    con.close()

    # a new source: its whole window as ONE run, and no Usersnap request spent on polling it
    requests, log = ticker.tick()
    assert len(requests) == 1 and log == []
    backfill = requests[0]
    assert backfill.tags[RANGE_START_TAG] == window_start("7d", today).isoformat()
    assert backfill.tags[RANGE_END_TAG] == today.isoformat()
    assert backfill.run_config["ops"] == {
        "usersnap_feedback": {"config": {"only_missing": True, "source_ids": [acme.source_id], "workers": 4}}
    }
    assert backfill.run_key
    # which file and which sources, before the run even starts
    assert backfill.tags[DATABASE_KEY] == os.path.abspath(db)
    assert json.loads(backfill.tags[SOURCES_TAG]) == ["Product feedback / Acme"]
    assert json.loads(backfill.tags[CHANNELS_TAG]) == ["Product feedback"]
    # requested once: the next tick, before the run has even started, asks for nothing
    assert ticker.tick()[0] == []
    assert ticker.execute(backfill).success
    assert db_ids(db, acme.source_id) == server_ids(devserver, "Acme", window_start("7d", today), today)

    # nothing new: no run, one count per picked project and nothing else
    requests, log = ticker.tick()
    projects = [p["project_id"] for p in devserver.workspace("Acme").projects]
    assert requests == []
    assert len(log) == len(projects) and only_counts(log)
    assert sorted(r.path.split("/")[3] for r in log) == sorted(projects)

    # new feedback today in one project: today's partition, this source only
    before = db_ids(db, acme.source_id)
    new_today = devserver.add_feedback(projects[0])
    requests, log = ticker.tick()
    assert len(requests) == 1 and len(log) == len(projects) + 1 and only_counts(log)
    assert (requests[0].tags[RANGE_START_TAG], requests[0].tags[RANGE_END_TAG]) == (today.isoformat(),) * 2
    assert requests[0].run_config["ops"]["usersnap_feedback"]["config"]["source_ids"] == [acme.source_id]
    assert ticker.execute(requests[0]).success
    assert db_ids(db, acme.source_id) - before == {new_today["feedback_id"]}
    assert before <= db_ids(db, acme.source_id)

    # a late item for yesterday: the range grows to yesterday..today
    yesterday = today - timedelta(days=1)
    late = devserver.add_feedback(projects[1], created_at=datetime.combine(yesterday, time(12), tzinfo=UTC))
    requests, _ = ticker.tick()
    assert len(requests) == 1
    assert (requests[0].tags[RANGE_START_TAG], requests[0].tags[RANGE_END_TAG]) == (
        yesterday.isoformat(),
        today.isoformat(),
    )
    assert ticker.execute(requests[0]).success
    assert db_ids(db, acme.source_id) - before == {new_today["feedback_id"], late["feedback_id"]}
    assert db_ids(db, acme.source_id) == server_ids(devserver, "Acme", window_start("7d", today), today)
    assert query(db, "SELECT count(*) = count(DISTINCT feedback_id) FROM data_points") == [(True,)]

    requests, log = ticker.tick()
    assert requests == [] and len(log) == len(projects)


def test_a_tick_never_launches_duplicates_and_retries_a_run_that_left_the_gap(
    env, devserver: DevServer, ticker: Ticker
) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    acme = add_source(db, devserver, "Acme", window="7d", projects=["Web App"])
    backfill = ticker.tick()[0][0]
    assert ticker.execute(backfill).success
    devserver.add_feedback(acme.projects[0].project_id)

    first, _ = ticker.tick()
    assert len(first) == 1
    # the same tick without the cursor derives the same run key (so the daemon would drop it) ...
    remembered, ticker.cursor = ticker.cursor, None
    again, _ = ticker.tick()
    assert [r.run_key for r in again] == [first[0].run_key]
    # ... and with the cursor, while the run is not finished, nothing is requested at all
    ticker.cursor = remembered
    assert ticker.tick()[0] == []
    assert ticker.tick()[0] == []

    # the run ends without closing the gap (here: it imported another source): not retried at once ...
    elsewhere = import_config(["src_elsewhere"])
    assert ticker.execute(first[0], run_config=elsewhere).success
    assert ticker.tick()[0] == []
    # ... but after the backoff, with a new key, and then the data is right
    later = datetime.now(UTC) + timedelta(seconds=RETRY_BACKOFF_S + 60)
    if later.date() != today:
        pytest.skip("too close to midnight UTC for a simulated 16 minutes")
    retry, _ = ticker.tick(now=later)
    assert len(retry) == 1 and retry[0].run_key != first[0].run_key
    assert retry[0].tags[REQUEST_TAG] == retry[0].run_key
    assert ticker.execute(retry[0]).success
    picked = {p.project_id for p in acme.projects}
    assert db_ids(db, acme.source_id) == server_ids(devserver, "Acme", window_start("7d", today), today, picked)
    assert ticker.tick()[0] == []
    assert Cursor.load(ticker.cursor).requests == {}


def test_disconnected_sources_are_never_polled(env, devserver: DevServer, ticker: Ticker) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    acme = add_source(db, devserver, "Acme", window="7d")
    globex = add_source(db, devserver, "Globex", window="7d")
    requests, _ = ticker.tick()
    assert len(requests) == 2  # one backfill run per new source
    for request in requests:
        assert ticker.execute(request).success
    con = connect(db)
    set_disconnected(con, globex)
    con.close()
    before = db_ids(db, globex.source_id)
    for project in devserver.workspace("Globex").projects:
        devserver.add_feedback(project["project_id"])

    requests, log = ticker.tick()
    assert requests == []
    globex_projects = {p.project_id for p in globex.projects}
    assert log and all(r.path.split("/")[3] not in globex_projects for r in log)
    assert {r.workspace for r in log} == {"Acme"}
    assert len(log) == len(acme.projects)
    assert db_ids(db, globex.source_id) == before


def test_a_rotated_key_fails_that_source_only_until_update_credentials(
    env, devserver: DevServer, ticker: Ticker, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    acme = add_source(db, devserver, "Acme", window="7d", projects=["Web App"])
    globex = add_source(db, devserver, "Globex", window="7d", projects=["Billing"])
    for request in ticker.tick()[0]:
        assert ticker.execute(request).success

    devserver.rotate_key("Acme")  # the environment still holds the old key
    new_acme = devserver.add_feedback(acme.projects[0].project_id)
    new_globex = devserver.add_feedback(globex.projects[0].project_id)
    requests, _ = ticker.tick()
    # Acme is logged, recorded and skipped; Globex is synced
    assert len(requests) == 1
    assert requests[0].run_config["ops"]["usersnap_feedback"]["config"]["source_ids"] == [globex.source_id]
    con = connect(db)
    recorded = get_source(con, "Product feedback", "Acme").last_error
    con.close()
    assert recorded == authorization_error(acme, Exception())
    assert "Acme" in recorded and "update-credentials" in recorded
    assert ticker.execute(requests[0]).success
    assert new_globex["feedback_id"] in db_ids(db, globex.source_id)
    assert new_acme["feedback_id"] not in db_ids(db, acme.source_id)

    status = run_cli("status", env=env)
    assert status.returncode == 0 and "Authorization failed for source 'Acme'" in " ".join(status.stdout.split())

    # `sync` fails for Acme with the same guidance, and still brings Globex up to date
    newer_globex = devserver.add_feedback(globex.projects[0].project_id)
    synced = run_cli("sync", env=env)
    assert synced.returncode == 1
    assert "Authorization failed for source 'Acme' of channel 'Product feedback'" in " ".join(synced.stderr.split())
    assert newer_globex["feedback_id"] in db_ids(db, globex.source_id)

    # after update-credentials (new variable names), the next tick syncs Acme again
    jwt_id, jwt_secret = devserver.workspace("Acme").jwt_id, devserver.workspace("Acme").jwt_secret
    fresh = {**env, "ACME_NEW_JWT_ID": jwt_id, "ACME_NEW_JWT_SECRET": jwt_secret}
    updated = run_cli(
        "update-credentials", "--channel", "Product feedback", "--source", "Acme",
        "--jwt-id-env", "ACME_NEW_JWT_ID", "--jwt-secret-env", "ACME_NEW_JWT_SECRET", env=fresh,
    )  # fmt: skip
    assert updated.returncode == 0, updated.stderr
    monkeypatch.setenv("ACME_NEW_JWT_ID", jwt_id)
    monkeypatch.setenv("ACME_NEW_JWT_SECRET", jwt_secret)
    requests, _ = ticker.tick()
    assert len(requests) == 1
    assert requests[0].run_config["ops"]["usersnap_feedback"]["config"]["source_ids"] == [acme.source_id]
    assert ticker.execute(requests[0]).success
    assert new_acme["feedback_id"] in db_ids(db, acme.source_id)
    con = connect(db)
    assert get_source(con, "Product feedback", "Acme").last_error is None
    con.close()
    assert ticker.tick()[0] == []


def test_a_locked_database_skips_the_tick(env, devserver: DevServer, ticker: Ticker) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    add_source(db, devserver, "Acme", window="7d")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('ok', flush=True); "
         "sys.stdin.read()", db],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "ok"
        devserver.clear_log()
        result = usersnap_sync_sensor(ticker.context())
        assert isinstance(result, dg.SkipReason)
        assert "in use by another program" in (result.skip_message or "")
        assert devserver.request_log == []
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
        holder.stdout.close()
    assert len(ticker.tick()[0]) == 1  # the next tick goes ahead


def test_the_daily_schedule_reimports_the_last_three_days(env, devserver: DevServer, ticker: Ticker) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    acme = add_source(db, devserver, "Acme", window="7d", projects=["Checkout"])
    assert ticker.execute(ticker.tick()[0][0]).success
    late = devserver.add_feedback(
        acme.projects[0].project_id, created_at=datetime.combine(today - timedelta(days=2), time(9), tzinfo=UTC)
    )
    context = dg.build_schedule_context(
        instance=ticker.instance,
        scheduled_execution_time=datetime.combine(today, time(3), tzinfo=UTC),
        resources={"duckdb": DuckDBResource(database=db)},
    )
    request = usersnap_late_arrivals_schedule(context)
    assert isinstance(request, dg.RunRequest)
    assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == (
        (today - timedelta(days=2)).isoformat(),
        today.isoformat(),
    )
    assert request.run_config["ops"]["usersnap_feedback"]["config"] == {
        "only_missing": False,
        "source_ids": [acme.source_id],
        "workers": 4,
    }
    assert request.tags[DATABASE_KEY] == os.path.abspath(db)
    assert json.loads(request.tags[SOURCES_TAG]) == ["Product feedback / Acme"]
    assert ticker.execute(request).success
    assert late["feedback_id"] in db_ids(db, acme.source_id)
