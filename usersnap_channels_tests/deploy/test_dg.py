"""`dg` sees the project as `dagster` and workspace.yaml do: `dg check defs`, `dg list defs` and `dg dev` (what
`make dev` runs) work offline on the project's own instance settings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from usersnap_channels.devserver.process import free_port
from usersnap_channels_tests.conftest import REPO
from usersnap_channels_tests.helpers import ASSET_KEYS

DG = Path(sys.executable).with_name("dg")

DAEMON_AND_SENSOR = """
{
  instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } }
  sensorOrError(sensorSelector: {repositoryName: "__repository__", repositoryLocationName: "usersnap_channels",
                                 sensorName: "usersnap_sync_sensor"}) {
    ... on Sensor { sensorState { status ticks(limit: 1) { status skipReason } } }
  }
}
"""


def dg_env(tmp_path: Path) -> dict[str, str]:
    """A throwaway instance with the project's dagster.yaml and DuckDB file; the project's venv named active
    (as the Makefile does), so dg runs this Python without a warning."""
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "USERSNAP_CHANNELS_DB": str(tmp_path / "channels.duckdb"),
        "VIRTUAL_ENV": str(Path(sys.executable).parents[1]),
        "NO_COLOR": "1",
    }


def run_dg(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(DG), *args], cwd=REPO, env=dg_env(tmp_path), capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_dg_check_defs_passes_without_warnings(tmp_path: Path) -> None:
    result = run_dg(tmp_path, "check", "defs")
    assert "All definitions loaded successfully." in result.stdout + result.stderr
    assert "does not match the virtual environment" not in result.stdout + result.stderr
    assert not (tmp_path / "channels.duckdb").exists(), "checking the definitions must not create the database"


def test_dg_list_defs_lists_every_asset_job_sensor_and_schedule(tmp_path: Path) -> None:
    listed = json.loads(run_dg(tmp_path, "list", "defs", "--json").stdout)
    assert {a["asset_key"] for a in listed["assets"]} == ASSET_KEYS
    assert {c["key"] for c in listed["asset_checks"]} == {
        "data_points:data_points_match_usersnap_count",
        "theme_trends:theme_trends_sum_to_themed_data_points",
    }
    assert {j["name"] for j in listed["jobs"]} == {
        "feedback_import_job",
        "usersnap_sync_job",
        "projects_refresh_job",
        "themes_job",
    }
    assert {"usersnap_sync_sensor", "default_automation_condition_sensor"} <= {s["name"] for s in listed["sensors"]}
    assert {s["name"] for s in listed["schedules"]} == {"usersnap_late_arrivals_schedule", "themes_recompute_schedule"}
    assert {r["name"] for r in listed["resources"]} == {"usersnap", "duckdb"}


def test_make_dev_runs_dg_dev_on_the_project_instance_and_port() -> None:
    result = subprocess.run(
        ["make", "-n", "dev", "PORT=3001"], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    line = next(x for x in result.stdout.splitlines() if " dev " in x)
    assert f"DAGSTER_HOME={REPO}/.dagster_home" in line
    assert line.endswith(".venv/bin/dg dev -p 3001"), line


@contextmanager
def dg_dev(tmp_path: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`dg dev` in a process group of its own, stopped as Ctrl-C stops it (SIGINT, then the whole group killed
    if it hangs). SIGINT is reset to Python's handler for the child even where the test runner inherited it
    ignored (a background CI job), else dg would never see it."""
    log = open(tmp_path / "dg-dev.log", "wb")  # noqa: SIM115 (closed below, after the process)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            [str(DG), "dev", "-p", str(port)],
            cwd=REPO,
            env=dg_env(tmp_path),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


def test_dg_dev_serves_the_ui_and_runs_the_daemon_with_the_sync_sensor(tmp_path: Path) -> None:
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    with dg_dev(tmp_path, port) as proc:
        deadline = time.monotonic() + 150
        info: dict[str, Any] | None = None
        state: dict[str, Any] | None = None
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(1)
            try:
                if info is None:
                    info = requests.get(f"{root}/server_info", timeout=5).json()
                data = requests.post(f"{root}/graphql", json={"query": DAEMON_AND_SENSOR}, timeout=10).json()
            except requests.RequestException:
                continue
            daemons = {d["daemonType"]: d for d in data["data"]["instance"]["daemonHealth"]["allDaemonStatuses"]}
            sensor = data["data"]["sensorOrError"].get("sensorState") or {}
            if daemons.get("SENSOR", {}).get("healthy") and sensor.get("ticks"):
                state = {"daemons": daemons, "sensor": sensor}
                break
        log = (tmp_path / "dg-dev.log").read_text(errors="replace")
        assert proc.poll() is None, f"dg dev exited ({proc.returncode}):\n{log}"
        assert info is not None and info["dagster_version"], log
        assert state is not None, f"no healthy sensor daemon with a sensor tick within 150 s:\n{log}"
    assert state["sensor"]["status"] == "RUNNING"
    assert state["sensor"]["ticks"][0]["status"] == "SKIPPED"  # no channels database yet
    assert "connect a source first" in state["sensor"]["ticks"][0]["skipReason"]
    assert all(d["healthy"] for d in state["daemons"].values() if d["required"]), state["daemons"]
    assert "Dagster services shut down." in (tmp_path / "dg-dev.log").read_text(errors="replace")  # as on Ctrl-C
