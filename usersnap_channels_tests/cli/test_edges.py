"""The CLI's edge cases (issue 12, item 5) through the real console script: blank names, a channel left
without sources, a DuckDB folder that cannot be created, `status` without a database, a base URL without
`/v0.1`, the interactive picker's second chance, a disconnected source, `--help`, and the grammar of a
missing-variable message."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from usersnap_channels.devserver import DevServer
from usersnap_channels.warehouse.connection import connect
from usersnap_channels_tests.conftest import add_source, run_cli
from usersnap_channels_tests.helpers import query

ACME = ["--jwt-id-env", "ACME_JWT_ID", "--jwt-secret-env", "ACME_JWT_SECRET"]
CHANNEL_TABLES = ("themes", "theme_trends", "theme_labels", "theme_events", "theme_recomputes")


def assert_one_clean_error(result: subprocess.CompletedProcess[str], needle: str) -> None:
    """Exit 2, the message on stderr as one line, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert needle in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1, result.stderr


def test_blank_channel_or_source_is_refused(env: dict[str, str]) -> None:
    for channel, source, flag in (("", "S", "--channel"), ("   ", "S", "--channel"), ("C", " \t", "--source")):
        result = run_cli(
            "connect", "--channel", channel, "--source", source, *ACME, "--all-projects", "--backfill", "7d", env=env
        )
        assert_one_clean_error(result, f"{flag} must not be blank")
    assert not Path(env["USERSNAP_CHANNELS_DB"]).exists(), "a refused connect must not create the database"


def _seed_theme_rows(db: str, channel: str) -> None:
    """One row of each channel-keyed themes table, as a recompute and a rename would leave them."""
    con = connect(db)
    try:
        con.execute(
            "INSERT INTO themes BY NAME SELECT ? AS channel_name, 1 AS theme_id, 'x' AS label, 'x' AS auto_label, "
            "['x'] AS keywords, 0 AS size, 'active' AS status, now() AS created_at, now() AS updated_at",
            [channel],
        )
        con.execute(
            "INSERT INTO theme_trends BY NAME SELECT ? AS channel_name, 1 AS theme_id, "
            "current_date AS day, 1 AS data_points",
            [channel],
        )
        con.execute(
            "INSERT INTO theme_labels BY NAME SELECT ? AS channel_name, 1 AS theme_id, 'Mine' AS label, "
            "now() AS renamed_at",
            [channel],
        )
        con.execute(
            "INSERT INTO theme_events BY NAME SELECT ? AS channel_name, 1 AS recompute_id, 1 AS theme_id, "
            "'new' AS event, []::BIGINT[] AS related, 1 AS data_points, now() AS computed_at",
            [channel],
        )
        con.execute(
            "INSERT INTO theme_recomputes BY NAME SELECT ? AS channel_name, 1 AS recompute_id, 'first' AS reason, "
            "'m' AS model, 1 AS data_points, 1 AS themes, 0 AS unassigned, 0.1 AS seconds, now() AS computed_at",
            [channel],
        )
    finally:
        con.close()


def _channel_rows(db: str, channel: str) -> dict[str, int]:
    return {
        t: query(db, f"SELECT count(*) FROM {t} WHERE channel_name = ?", [channel])[0][0]
        for t in (*CHANNEL_TABLES, "channels")
    }


def test_deleting_the_last_source_removes_the_channel_and_its_theme_rows(env, devserver: DevServer) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    add_source(db, devserver, "Acme", channel="Feedback", window="7d")
    add_source(db, devserver, "Globex", channel="Feedback", window="7d")
    add_source(db, devserver, "Globex", channel="Other", window="7d")
    for channel in ("Feedback", "Other"):
        _seed_theme_rows(db, channel)

    first = run_cli("delete", "--channel", "Feedback", "--source", "Acme", "--yes", env=env)
    assert first.returncode == 0, first.stderr
    assert "was removed" not in first.stdout
    kept = {t: n for t, n in _channel_rows(db, "Feedback").items() if t != "theme_trends"}  # trends: rebuilt
    assert set(kept.values()) == {1}, f"a channel with a source left keeps its themes: {kept}"

    last = run_cli("delete", "--channel", "Feedback", "--source", "Globex", "--yes", env=env)
    assert last.returncode == 0, last.stderr
    assert "Channel 'Feedback' had no other source and was removed" in last.stdout
    assert set(_channel_rows(db, "Feedback").values()) == {0}
    other = {t: n for t, n in _channel_rows(db, "Other").items() if t != "theme_trends"}
    assert set(other.values()) == {1}, f"another channel's rows stay: {other}"

    status = run_cli("status", env=env)
    assert status.returncode == 0, status.stderr
    assert "Channel: Other" in status.stdout and "Channel: Feedback" not in status.stdout
    assert not re.search(r"Channel: *$", status.stdout, re.M)


def test_a_database_folder_that_cannot_be_created_exits_2_with_one_message(env, tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file where a folder should be (blocks root too, unlike chmod)")
    bad = {**env, "USERSNAP_CHANNELS_DB": str(blocker / "sub" / "channels.duckdb")}
    for args in (
        ("connect", "--channel", "C", "--source", "S", *ACME, "--all-projects", "--backfill", "7d"),
        ("sync",),
        ("delete", "--channel", "C", "--source", "S", "--yes"),
    ):
        assert_one_clean_error(run_cli(*args, env=bad), "Cannot create the folder of the DuckDB file")


def test_status_names_its_database_and_never_creates_one(env, devserver: DevServer, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "channels.duckdb"
    result = run_cli("status", env={**env, "USERSNAP_CHANNELS_DB": str(missing)})
    assert result.returncode == 0, result.stderr
    assert f"No channels database at {missing}" in result.stdout
    assert not missing.exists() and not missing.parent.exists()

    db = env["USERSNAP_CHANNELS_DB"]
    add_source(db, devserver, "Acme", window="7d")
    result = run_cli("status", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"Channels database: {Path(db).resolve()}"


def test_a_base_url_without_the_api_version_is_named_as_the_problem(env, devserver: DevServer) -> None:
    add_source(env["USERSNAP_CHANNELS_DB"], devserver, "Acme", window="7d")
    root = {**env, "USERSNAP_BASE_URL": devserver.root_url}
    for args in (("projects", *ACME), ("sync",)):
        result = run_cli(*args, env=root)
        assert result.returncode == 2, (args, result.stderr)
        assert f"USERSNAP_BASE_URL {devserver.root_url} is not the API root" in result.stderr
        assert "should end with /v0.1" in result.stderr
        assert "cannot see this project" not in result.stderr and "Traceback" not in result.stderr


def _connect_on_a_terminal(env: dict[str, str], answers: str) -> subprocess.CompletedProcess[str]:
    """`connect` without --project, its stdin a pseudo-terminal (the picker only runs on a terminal)."""
    master, slave = pty.openpty()
    exe = Path(sys.executable).with_name("usersnap-channels")
    args = [str(exe), "connect", "--channel", "C", "--source", "S", *ACME, "--backfill", "7d"]
    full_env = {**os.environ, **env, "COLUMNS": "200", "NO_COLOR": "1"}
    try:
        proc = subprocess.Popen(args, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env)
        os.close(slave)
        os.write(master, answers.encode())
        out, err = proc.communicate(timeout=120)
    finally:
        os.close(master)
    return subprocess.CompletedProcess(args, proc.returncode, out.decode(), err.decode())


def test_the_picker_asks_again_after_invalid_input_and_explains_on_question_mark(env) -> None:
    result = _connect_on_a_terminal(env, "seven\n?\n9\n1, 3\n")
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert result.stdout.count("Projects to import") == 4, result.stdout
    assert result.stdout.count("Try again (? for help)") == 2
    assert "'seven'" in result.stdout and "'9'" in result.stdout
    assert "Type the numbers of the projects to import" in result.stdout
    listed = dict(re.findall(r"^  \[(\d+)\] (.+?)  \(", result.stdout, re.M))
    picked = query(env["USERSNAP_CHANNELS_DB"], "SELECT project_name FROM source_projects ORDER BY 1")
    assert [r[0] for r in picked] == sorted([listed["1"], listed["3"]])


def test_a_disconnected_source_is_named_by_disconnect_and_sync(env, devserver: DevServer) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    add_source(db, devserver, "Acme", channel="Feedback", window="7d")
    first = run_cli("disconnect", "--channel", "Feedback", "--source", "Acme", "--yes", env=env)
    assert first.returncode == 0, first.stderr
    when = query(db, "SELECT disconnected_at FROM sources")

    again = run_cli("disconnect", "--channel", "Feedback", "--source", "Acme", env=env, input="y\n")
    assert again.returncode == 0, again.stderr
    assert "'Acme' of 'Feedback' is already disconnected since" in again.stdout
    assert "Are you sure" not in again.stdout
    assert query(db, "SELECT disconnected_at FROM sources") == when

    for args in (("--channel", "Feedback", "--source", "Acme"), ("--source", "Acme"), ("--channel", "Feedback")):
        assert_one_clean_error(run_cli("sync", *args, env=env), "Source 'Acme' of channel 'Feedback' is disconnected")


def _help_of(command: tuple[str, ...]) -> tuple[tuple[str, ...], subprocess.CompletedProcess[str]]:
    return command, run_cli(*command, "--help", env={}, timeout=120)


def test_help_shows_flags_without_placeholders_and_an_example_per_command() -> None:
    from usersnap_channels.cli.app import app

    names = [c.name or c.callback.__name__ for c in app.registered_commands]
    commands = [(), *((n,) for n in names), ("themes",), ("themes", "rename")]
    with ThreadPoolExecutor(max_workers=3) as pool:
        outcomes = list(pool.map(_help_of, commands))
    for command, result in outcomes:
        assert result.returncode == 0, (command, result.stderr)
        assert "<bool>" not in result.stdout, (command, result.stdout)
        assert re.search(r"--help\s+Show this message", result.stdout), result.stdout
        if command:
            assert f"Example:  usersnap-channels {' '.join(command)}" in result.stdout, (command, result.stdout)
    disconnect = dict(outcomes)[("disconnect",)].stdout
    assert re.search(r"--yes\s+Do not ask", disconnect), disconnect


def test_missing_variables_are_named_in_correct_grammar(env) -> None:
    one = run_cli("projects", "--jwt-id-env", "ACME_JWT_ID", "--jwt-secret-env", "NO_SECRET", env=env)
    assert_one_clean_error(one, "Environment variable NO_SECRET is not set:")
    both = run_cli("projects", "--jwt-id-env", "NO_ID", "--jwt-secret-env", "NO_SECRET", env=env)
    assert_one_clean_error(both, "Environment variables NO_ID and NO_SECRET are not set:")
