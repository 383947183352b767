"""Model and clustering work in a spawned process of its own, so their memory never adds to the caller's.

The Dagster step (and the CLI) stay lean: they read inputs from DuckDB, hand plain arrays to the worker,
and write what comes back. The worker also reports its own peak RSS (the benchmark's themes_step_rss_mb).
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from usersnap_channels.processes import exit_with_parent, peak_rss_mb
from usersnap_channels.themes.discovery import UNASSIGNED
from usersnap_channels.themes.stability import recompute
from usersnap_channels.themes.summary import Theme, summarise

T = TypeVar("T")


def _measured(fn: Callable[..., T], *args: Any) -> tuple[T, float]:
    return fn(*args), peak_rss_mb()


@contextmanager
def _as_main_module() -> Iterator[None]:
    """While a worker is spawned, present `worker_main` as the caller's `__main__`.

    A spawned child first re-imports the parent's main module: under the CLI that is `usersnap-channels`,
    which loads the CLI and Dagster, +1.4 s and ~100 MB in every themes worker for nothing. Workers only
    run functions of this package, so a light module is all they need as their main, and it runs before
    anything else in the worker (see `worker_main`). (Processes start inside `submit` for the spawn method,
    so the swap lasts only that call.)
    """
    main = sys.modules["__main__"]
    had_spec, spec = hasattr(main, "__spec__"), getattr(main, "__spec__", None)
    main.__spec__ = importlib.util.find_spec("usersnap_channels.themes.worker_main")
    try:
        yield
    finally:
        if had_spec:
            main.__spec__ = spec
        else:
            del main.__spec__


#: What a clustering worker imports before its job arrives (see `IsolatedWorker`).
CLUSTERING_MODULES = ("sknetwork.clustering",)


def _warm_up(modules: tuple[str, ...]) -> None:
    for module in modules:
        importlib.import_module(module)


class IsolatedWorker:
    """One spawned process (it exits with this one), started before its job is ready.

    Why started early: spawning Python and importing NumPy, SciPy and scikit-network takes ~0.5 s, a fifth
    of a full recompute of 10k data points; started first, it overlaps the caller's DuckDB reads.
    """

    def __init__(self, warm: tuple[str, ...] = ()) -> None:
        context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(1, mp_context=context, initializer=exit_with_parent, initargs=(os.getpid(),))
        if warm:
            with _as_main_module():  # the process starts in this first submit
                self._pool.submit(_warm_up, warm)

    def run(self, fn: Callable[..., T], *args: Any) -> tuple[T, float]:
        """`fn(*args)` in the worker; returns (result, the worker's peak RSS MB so far).

        `fn` must be importable by name (a function of a module, not of the caller's `__main__`)."""
        with _as_main_module():
            future = self._pool.submit(_measured, fn, *args)
        return future.result()

    def __enter__(self) -> IsolatedWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown()


def run_isolated(fn: Callable[..., T], *args: Any) -> tuple[T, float]:
    """`fn(*args)` in a fresh spawned process; returns (result, its peak RSS MB)."""
    with IsolatedWorker() as worker:
        return worker.run(fn, *args)


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
