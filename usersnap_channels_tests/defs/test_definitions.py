"""The code location loads as `dagster dev` loads it, and every job, sensor and schedule resolves."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from usersnap_channels.definitions import build_definitions
from usersnap_channels_tests.conftest import REPO
from usersnap_channels_tests.helpers import ASSET_KEYS


def test_every_definition_resolves(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    # (with a live instance: resolving can otherwise reach one an earlier test disposed of)
    defs = build_definitions(database=str(tmp_path / "x.duckdb"))
    for name in ("feedback_import_job", "usersnap_sync_job", "projects_refresh_job", "themes_job"):
        assert defs.resolve_job_def(name)
    assert defs.resolve_sensor_def("usersnap_sync_sensor")
    assert defs.resolve_schedule_def("usersnap_late_arrivals_schedule")
    assert defs.resolve_schedule_def("themes_recompute_schedule")
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == ASSET_KEYS
    for key in ("data_points", "data_point_themes", "themes", "theme_trends"):
        spec = defs.resolve_assets_def(key).specs_by_key[dg.AssetKey(key)]
        assert spec.description and spec.metadata["dagster/column_schema"].columns, key


def test_dagster_definitions_validate_passes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    env = {**os.environ, "DAGSTER_HOME": str(home), "USERSNAP_CHANNELS_DB": str(tmp_path / "x.duckdb")}
    exe = Path(sys.executable).with_name("dagster")
    result = subprocess.run(
        [str(exe), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All code locations passed validation" in result.stdout + result.stderr


def test_loading_the_definitions_leaves_the_heavy_libraries_for_the_steps_that_use_them() -> None:
    """Every process that loads the definitions (each run, the daemon, the code server) pays for what they
    import: the clustering (scipy), the model (onnxruntime) and the report (Altair, Jinja2) load in their steps."""
    heavy = ("scipy", "sknetwork", "onnxruntime", "tokenizers", "altair", "jinja2", "sklearn")
    code = f"import sys, usersnap_channels.definitions; print([m for m in {heavy!r} if m in sys.modules])"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
