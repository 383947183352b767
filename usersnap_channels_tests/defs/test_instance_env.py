"""The run environment (`defs/instance_env.py`) reaches every process that creates or runs runs, and a value
the user set wins."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from usersnap_channels.defs.instance_env import RUN_ENV, apply_run_env


def test_apply_sets_what_is_unset_and_keeps_what_the_user_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in RUN_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "50")
    assert apply_run_env() == {**RUN_ENV, "DAGSTER_EVENT_BATCH_SIZE": "50"}
    assert os.environ["DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"] == "1"


def test_the_wrapper_that_make_dev_uses_hands_the_settings_to_its_command() -> None:
    env = {k: v for k, v in os.environ.items() if k not in RUN_ENV}
    printed = subprocess.run(
        [sys.executable, "-m", "usersnap_channels.defs.instance_env", "env"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert {f"{k}={v}" for k, v in RUN_ENV.items()} <= set(printed.splitlines())


def test_loading_the_definitions_applies_them_for_the_run_workers_a_code_server_starts() -> None:
    env = {k: v for k, v in os.environ.items() if k not in RUN_ENV}
    code = "import os, usersnap_channels.definitions; print(os.environ.get('DAGSTER_EVENT_BATCH_SIZE'))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == RUN_ENV["DAGSTER_EVENT_BATCH_SIZE"], done.stderr
