"""The real console script as a subprocess, under TZ=Pacific/Kiritimati (UTC+14), against the dev server."""

from __future__ import annotations

from datetime import UTC, datetime, time

import dagster as dg

from usersnap_channels.devserver import DevServer
from usersnap_channels.partitions import utc_today, window_start
from usersnap_channels.warehouse.connection import connect
from usersnap_channels_tests.conftest import run_cli

ACME = ["--jwt-id-env", "ACME_JWT_ID", "--jwt-secret-env", "ACME_JWT_SECRET"]
GLOBEX = ["--jwt-id-env", "GLOBEX_JWT_ID", "--jwt-secret-env", "GLOBEX_JWT_SECRET"]


def test_projects_lists_what_the_key_sees(env, devserver: DevServer) -> None:
    result = run_cli("projects", *ACME, env=env)
    assert result.returncode == 0, result.stderr
    for project in devserver.workspace("Acme").projects:
        assert project["project_id"] in result.stdout and project["name"] in result.stdout
    assert "Billing" not in result.stdout


def test_wrong_credentials_exit_2_with_the_guidance(env) -> None:
    bad = {**env, "ACME_JWT_SECRET": "definitely-wrong"}
    for args in (
        ["projects", *ACME],
        ["connect", "--channel", "C", "--source", "S", *ACME, "--all-projects", "--backfill", "7d"],
    ):
        result = run_cli(*args, env=bad)
        assert result.returncode == 2
        first = result.stderr.strip().splitlines()[0]
        assert first.startswith("Invalid credentials")
        assert "deleted" in result.stderr and "Admin" in result.stderr and "Settings → API" in result.stderr
        assert "Traceback" not in result.stderr
        assert "definitely-wrong" not in result.stderr + result.stdout


def test_connect_resolves_projects_by_id_or_name_and_rejects_unknown(env, devserver: DevServer) -> None:
    web, mobile = devserver.workspace("Acme").projects[:2]
    unknown = run_cli(
        "connect", "--channel", "Feedback", "--source", "Acme", *ACME, "--project", "Nope", "--backfill", "7d", env=env
    )
    assert unknown.returncode == 2
    assert "Unknown project 'Nope'" in unknown.stderr and web["name"] in unknown.stderr

    ok = run_cli(
        "connect",
        "--channel",
        "Feedback",
        "--source",
        "Acme",
        *ACME,
        "--project",
        web["name"],
        "--project",
        mobile["project_id"],
        "--backfill",
        "30d",
        env=env,
    )
    assert ok.returncode == 0, ok.stderr
    assert web["name"] in ok.stdout and mobile["name"] in ok.stdout
    con = connect(env["USERSNAP_CHANNELS_DB"])
    try:
        src = con.execute(
            "SELECT source_id, jwt_id_env, jwt_secret_env, backfill_window, window_start, status FROM sources"
        ).fetchall()
        picked = {r[0] for r in con.execute("SELECT project_id FROM source_projects").fetchall()}
    finally:
        con.close()
    assert [s[1:] for s in src] == [
        ("ACME_JWT_ID", "ACME_JWT_SECRET", "30d", window_start("30d", utc_today()), "connected")
    ]
    assert picked == {web["project_id"], mobile["project_id"]}

    again = run_cli(
        "connect", "--channel", "Feedback", "--source", "Acme", *ACME, "--all-projects", "--backfill", "7d", env=env
    )
    assert again.returncode == 2 and "already has a connected source" in again.stderr


def test_bad_usage_exits_2_without_traceback(env) -> None:
    cases = [
        (["connect", "--channel", "C", "--source", "S", *ACME, "--all-projects", "--backfill", "2w"], "--backfill"),
        (["connect", "--channel", "C", "--source", "S", *ACME, "--backfill", "7d"], "--project"),
        (["projects", "--jwt-id-env", "NOPE_ID", "--jwt-secret-env", "NOPE_SECRET"], "NOPE_ID and NOPE_SECRET"),
        (["disconnect", "--channel", "C", "--source", "S", "--yes"], "No source 'S' in channel 'C'"),
    ]
    for args, needle in cases:
        result = run_cli(*args, env=env)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert needle in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_connect_sync_status_end_to_end_far_from_utc(env, devserver: DevServer) -> None:
    assert (
        run_cli(
            "connect",
            "--channel",
            "Product feedback",
            "--source",
            "Acme",
            *ACME,
            "--all-projects",
            "--backfill",
            "30d",
            env=env,
        ).returncode
        == 0
    )
    assert (
        run_cli(
            "connect",
            "--channel",
            "Product feedback",
            "--source",
            "Globex",
            *GLOBEX,
            "--all-projects",
            "--backfill",
            "7d",
            env=env,
        ).returncode
        == 0
    )
    synced = run_cli("sync", env=env)
    assert synced.returncode == 0, synced.stderr
    assert synced.stdout.strip().splitlines()[-1].startswith("Sync done: 2/2 source(s) up to date")

    today = utc_today()
    expected = 0
    for workspace, window in (("Acme", "30d"), ("Globex", "7d")):
        start = datetime.combine(window_start(window, today), time(0), tzinfo=UTC)
        expected += sum(len(devserver.items(p["project_id"], start)) for p in devserver.workspace(workspace).projects)
    con = connect(env["USERSNAP_CHANNELS_DB"])
    try:
        assert con.execute("SELECT count(*) FROM data_points").fetchone()[0] == expected
    finally:
        con.close()

    # new feedback arrives; a second sync fetches only the recent days and picks it up
    item = devserver.add_feedback(devserver.workspace("Globex").projects[0]["project_id"])
    devserver.clear_log()
    again = run_cli("sync", "--channel", "Product feedback", "--source", "Globex", env=env)
    assert again.returncode == 0, again.stderr
    projects = len(devserver.workspace("Globex").projects)
    assert len([r for r in devserver.request_log if r.path.endswith("/filter")]) == 2 * projects
    con = connect(env["USERSNAP_CHANNELS_DB"])
    try:
        assert (
            con.execute("SELECT count(*) FROM data_points WHERE feedback_id = ?", [item["feedback_id"]]).fetchone()[0]
            == 1
        )
    finally:
        con.close()

    status = run_cli("status", env=env)
    assert status.returncode == 0, status.stderr
    assert "Channel: Product feedback" in status.stdout
    con = connect(env["USERSNAP_CHANNELS_DB"])
    try:
        per_source = dict(con.execute("SELECT source_name, count(*) FROM data_points GROUP BY 1").fetchall())
    finally:
        con.close()
    assert sum(per_source.values()) == expected + 1
    lines = status.stdout.splitlines()
    for name, window in (("Acme", "30d"), ("Globex", "7d")):
        row = next(line for line in lines if f" {name} " in line)
        assert "connected" in row and f"{window} from" in row and f" {per_source[name]} " in row

    # the runs are on the project's Dagster instance, so they show in the UI
    with dg.DagsterInstance.get() as instance:
        jobs = {r.job_name for r in instance.get_runs()}
    assert {"usersnap_sync_job"} <= jobs
