"""The themes worker process: its own environment, started early, and light."""

from __future__ import annotations

import os
import sys

import pytest

from usersnap_channels.themes.worker import CLUSTERING_MODULES, IsolatedWorker, run_isolated


def blas_threads() -> int:
    """Threads OpenBLAS runs in this process (threadpoolctl reads it from the loaded library)."""
    import numpy as np
    from threadpoolctl import threadpool_info

    np.ones((64, 64)) @ np.ones((64, 64))
    return max(info["num_threads"] for info in threadpool_info() if info["internal_api"] == "openblas")


def loaded(module: str) -> bool:
    return module in sys.modules


@pytest.fixture
def no_blas_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)


@pytest.mark.usefixtures("no_blas_setting")
def test_worker_runs_openblas_single_threaded() -> None:
    """The kNN search threads its own blocks: OpenBLAS threads on top only spun on the same cores."""
    threads, _ = run_isolated(blas_threads)
    assert threads == 1
    assert os.environ.get("OPENBLAS_NUM_THREADS") is None  # the caller's environment is untouched


def test_a_users_blas_setting_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    threads, _ = run_isolated(blas_threads)
    assert threads == 2


def test_worker_imports_the_clustering_before_its_job() -> None:
    with IsolatedWorker(warm=CLUSTERING_MODULES) as worker:
        (was_loaded, rss_mb) = worker.run(loaded, "sknetwork.clustering")
    assert was_loaded
    assert 0 < rss_mb < 300


def test_worker_main_is_not_the_callers() -> None:
    """A worker never re-imports the CLI or Dagster as its main module (+1.4 s and ~100 MB each)."""
    dagster_loaded, _ = run_isolated(loaded, "dagster")
    assert not dagster_loaded
