"""The project's instance (dagster.yaml): Dagster's SQLite storage with the event log's engines kept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from usersnap_channels.defs.sqlite_storage import KEPT_SHARDS, KeptEngineSqliteEventLogStorage
from usersnap_channels_tests.conftest import REPO


@dg.asset
def counted() -> int:
    return 1


def project_home(path: Path) -> Path:
    path.mkdir()
    (path / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    return path


def test_the_project_instance_keeps_engines_in_dagsters_own_layout(tmp_path: Path) -> None:
    home = project_home(tmp_path / "home")
    runs = KEPT_SHARDS + 4
    with dg.DagsterInstance.from_config(str(home)) as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, KeptEngineSqliteEventLogStorage)
        for _ in range(runs):
            assert dg.materialize([counted], instance=instance).success
        assert len(storage._kept) == KEPT_SHARDS  # the index and the latest runs, no more
        assert len(instance.fetch_materializations(counted.key, limit=100).records) == runs
    assert (home / "history" / "runs" / "index.db").exists()  # where Dagster's default storage keeps it
    assert (home / "history" / "runs.db").exists()
    # another process (the webserver, the daemon) reads the same history with Dagster's own storage
    script = (
        "import dagster as dg, sys\n"
        "from dagster._core.storage.sqlite_storage import DagsterSqliteStorage\n"
        f"s = DagsterSqliteStorage.from_local({str(home)!r})\n"
        "print(len(s.event_log_storage.fetch_materializations(dg.AssetKey('counted'), limit=100).records))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == str(runs)


def test_an_instance_loaded_from_its_folder_keeps_its_own_history_whatever_dagster_home_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = project_home(tmp_path / "first"), project_home(tmp_path / "second")
    monkeypatch.setenv("DAGSTER_HOME", str(first))
    with dg.DagsterInstance.from_config(str(second)) as instance:
        assert dg.materialize([counted], instance=instance).success
        assert isinstance(instance.event_log_storage, KeptEngineSqliteEventLogStorage)
    assert (second / "history" / "runs" / "index.db").exists()
    assert not (first / "history").exists()


def test_the_dagster_internals_it_overrides_are_still_there(tmp_path: Path) -> None:
    """Fails loudly when a Dagster upgrade moves what the kept-engine storage replaces or relies on."""
    for name in ("_connect", "_initdb", "conn_string_for_shard", "run_connection", "index_connection"):
        assert callable(getattr(SqliteEventLogStorage, name)), name
    storage = SqliteEventLogStorage.__new__(SqliteEventLogStorage)
    storage.__init__("/tmp/does-not-matter-" + str(id(storage)))
    assert hasattr(storage, "_db_lock") and hasattr(storage, "_initialized_dbs")
    storage.dispose()
