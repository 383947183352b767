"""An analyst's DuckDB session next to syncs: `sync` waits for the database (bounded, naming the holder, saying
how to avoid it), and the snapshot analysts keep open instead never gets in a sync's way. Real processes
throughout: the CLI as a subprocess, readers as other Python processes holding real DuckDB connections."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

import duckdb
import pytest

from usersnap_channels.devserver import DevServer
from usersnap_channels.partitions import utc_today
from usersnap_channels.warehouse.connection import connect
from usersnap_channels.warehouse.schema import TABLES
from usersnap_channels.warehouse.snapshot import refresh_snapshot, snapshot_path
from usersnap_channels_tests.conftest import run_cli

#: A reader in its own process: opens FILE read-only, prints the data points it sees, and again on every
#: line read from stdin, until stdin closes (or after HOLD seconds when HOLD > 0, then it closes the file).
READER = """
import sys, time, duckdb
path, hold = sys.argv[1], float(sys.argv[2])
con = duckdb.connect(path, read_only=True)
print(con.execute("SELECT count(*) FROM data_points").fetchone()[0], flush=True)
if hold > 0:
    time.sleep(hold)
else:
    for _ in sys.stdin:
        print(con.execute("SELECT count(*) FROM data_points").fetchone()[0], flush=True)
con.close()
"""


@contextmanager
def reader(path: str | Path, hold_s: float = 0.0) -> Iterator[subprocess.Popen[str]]:
    """A process holding a read-only session on `path` (its first line, the count, already read)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", READER, str(path), str(hold_s)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.strip().isdigit(), proc.stderr.read() if proc.stderr else first
        proc.first_count = int(first)  # type: ignore[attr-defined]
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _connect_acme(env: dict[str, str]) -> None:
    connected = run_cli(
        "connect", "--channel", "Product feedback", "--source", "Acme", "--jwt-id-env", "ACME_JWT_ID",
        "--jwt-secret-env", "ACME_JWT_SECRET", "--all-projects", "--backfill", "7d", env=env,
    )  # fmt: skip
    assert connected.returncode == 0, connected.stderr


def _differences(db: str, snapshot: Path) -> dict[str, int]:
    """Rows of each table that are in one file and not in the other (every column compared)."""
    con = duckdb.connect(str(snapshot), read_only=True)
    try:
        con.execute(f"ATTACH '{db}' AS live (READ_ONLY)")
        out = {}
        for name in TABLES:
            query = (
                f"SELECT count(*) FROM (SELECT * FROM main.{name} EXCEPT ALL SELECT * FROM live.{name}) UNION ALL "
                f"SELECT count(*) FROM (SELECT * FROM live.{name} EXCEPT ALL SELECT * FROM main.{name})"
            )
            out[name] = sum(r[0] for r in con.execute(query).fetchall())
        return out
    finally:
        con.close()


def test_sync_waits_for_an_analysts_session_and_says_how_to_avoid_it(env, devserver: DevServer) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    _connect_acme(env)
    with reader(db, hold_s=8.0) as analyst:
        started = time.monotonic()
        synced = run_cli("sync", env={**env, "USERSNAP_CHANNELS_LOCK_TIMEOUT_S": "120"})
        elapsed = time.monotonic() - started
    assert synced.returncode == 0, synced.stderr
    message = " ".join(synced.stderr.split())
    assert f"PID {analyst.pid})" in message, message  # names the holder
    assert "waiting up to 120 s" in message
    assert str(snapshot_path(db)) in message and "close your session" in message
    assert "Traceback" not in synced.stderr
    assert 4.0 < elapsed < 60.0  # it waited for the session to close, not for the whole bound
    assert synced.stdout.strip().splitlines()[-1].startswith("Sync done: 1/1 source(s) up to date")


def test_a_session_held_past_the_bound_fails_the_sync_with_the_holder_and_the_way_out(env, devserver) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    _connect_acme(env)
    with reader(db) as analyst:  # held until the block ends
        started = time.monotonic()
        synced = run_cli("sync", env={**env, "USERSNAP_CHANNELS_LOCK_TIMEOUT_S": "2"})
        elapsed = time.monotonic() - started
    assert synced.returncode == 2, synced.stderr
    message = " ".join(synced.stderr.split())
    assert re.search(rf"locked by another program \(.+, PID {analyst.pid}\)", message), message
    assert "not released within 2 s" in message and str(snapshot_path(db)) in message
    assert "Traceback" not in synced.stderr
    assert elapsed < 30.0
    # once the session is closed, the next sync goes through
    assert run_cli("sync", env=env).returncode == 0


def test_the_snapshot_equals_the_database_and_a_reader_of_it_never_blocks_a_sync(env, devserver: DevServer) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    snapshot = snapshot_path(db)
    _connect_acme(env)
    assert not snapshot.exists()
    first = run_cli("sync", env=env)
    assert first.returncode == 0, first.stderr
    assert snapshot.exists() and snapshot.parent == Path(db).parent
    assert _differences(db, snapshot) == dict.fromkeys(TABLES, 0)
    assert not list(snapshot.parent.glob(f".{snapshot.name}.*.tmp"))  # no temporary file left behind

    project = devserver.workspace("Acme").projects[0]["project_id"]
    devserver.add_feedback(project, created_at=datetime.now(UTC) - timedelta(minutes=5))
    with reader(snapshot) as analyst:  # an analyst keeps the snapshot open across the next sync
        again = run_cli("sync", env={**env, "USERSNAP_CHANNELS_LOCK_TIMEOUT_S": "1"})
        assert again.returncode == 0, again.stderr
        assert "held by another program" not in again.stderr
        assert analyst.stdin is not None and analyst.stdout is not None
        analyst.stdin.write("\n")
        analyst.stdin.flush()
        assert int(analyst.stdout.readline()) == analyst.first_count  # its open copy stays as it was
    con = duckdb.connect(str(snapshot), read_only=True)  # the renamed-in copy has the new row
    try:
        assert con.execute("SELECT count(*) FROM data_points").fetchone()[0] == analyst.first_count + 1
    finally:
        con.close()
    assert _differences(db, snapshot) == dict.fromkeys(TABLES, 0)


#: Opens FILE read-only again and again until STOP exists, printing every count it sees; any error fails it.
LOOPING_READER = """
import os, sys, duckdb
path, stop = sys.argv[1], sys.argv[2]
opened = 0
while not os.path.exists(stop) or opened == 0:
    con = duckdb.connect(path, read_only=True)
    print(con.execute("SELECT count(*) FROM data_points").fetchone()[0], flush=True)
    con.close()
    opened += 1
"""


def test_readers_only_ever_see_a_whole_snapshot_while_it_is_refreshed(tmp_path: Path) -> None:
    db = str(tmp_path / "channels.duckdb")
    snapshot = snapshot_path(db)
    leftover = snapshot.with_name(f".{snapshot.name}.99999.tmp")  # of a refresh killed mid-copy
    leftover.write_bytes(b"half a file")
    stop = tmp_path / "stop"
    day = utc_today() - timedelta(days=1)
    insert = (
        "INSERT INTO data_points (channel_name, source_id, source_name, project_id, feedback_id, submitted_at, "
        "partition_date, tags, text, imported_at) SELECT 'c', 's', 's', 'p', ? || '-' || i, ?, ?, [], "
        "repeat('x', 2000), now() FROM range(2000) t(i)"
    )
    con = connect(db)
    try:
        refresh_snapshot(con, db)
        assert not leftover.exists()
        # a process opening the snapshot over and over while it is replaced 15 times
        watcher = subprocess.Popen(
            [sys.executable, "-c", LOOPING_READER, str(snapshot), str(stop)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for batch in range(1, 16):
            con.execute(insert, [str(batch), datetime.combine(day, dtime(12), tzinfo=UTC), day])
            refresh_snapshot(con, db)
        stop.touch()
        out, errors = watcher.communicate(timeout=120)
    finally:
        con.close()
    assert watcher.returncode == 0, errors  # never a half-written file, never a lock conflict
    seen = [int(n) for n in out.split()]
    assert len(seen) >= 2 and set(seen) <= {2000 * i for i in range(16)}
    assert seen == sorted(seen)  # a reader never goes back to an older copy
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("name", ["channels.duckdb", "team.db"])
def test_the_snapshot_sits_next_to_the_database(tmp_path: Path, name: str) -> None:
    path = snapshot_path(tmp_path / name)
    assert path.parent == tmp_path
    assert path.name == {"channels.duckdb": "channels.snapshot.duckdb", "team.db": "team.db.snapshot.duckdb"}[name]
    assert os.fspath(path).endswith(".snapshot.duckdb")
