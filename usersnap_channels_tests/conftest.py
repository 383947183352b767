"""Shared fixtures: a real local Usersnap server over HTTP, real DuckDB files, a real Dagster instance."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from usersnap_channels.defs.jobs import import_config, range_tags
from usersnap_channels.devserver import DevServer
from usersnap_channels.partitions import utc_today, window_start
from usersnap_channels.warehouse.connection import connect
from usersnap_channels.warehouse.registry import Project, Source, connect_source

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_leftover_defs_state_storage() -> Iterator[None]:
    """Each test starts with no current Dagster defs-state storage. Dagster keeps the storage of the last
    instance entered in a context variable; one left behind by an instance an earlier test in the same
    worker disposed of makes building definitions fail ("undefined DagsterInstance weakref"), depending
    on test order. Test hygiene only: a real process enters one instance and keeps it."""
    from dagster._core.storage.defs_state.base import set_defs_state_storage

    with set_defs_state_storage(None):
        yield


@pytest.fixture
def devserver() -> Iterator[DevServer]:
    """A small dev server: 2 workspaces, 5 projects, 40 days of ~3 items per project and day."""
    with DevServer(seed=7, days=40, items_per_day=3.0) as server:
        yield server


@pytest.fixture
def env(devserver: DevServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point everything at the dev server, a temp DuckDB file and a temp Dagster home."""
    values = {
        **devserver.env(),
        "USERSNAP_BASE_URL": devserver.base_url,
        "USERSNAP_CHANNELS_DB": str(tmp_path / "channels.duckdb"),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        # the import's suites leave the themes step out (it would embed every run's texts); the themes
        # suites turn it on with the `themes_on` fixture
        "USERSNAP_CHANNELS_THEMES": "off",
    }
    Path(values["DAGSTER_HOME"]).mkdir()
    (Path(values["DAGSTER_HOME"]) / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


@pytest.fixture
def themes_on(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The `env` fixture with the themes step on (as it is by default for users)."""
    monkeypatch.setenv("USERSNAP_CHANNELS_THEMES", "on")
    env["USERSNAP_CHANNELS_THEMES"] = "on"
    return env


@pytest.fixture
def instance(env: dict[str, str]) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.get() as inst:
        yield inst


def add_source(
    db_path: str,
    devserver: DevServer,
    workspace: str,
    *,
    channel: str = "Product feedback",
    source: str | None = None,
    window: str = "30d",
    projects: list[str] | None = None,
    now: datetime | None = None,
) -> Source:
    """Register a source for a dev-server workspace directly in the registry (the CLI is tested apart)."""
    ws = devserver.workspace(workspace)
    picked = [p for p in ws.projects if projects is None or p["name"] in projects]
    con = connect(db_path)
    try:
        return connect_source(
            con,
            channel=channel,
            source=source or workspace,
            jwt_id_env=f"{workspace.upper()}_JWT_ID",
            jwt_secret_env=f"{workspace.upper()}_JWT_SECRET",
            backfill_window=window,
            window_start=window_start(window, utc_today(now or datetime.now(UTC))),
            projects=[Project(p["project_id"], p["name"]) for p in picked],
        )
    finally:
        con.close()


def run_import(
    defs: dg.Definitions, instance: dg.DagsterInstance, first: date, last: date, **config: Any
) -> dg.ExecuteInProcessResult:
    """`feedback_import_job` over the UTC days [first, last] as one single-run backfill (as the UI runs it)."""
    run_config = import_config(**config) if config else None
    return defs.resolve_job_def("feedback_import_job").execute_in_process(
        instance=instance, run_config=run_config, tags=range_tags(first, last), raise_on_error=False
    )


def run_cli(
    *args: str,
    env: dict[str, str],
    input: str | None = None,
    tz: str = "Pacific/Kiritimati",
    cwd: Path | None = None,
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    """The real console script in a subprocess, under a time zone far from UTC (UTC+14)."""
    full_env = {**os.environ, **env, "TZ": tz, "COLUMNS": "200", "NO_COLOR": "1"}
    exe = Path(sys.executable).with_name("usersnap-channels")
    return subprocess.run(
        [str(exe), *args],
        env=full_env,
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )
