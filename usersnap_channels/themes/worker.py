"""Model and clustering work in a spawned process of its own, so their memory never adds to the caller's.

The Dagster step (and the CLI) stay lean: they read inputs from DuckDB, hand plain arrays to the worker,
and write what comes back. The worker also reports its own peak RSS (the benchmark's themes_step_rss_mb).
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from usersnap_channels.themes.discovery import UNASSIGNED
from usersnap_channels.themes.stability import recompute
from usersnap_channels.themes.summary import Theme, summarise

T = TypeVar("T")


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _exit_with_parent(parent_pid: int, interval_s: float = 0.5) -> None:
    """Worker initializer: exit once the process that started it is gone (a killed sync must not leave a
    worker computing for nobody). Kept here, not taken from `ingest.workers`, so a themes worker never loads
    the import's modules (pyarrow, DuckDB, the HTTP client): ~100 MB of resident memory per worker."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _measured(fn: Callable[..., T], *args: Any) -> tuple[T, float]:
    return fn(*args), peak_rss_mb()


def run_isolated(fn: Callable[..., T], *args: Any) -> tuple[T, float]:
    """`fn(*args)` in a fresh spawned process (it exits with this one); returns (result, its peak RSS MB)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context, initializer=_exit_with_parent, initargs=(os.getpid(),)) as pool:
        return pool.submit(_measured, fn, *args).result()


def embed_texts(texts: Sequence[str]) -> np.ndarray:
    """Unit vectors of the texts (loads the model: run it through `run_isolated`)."""
    from usersnap_channels.themes.embedding import Embedder

    embedder = Embedder()
    try:
        return embedder.embed(list(texts))
    finally:
        embedder.close()


@dataclass
class RecomputeJob:
    """Everything a full recompute of one channel needs, as plain data."""

    keys: list[tuple[str, str]]
    texts: list[str]
    vectors: np.ndarray
    previous: dict[tuple[str, str], int]
    next_id: int


@dataclass
class RecomputeOutcome:
    """Theme id per key (None: unassigned), member scores, the themes found, and how ids moved."""

    ids: list[int | None]
    scores: np.ndarray
    themes: list[Theme]
    events: list[dict[str, Any]]
    next_id: int


def recompute_themes(job: RecomputeJob) -> RecomputeOutcome:
    """Discover themes over every vector, keeping the ids of themes that still exist."""
    result = recompute(job.vectors, job.keys, job.previous or None, job.next_id, texts=job.texts)
    themes = summarise(job.vectors, job.texts, result.ids)
    scores = np.zeros(len(job.keys), dtype=np.float32)
    for theme in themes:
        scores[theme.members] = theme.scores
    ids = [None if int(i) == UNASSIGNED else int(i) for i in result.ids]
    return RecomputeOutcome(ids, scores, themes, result.events, result.next_id)
