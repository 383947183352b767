"""A source's life through the real CLI (subprocesses): disconnect and delete, their confirmations word for
word, answered through stdin, and what each leaves in DuckDB."""

from __future__ import annotations

import dagster as dg
import pytest

from usersnap_channels.definitions import build_definitions
from usersnap_channels.defs.jobs import feedback_import_job, range_tags
from usersnap_channels.devserver import DevServer
from usersnap_channels.partitions import utc_today, window_start
from usersnap_channels.warehouse.connection import connect
from usersnap_channels.warehouse.registry import Source
from usersnap_channels_tests.conftest import add_source, run_cli

CHANNEL = "Product feedback"
DISCONNECT = (
    "Are you sure you want to disconnect Acme from Product feedback? This will immediately stop the Channel from "
    "ingesting any new data. Any data already imported from this source will remain in the Channel."
)
DELETE = (
    "Are you sure you want to delete {source} from Product feedback? This will delete all associated data points. "
    "This is permanent and cannot be undone."
)


def snapshot(db: str) -> dict[str, dict[str, int]]:
    """Rows per source in every table that has a `source_id` column (whatever tables exist by then)."""
    con = connect(db)
    try:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.columns WHERE column_name = 'source_id' ORDER BY 1"
            ).fetchall()
        ]
        return {t: dict(con.execute(f"SELECT source_id, count(*) FROM {t} GROUP BY 1").fetchall()) for t in tables}
    finally:
        con.close()


def registry(db: str) -> list[tuple]:
    con = connect(db)
    try:
        return con.execute("SELECT source_name, status, disconnected_at IS NOT NULL FROM sources ORDER BY 1").fetchall()
    finally:
        con.close()


@pytest.fixture
def two_sources(env, instance: dg.DagsterInstance, devserver: DevServer) -> tuple[Source, Source]:
    """Acme and Globex in one channel, their 7-day windows imported (24 units: a threaded import)."""
    db = env["USERSNAP_CHANNELS_DB"]
    today = utc_today()
    acme = add_source(db, devserver, "Acme", window="7d", projects=["Web App", "Checkout"])
    globex = add_source(db, devserver, "Globex", window="7d", projects=["Billing"])
    result = (
        build_definitions(database=db)
        .resolve_job_def(feedback_import_job.name)
        .execute_in_process(instance=instance, tags=range_tags(window_start("7d", today), today))
    )
    assert result.success
    return acme, globex


def test_disconnect_asks_keeps_the_data_and_stops_every_sync(env, devserver: DevServer, two_sources) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    acme, _globex = two_sources
    before = snapshot(db)
    assert before["data_points"][acme.source_id] > 0

    for answer in ("n\n", ""):  # anything but y/yes cancels, no answer at all too
        cancelled = run_cli("disconnect", "--channel", CHANNEL, "--source", "Acme", env=env, input=answer)
        assert cancelled.returncode == 0, cancelled.stderr
        assert cancelled.stdout.startswith(DISCONNECT + " [y/N]: ")
        assert "Cancelled: nothing changed." in cancelled.stdout
        assert registry(db) == [("Acme", "connected", False), ("Globex", "connected", False)]
        assert snapshot(db) == before

    done = run_cli("disconnect", "--channel", CHANNEL, "--source", "Acme", env=env, input="y\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(DISCONNECT + " [y/N]: ")
    assert registry(db) == [("Acme", "disconnected", True), ("Globex", "connected", False)]
    assert snapshot(db) == before  # every row stays

    # new feedback in Acme is never fetched: `sync` talks to Globex only and Acme's rows stay as they were
    devserver.add_feedback(acme.projects[0].project_id)
    devserver.clear_log()
    synced = run_cli("sync", env=env)
    assert synced.returncode == 0, synced.stderr
    assert devserver.request_log and {r.workspace for r in devserver.request_log} == {"Globex"}
    after = snapshot(db)
    assert {t: c.get(acme.source_id) for t, c in after.items()} == {t: c.get(acme.source_id) for t, c in before.items()}
    status = run_cli("status", env=env)
    assert status.returncode == 0 and "disconnected" in status.stdout


def test_delete_asks_then_removes_every_row_of_that_source_only(env, two_sources) -> None:
    db = env["USERSNAP_CHANNELS_DB"]
    acme, globex = two_sources
    before = snapshot(db)
    assert all(before[t].get(globex.source_id) for t in ("raw_feedback", "data_points", "sync_state"))

    cancelled = run_cli("delete", "--channel", CHANNEL, "--source", "Acme", env=env, input="N\n")
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.startswith(DELETE.format(source="Acme") + " [y/N]: ")
    assert "Cancelled: nothing changed." in cancelled.stdout
    assert snapshot(db) == before

    scripted = run_cli("delete", "--channel", CHANNEL, "--source", "Acme", "--yes", env=env)
    assert scripted.returncode == 0, scripted.stderr
    assert "Are you sure" not in scripted.stdout
    after = snapshot(db)
    for table, counts in after.items():
        assert acme.source_id not in counts, f"{table} still holds rows of the deleted source"
        assert counts.get(globex.source_id) == before[table].get(globex.source_id), table
    assert registry(db) == [("Globex", "connected", False)]

    confirmed = run_cli("delete", "--channel", CHANNEL, "--source", "Globex", env=env, input="y\n")
    assert confirmed.returncode == 0, confirmed.stderr
    assert confirmed.stdout.startswith(DELETE.format(source="Globex") + " [y/N]: ")
    assert all(not counts for counts in snapshot(db).values())
    assert f"Channel '{CHANNEL}' had no other source and was removed" in confirmed.stdout
    con = connect(db)
    assert con.execute("SELECT channel_name FROM channels").fetchall() == []  # no empty channel left behind
    con.close()
