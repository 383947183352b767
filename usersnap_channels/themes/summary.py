"""Theme summaries (label, keywords, size, centroid, member scores) for an id-per-text assignment."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from usersnap_channels.themes.discovery import normalise
from usersnap_channels.themes.keywords import theme_keywords


@dataclass
class Theme:
    """One theme: stable id, short label, c-TF-IDF keywords, size, unit centroid, member indices + cosines."""

    id: int
    label: str
    keywords: list[str]
    size: int
    centroid: np.ndarray
    members: np.ndarray
    scores: np.ndarray


def summarise(vectors: np.ndarray, texts: Sequence[str], ids: np.ndarray) -> list[Theme]:
    """Build Theme records; centroids live in the raw embedding space so assign_nearest can use them."""
    x = normalise(vectors)
    theme_ids = np.unique(ids[ids >= 0])
    dense = np.full(len(ids), -1, dtype=np.int64)
    for pos, tid in enumerate(theme_ids):
        dense[ids == tid] = pos
    words = theme_keywords(texts, dense)
    themes = []
    for pos, tid in enumerate(theme_ids):
        members = np.flatnonzero(dense == pos)
        centroid = normalise(x[members].mean(axis=0, keepdims=True))[0]
        label, keywords = words[pos] if pos < len(words) else ("(no keywords)", [])
        themes.append(Theme(int(tid), label, keywords, len(members), centroid, members, x[members] @ centroid))
    return sorted(themes, key=lambda t: (-t.size, t.id))
