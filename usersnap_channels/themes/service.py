"""Keeping a channel's themes current: embed new texts, assign them, recompute when drift says so.

Reads and writes go through `warehouse.themes` on short connections; the model and the clustering run
in a spawned worker (`worker.run_isolated`), so the caller's memory stays what the import needs.

Drift rule (when a sync's incremental assignment is no longer enough, a full recompute runs):
- the channel has no themes yet (`first`);
- at least DRIFT_MIN_ADDED data points were embedded since the last recompute and more than
  DRIFT_UNASSIGNED_SHARE of them fit no theme well (`drift-unassigned`);
- the channel's embedded data points grew by more than DRIFT_GROWTH since the last recompute (`drift-growth`).
Otherwise new data points only join their nearest theme (cosine ≥ ASSIGN_THRESHOLD to its centroid).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date

import duckdb
import numpy as np

from usersnap_channels.themes.assign import DEFAULT_THRESHOLD, assign_nearest
from usersnap_channels.themes.embedding import MODEL_NAME
from usersnap_channels.themes.worker import (
    CLUSTERING_MODULES,
    IsolatedWorker,
    RecomputeJob,
    RecomputeOutcome,
    embed_texts,
    recompute_themes,
    run_isolated,
)
from usersnap_channels.warehouse import themes as store

ConnectionFactory = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]

ASSIGN_THRESHOLD = DEFAULT_THRESHOLD
DRIFT_UNASSIGNED_SHARE = 0.15
DRIFT_MIN_ADDED = 20
DRIFT_GROWTH = 0.20
#: Below this many embedded data points a channel is not themed yet (too few to find groups in).
MIN_DATA_POINTS = 20


ProgressListener = Callable[[str], None]
_listeners: list[ProgressListener] = []


def add_progress_listener(listener: ProgressListener) -> None:
    """Let an in-process caller (the CLI's progress display) follow a themes run inside Dagster."""
    _listeners.append(listener)


def remove_progress_listener(listener: ProgressListener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def _progress(message: str) -> None:
    for listener in list(_listeners):
        listener(message)


@dataclass
class StepReport:
    """What one pass did (also the assets' metadata)."""

    embedded: int = 0
    assigned: int = 0
    recomputed: dict[str, str] = field(default_factory=dict)  # channel -> reason
    worker_rss_mb: float = 0.0


def embed_pending(connection: ConnectionFactory, report: StepReport, *, channel: str | None = None, days=None) -> int:
    """Embed every text (of a channel, or of the partitions in `days`) not embedded as it is now."""
    with connection() as con:
        pending = store.texts_to_embed(con, MODEL_NAME, channel=channel, days=days)
    if not pending:
        return 0
    _progress(f"Embedding {len(pending)} text(s)")
    vectors, rss = run_isolated(embed_texts, [p.text for p in pending])
    report.worker_rss_mb = max(report.worker_rss_mb, rss)
    with connection() as con:
        report.embedded += store.write_embeddings(con, MODEL_NAME, pending, vectors)
    return len(pending)


def assign_unthemed(con: duckdb.DuckDBPyConnection, channel: str, days=None) -> int:
    """Give each unthemed data point (of `days`, or all) its nearest theme when it fits one well enough."""
    centroids = store.active_centroids(con, channel)
    if not centroids.ids:
        return 0
    fresh = store.channel_vectors(con, channel, MODEL_NAME, unthemed_only=True, days=days)
    if not fresh.keys:
        return 0
    ids, scores = assign_nearest(fresh.vectors, centroids.vectors, centroids.ids, ASSIGN_THRESHOLD)
    picked = [i for i, theme in enumerate(ids) if theme is not None]
    keys = [fresh.keys[i] for i in picked]
    return store.write_assignments(con, keys, [ids[i] for i in picked], scores[picked], "nearest")


def drift_reason(con: duckdb.DuckDBPyConnection, channel: str) -> str | None:
    """Why the channel needs a full recompute now, or None (see the module docstring)."""
    drift = store.drift_stats(con, channel, MODEL_NAME)
    if drift.embedded_now < MIN_DATA_POINTS:
        return None
    if drift.last_recompute_data_points is None or not store.active_centroids(con, channel).ids:
        return "first"
    if drift.added_since >= DRIFT_MIN_ADDED and drift.unassigned_added > DRIFT_UNASSIGNED_SHARE * drift.added_since:
        return "drift-unassigned"
    if drift.embedded_now > (1 + DRIFT_GROWTH) * max(drift.last_recompute_data_points, 1):
        return "drift-growth"
    return None


def recompute_channel(connection: ConnectionFactory, channel: str, reason: str, report: StepReport) -> int:
    """A full recompute of one channel's themes on its stored embeddings; ids of surviving themes kept."""
    started = time.monotonic()
    with IsolatedWorker(warm=CLUSTERING_MODULES) as worker:  # starts while the inputs are read
        with connection() as con:
            data = store.channel_vectors(con, channel, MODEL_NAME)
            job = RecomputeJob(
                data.keys, data.texts, data.vectors, store.current_assignment(con, channel), store.next_theme_id(con)
            )
        if len(job.keys) < MIN_DATA_POINTS:
            return 0
        _progress(f"Finding the themes of {channel} in {len(job.keys)} data point(s)")
        outcome, rss = worker.run(recompute_themes, job)
    report.worker_rss_mb = max(report.worker_rss_mb, rss)
    with connection() as con:
        _write_outcome(con, channel, job, outcome, reason, time.monotonic() - started)
        store.refresh_theme_stats(con, channel)
        store.refresh_trends(con, channel)
    report.recomputed[channel] = reason
    return len(outcome.themes)


def _write_outcome(
    con: duckdb.DuckDBPyConnection,
    channel: str,
    job: RecomputeJob,
    outcome: RecomputeOutcome,
    reason: str,
    seconds: float,
) -> None:
    rows = [store.ThemeRow(t.id, t.label, t.keywords, t.size, t.centroid) for t in outcome.themes]
    sizes = {t.id: t.size for t in outcome.themes}
    events = [store.EventRow(int(e["id"]), e["event"], _related(e), sizes.get(int(e["id"]), 0)) for e in outcome.events]
    unassigned = sum(1 for i in outcome.ids if i is None)
    store.write_recompute(
        con, channel, rows, events, store.RecomputeRow(reason, MODEL_NAME, len(job.keys), unassigned, seconds)
    )
    store.write_assignments(con, job.keys, outcome.ids, outcome.scores, "recompute")


def _related(event: dict) -> list[int]:
    """The other themes an event involves: absorbed ones for a merge, the origin of a split, the heir of a
    retired theme."""
    others = [int(x) for x in event.get("from") or [] if x is not None and int(x) != int(event["id"])]
    if event["event"] == "retired" and event.get("into") is not None:
        others = [int(event["into"])]
    return others


def update_channel(
    connection: ConnectionFactory, channel: str, report: StepReport, *, force: str | None = None, days=None
) -> None:
    """Bring one channel's themes up to date: assign what is new, recompute when forced or drifting."""
    with connection() as con:
        reason = force or drift_reason(con, channel)
    if reason is not None:
        recompute_channel(connection, channel, reason, report)
        return
    with connection() as con:
        report.assigned += assign_unthemed(con, channel, days)
        store.refresh_theme_stats(con, channel)
        store.refresh_trends(con, channel)


def theme_step(connection: ConnectionFactory, days: tuple[date, date]) -> StepReport:
    """The import's themes step over a range of partitions: embed their new texts, assign them to the
    nearest theme, and recompute a channel whose drift rule fires (or that has no themes yet)."""
    report = StepReport()
    with connection() as con:
        store.drop_orphans(con)
        channels = store.channels_in(con, days)
    embed_pending(connection, report, days=days)
    for channel in channels:
        update_channel(connection, channel, report, days=days)
    return report


def refresh_all(connection: ConnectionFactory, *, channel: str | None = None, force: str | None = None) -> StepReport:
    """The `themes` path: embed anything missing, then update (or, with `force`, recompute) each channel."""
    report = StepReport()
    with connection() as con:
        store.drop_orphans(con)
        channels = [channel] if channel else store.channels_in(con)
    for name in channels:
        embed_pending(connection, report, channel=name)
        update_channel(connection, name, report, force=force)
    return report


def nearest(con: duckdb.DuckDBPyConnection, query: str, *, channel: str | None, limit: int) -> list[tuple]:
    """Data points most similar to `query` (embedded in a worker), best first, with their links."""
    vector, _ = run_isolated(embed_texts, [query])
    return store.search(con, MODEL_NAME, np.asarray(vector[0], dtype=np.float32), channel=channel, limit=limit)
