"""Bad configuration: the real console script answers exit code 2 with one clear, actionable message and no
traceback, and quickly: unknown channel, source or project, a bad window, a missing environment variable
(named), an unreachable Usersnap, a DuckDB file locked by another program or not a DuckDB file at all,
a DAGSTER_HOME that does not exist, and plain usage errors.

The commands of one test run concurrently (each is a separate process), to keep the file quick.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from usersnap_channels.devserver import DevServer
from usersnap_channels_tests.conftest import add_source, run_cli
from usersnap_channels_tests.helpers import query

ACME = ["--jwt-id-env", "ACME_JWT_ID", "--jwt-secret-env", "ACME_JWT_SECRET"]
GLOBEX = ["--jwt-id-env", "GLOBEX_JWT_ID", "--jwt-secret-env", "GLOBEX_JWT_SECRET"]
CONNECT = ("connect", "--channel", "C", "--source", "S", *ACME)
UNREACHABLE = "http://127.0.0.1:9/v0.1"  # the discard port: nothing listens, connections are refused


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    needles: tuple[str, ...]
    env: tuple[tuple[str, str | None], ...] = ()  # overrides; None removes the variable
    max_seconds: float = 60.0


def case(*args: str, expect: str | tuple[str, ...], env: dict[str, str | None] | None = None, within: float = 60.0):
    return Case(args, (expect,) if isinstance(expect, str) else expect, tuple((env or {}).items()), within)


def check_all(base_env: dict[str, str], cases: list[Case], workers: int = 3) -> None:
    """Run the cases concurrently; each must exit 2 with its message on stderr, no traceback, in time."""

    def run(c: Case) -> tuple[Case, subprocess.CompletedProcess[str], float]:
        started = time.monotonic()
        result = cli(*c.args, env=base_env, changes=dict(c.env))
        return c, result, time.monotonic() - started

    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(run, cases))
    problems = []
    for c, result, seconds in outcomes:
        text = result.stderr
        wrong = [
            result.returncode != 2 and f"exit {result.returncode}",
            "Traceback" in text + result.stdout and "a traceback",
            any(n not in text for n in c.needles) and f"missing {[n for n in c.needles if n not in text]}",
            seconds > c.max_seconds and f"took {seconds:.1f}s",
        ]
        if any(wrong):
            problems.append(f"{' '.join(c.args)}: {[w for w in wrong if w]}\n  stderr: {text[-800:]}\n")
    assert not problems, "\n".join(problems)


def cli(
    *args: str, env: dict[str, str], changes: dict[str, str | None] | None = None
) -> subprocess.CompletedProcess[str]:
    """Like conftest's `run_cli`, but a variable changed to None is removed from the environment."""
    full = {**os.environ, **env, "TZ": "Pacific/Kiritimati", "COLUMNS": "200", "NO_COLOR": "1"}
    for key, value in (changes or {}).items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    exe = Path(sys.executable).with_name("usersnap-channels")
    return subprocess.run([str(exe), *args], env=full, input="", capture_output=True, text=True, timeout=120)


@pytest.fixture
def connected(env: dict[str, str]) -> dict[str, str]:
    """A channel 'Feedback' with one connected source 'Acme'."""
    result = run_cli(
        "connect", "--channel", "Feedback", "--source", "Acme", *ACME, "--all-projects", "--backfill", "7d", env=env
    )
    assert result.returncode == 0, result.stderr
    return env


def test_unknown_names_bad_values_usage_errors_and_missing_variables(
    connected: dict[str, str], devserver: DevServer
) -> None:
    known = "Known sources: Feedback / Acme"
    check_all(
        connected,
        [
            case("sync", "--channel", "Nope", expect=("No channel 'Nope'", known)),
            case("sync", "--source", "Nope", expect=("No source 'Nope' in any channel", known)),
            case(*["sync", "--channel", "Feedback", "--source", "Nope"], expect=("No source 'Nope' in channel", known)),
            case(*["disconnect", "--channel", "Nope", "--source", "Acme", "--yes"], expect=("No source 'Acme'", known)),
            case(*["delete", "--channel", "Feedback", "--source", "Nope", "--yes"], expect=("No source 'Nope'", known)),
            case(*["update-credentials", "--channel", "Nope", "--source", "Acme"], *ACME, expect=("No source", known)),
            case("status", "--channel", "Nope", expect="No such option"),  # status has no filters: usage error
            case(
                *CONNECT,
                *["--project", "Nope", "--backfill", "7d"],
                expect=("Unknown project 'Nope'", devserver.workspace("Acme").projects[0]["name"]),
            ),
            case(*CONNECT, *["--all-projects", "--backfill", "2w"], expect=("must be one of 7d, 30d, 90d, 6m", "'2w'")),
            case("connect", *ACME, "--all-projects", "--backfill", "7d", expect="Missing"),  # no --channel
            case("frobnicate", expect="No such command"),
            # missing environment variables, named
            case("projects", *ACME, env={"ACME_JWT_SECRET": None}, expect="ACME_JWT_SECRET is not set"),
            case(
                *CONNECT[:5],
                *["--jwt-id-env", "NO_ID", "--jwt-secret-env", "NO_SECRET", "--all-projects", "--backfill", "7d"],
                expect="NO_ID and NO_SECRET are not set",
            ),
            case(
                *["update-credentials", "--channel", "Feedback", "--source", "Acme"],
                *["--jwt-id-env", "ACME_JWT_ID", "--jwt-secret-env", "ACME_NEW_SECRET"],
                expect="ACME_NEW_SECRET is not set",
            ),
            case("sync", env={"ACME_JWT_ID": None}, expect=("ACME_JWT_ID is not set", "source 'Acme'")),
        ],
    )
    db = connected["USERSNAP_CHANNELS_DB"]
    (error,) = query(db, "SELECT last_error FROM sources")[0]
    assert "ACME_JWT_ID is not set" in error  # `status` shows it
    assert query(db, "SELECT count(*) FROM data_points") == [(0,)]


def test_a_source_missing_its_variables_does_not_stop_the_others(connected: dict[str, str]) -> None:
    env = connected
    globex = ["connect", "--channel", "Feedback", "--source", "Globex", *GLOBEX]
    added = run_cli(*globex, "--all-projects", "--backfill", "7d", env=env)
    assert added.returncode == 0, added.stderr
    result = cli("sync", env=env, changes={"ACME_JWT_SECRET": None})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "ACME_JWT_SECRET is not set" in result.stderr and "Traceback" not in result.stderr
    assert "1/2 source(s) up to date" in result.stdout
    synced = dict(query(env["USERSNAP_CHANNELS_DB"], "SELECT source_name, count(*) FROM data_points GROUP BY 1"))
    assert synced.get("Globex", 0) > 0 and "Acme" not in synced


def test_an_unreachable_usersnap_fails_in_seconds(connected: dict[str, str]) -> None:
    off = {"USERSNAP_BASE_URL": UNREACHABLE}
    check_all(
        connected,
        [
            case("projects", *ACME, env=off, expect=("127.0.0.1:9", "USERSNAP_BASE_URL"), within=15),
            case(*CONNECT, "--all-projects", "--backfill", "7d", env=off, expect="USERSNAP_BASE_URL", within=15),
            case(
                *["update-credentials", "--channel", "Feedback", "--source", "Acme"],
                *ACME,
                env=off,
                expect="USERSNAP_BASE_URL",
                within=15,
            ),
            case("sync", env=off, expect=("Cannot reach Usersnap at " + UNREACHABLE, "nothing was synced"), within=20),
            case(
                "projects", *ACME, env={"USERSNAP_BASE_URL": "platform.usersnap.com/v0.1"}, expect="No scheme supplied"
            ),
        ],
    )
    assert query(connected["USERSNAP_CHANNELS_DB"], "SELECT last_synced_at, last_error FROM sources") == [(None, None)]


@pytest.fixture
def locked_db(tmp_path: Path) -> Iterator[Path]:
    """A channels database held open read-write by another program for the duration of the test."""
    path = tmp_path / "locked.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time\n"
            "from usersnap_channels.warehouse.connection import ensure_schema\n"
            "con = duckdb.connect(sys.argv[1]); ensure_schema(con); con.execute('CHECKPOINT')\n"
            "print('ready', flush=True); time.sleep(120)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        yield path
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


def test_a_locked_corrupt_or_foreign_database_and_a_missing_dagster_home(
    env: dict[str, str], devserver: DevServer, locked_db: Path, tmp_path: Path
) -> None:
    add_source(env["USERSNAP_CHANNELS_DB"], devserver, "Acme", window="7d")
    locked = {"USERSNAP_CHANNELS_DB": str(locked_db), "USERSNAP_CHANNELS_LOCK_TIMEOUT_S": "1"}
    busy = ("is locked by another program", str(locked_db))
    corrupt = tmp_path / "corrupt.duckdb"
    corrupt.write_bytes(os.urandom(64 * 1024))
    truncated = tmp_path / "truncated.duckdb"
    truncated.write_bytes(Path(env["USERSNAP_CHANNELS_DB"]).read_bytes()[:5000])
    foreign = tmp_path / "foreign.duckdb"
    con = duckdb.connect(str(foreign))
    con.execute("CREATE TABLE t (x INT)")
    con.close()
    advice = "USERSNAP_CHANNELS_DB"
    missing_home = tmp_path / "no-such-home"
    check_all(
        env,
        [
            # held open read-write by another program: give up after USERSNAP_CHANNELS_LOCK_TIMEOUT_S
            case("status", env=locked, expect=busy, within=10),
            case("sync", env=locked, expect=busy, within=10),
            case(*CONNECT, "--all-projects", "--backfill", "7d", env=locked, expect=busy, within=10),
            case(*["disconnect", "--channel", "C", "--source", "S", "--yes"], env=locked, expect=busy, within=10),
            case(
                "status",
                env={"USERSNAP_CHANNELS_LOCK_TIMEOUT_S": "soon"},
                expect="USERSNAP_CHANNELS_LOCK_TIMEOUT_S must be a number of seconds",
            ),
            # random bytes, a truncated file, a folder, somebody else's DuckDB database
            case("status", env={"USERSNAP_CHANNELS_DB": str(corrupt)}, expect=(str(corrupt), advice)),
            case("sync", env={"USERSNAP_CHANNELS_DB": str(corrupt)}, expect=(str(corrupt), advice)),
            case(
                *CONNECT,
                *["--all-projects", "--backfill", "7d"],
                env={"USERSNAP_CHANNELS_DB": str(corrupt)},
                expect=(str(corrupt), advice),
            ),
            case("status", env={"USERSNAP_CHANNELS_DB": str(truncated)}, expect=(str(truncated), advice)),
            case("status", env={"USERSNAP_CHANNELS_DB": str(tmp_path)}, expect=(str(tmp_path), advice)),
            case("status", env={"USERSNAP_CHANNELS_DB": str(foreign)}, expect=("not a channels database", advice)),
            # a DAGSTER_HOME that does not exist
            case("sync", env={"DAGSTER_HOME": str(missing_home)}, expect=("DAGSTER_HOME", str(missing_home))),
        ],
    )
