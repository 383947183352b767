"""Incremental assignment between recomputes: nearest theme centroid, or unassigned below a threshold."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from usersnap_channels.themes.discovery import normalise

#: Cosine to a centroid below which a new text stays unassigned (members of Banking77 themes sit at
#: median ~0.7 from their own centroid; 0.5 keeps most of them while refusing off-topic texts).
DEFAULT_THRESHOLD = 0.5


def assign_nearest(
    vectors: np.ndarray, centroids: np.ndarray, ids: Sequence[int], threshold: float = DEFAULT_THRESHOLD
) -> tuple[list[int | None], np.ndarray]:
    """Theme id (or None) and cosine score for each vector against normalised theme centroids."""
    vectors = normalise(np.atleast_2d(vectors))
    if len(ids) == 0 or len(vectors) == 0:
        return [None] * len(vectors), np.zeros(len(vectors), dtype=np.float32)
    sims = vectors @ normalise(centroids).T
    best = sims.argmax(axis=1)
    scores = sims[np.arange(len(best)), best]
    theme_ids = [int(ids[b]) if s >= threshold else None for b, s in zip(best, scores, strict=True)]
    return theme_ids, scores.astype(np.float32)
