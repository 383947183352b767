"""Stable theme ids across recomputes: overlap matching, events, and a neighbour-vote stabilisation pass.

Why not plain re-run + match: Leiden on a perturbed graph moves many borderline points between adjacent
communities, so ids "flicker" for texts that did not change. After matching, a point keeps its previous
theme when that theme still exists and its kNN neighbours support it nearly as much as the new one.
Genuine splits/merges survive because there the neighbourhood clearly moved.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from usersnap_channels.themes.discovery import UNASSIGNED, Graph, ThemeParams, adjacency, build_graph, discover_on_graph

Key = Hashable


@dataclass
class RecomputeResult:
    """Outcome of a (re)computation: theme id per key (-1 unassigned), events, and the next free id."""

    ids: np.ndarray
    events: list[dict] = field(default_factory=list)
    next_id: int = 0
    stabilised: int = 0


def _overlaps(old: np.ndarray, new: np.ndarray) -> dict[tuple[int, int], int]:
    """Counts of common points per (old id, new label), unassigned excluded on both sides."""
    mask = (old >= 0) & (new >= 0)
    pairs, counts = np.unique(np.stack([old[mask], new[mask]]), axis=1, return_counts=True)
    return {(int(o), int(n)): int(c) for (o, n), c in zip(pairs.T, counts, strict=True)}


def _successors(overlap: dict[tuple[int, int], int], min_share: float) -> dict[int, tuple[int, int]]:
    """For each old id, its main new label and overlap count, if it keeps at least min_share of its points."""
    totals: dict[int, int] = {}
    best: dict[int, tuple[int, int]] = {}
    for (o, n), c in sorted(overlap.items()):
        totals[o] = totals.get(o, 0) + c
        if c > best.get(o, (-1, -1))[1]:
            best[o] = (n, c)
    return {o: nc for o, nc in best.items() if nc[1] >= min_share * totals[o]}


def _largest_source(overlap: dict[tuple[int, int], int], label: int) -> int | None:
    """Old id contributing most common points to a new label (None if no overlap)."""
    cands = [(c, -o, o) for (o, n), c in overlap.items() if n == label]
    return max(cands)[2] if cands else None


def match_themes(
    old_ids: np.ndarray, new_labels: np.ndarray, next_id: int, min_share: float = 0.2
) -> tuple[dict[int, int], list[dict], int]:
    """Map new labels to theme ids by member overlap on common points; returns (label->id, events, next_id).

    old_ids/new_labels are aligned per point (old -1 for points that are new or were unassigned).
    Continued: one old theme's main successor. Merged: several old themes share a successor (the largest
    contributor keeps its id). Split: a new community mostly made of an old theme whose id went elsewhere.
    """
    overlap = _overlaps(old_ids, new_labels)
    succ = _successors(overlap, min_share)
    mapping: dict[int, int] = {}
    events: list[dict] = []
    labels = sorted(int(x) for x in np.unique(new_labels[new_labels >= 0]))
    for label in labels:
        preds = sorted((o for o, (n, _) in succ.items() if n == label), key=lambda o: (-succ[o][1], o))
        if preds:
            mapping[label] = preds[0]
            kind = "continued" if len(preds) == 1 else "merged"
            events.append({"event": kind, "id": preds[0], "from": preds})
    for label in labels:
        if label in mapping:
            continue
        mapping[label], next_id = next_id, next_id + 1
        source = _largest_source(overlap, label)
        common = sum(c for (_, n), c in overlap.items() if n == label)
        split = source is not None and source in mapping.values() and overlap[(source, label)] * 2 >= common
        events.append(
            {"event": "split", "id": mapping[label], "from": [source]}
            if split
            else {"event": "new", "id": mapping[label], "from": []}
        )
    alive = set(mapping.values())
    gone = sorted({int(o) for o in np.unique(old_ids[old_ids >= 0])} - alive)
    events += [{"event": "retired", "id": o, "from": [o]} for o in gone]
    return mapping, events, next_id


def describe_events(old: np.ndarray, ids: np.ndarray) -> list[dict]:
    """Events implied by the final ids: continued / merged (old ids whose main successor is another id) /
    split (a fresh id mostly made of a surviving old theme) / new / retired."""
    overlap = _overlaps(old, ids)
    succ = _successors(overlap, 0.0)
    final = {int(x) for x in np.unique(ids[ids >= 0])}
    events: list[dict] = []
    for tid in sorted(final):
        absorbed = sorted(o for o, (n, _) in succ.items() if n == tid and o != tid)
        if tid in succ or any(o == tid for o, _ in overlap):
            events.append({"event": "merged" if absorbed else "continued", "id": tid, "from": [tid, *absorbed]})
            continue
        source = _largest_source(overlap, tid)
        common = sum(c for (_, n), c in overlap.items() if n == tid)
        split = source is not None and source in final and overlap[(source, tid)] * 2 >= common
        events.append({"event": "split" if split else "new", "id": tid, "from": [source] if split else []})
    gone = sorted({int(o) for o in np.unique(old[old >= 0])} - final)
    events += [{"event": "retired", "id": o, "into": succ[o][0] if o in succ else None, "from": [o]} for o in gone]
    return events


def cut_share(graph: sp.csr_matrix, part: np.ndarray, rest: np.ndarray) -> float:
    """Share of the part's edge weight that goes to the rest (0 = separate, high = intertwined)."""
    volume = graph[part].sum()
    return float(graph[part][:, rest].sum() / volume) if volume > 0 else 1.0


def revive_merged(
    graph: sp.csr_matrix, ids: np.ndarray, old: np.ndarray, mapping_events: list[dict], min_cut: float
) -> np.ndarray:
    """Undo a merge when the absorbed old theme is still nearly separate inside the merged community.

    Why: at a fixed resolution Leiden merges neighbouring themes arbitrarily between runs; a merge is only
    accepted when at least min_cut of the absorbed part's graph weight links it to the rest.
    """
    out = ids.copy()
    for event in (e for e in mapping_events if e["event"] == "merged"):
        for source in event["from"][1:]:
            part = (out == event["id"]) & (old == source)
            rest = (out == event["id"]) & ~part
            if part.any() and cut_share(graph, part, rest) < min_cut:
                out[(ids == event["id"]) & (old == source)] = source
    return out


def neighbour_votes(g: Graph, ids: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Sum of kNN similarities from each point to neighbours whose id equals targets[point]."""
    neighbour_ids = ids[g.idx]
    return (np.maximum(g.sim, 0) * (neighbour_ids == targets[:, None])).sum(axis=1)


def stabilise(
    g: Graph, ids: np.ndarray, previous: np.ndarray, margin: float, rounds: int = 3
) -> tuple[np.ndarray, int]:
    """Send a point back to its old theme (if it still exists) when votes_old >= margin * votes_new.

    Repeated a few rounds because each return strengthens the old theme's votes for its neighbours.
    """
    out = ids.copy()
    alive = np.isin(previous, np.unique(ids[ids >= 0]))
    for _ in range(rounds):
        moved = (previous >= 0) & (out != previous) & alive
        if not moved.any():
            break
        back = moved & (neighbour_votes(g, out, previous) >= margin * neighbour_votes(g, out, out))
        if not back.any():
            break
        out[back] = previous[back]
    return out, int(((out != ids) & (out == previous)).sum())


def align_previous(keys: Sequence[Key], previous: dict[Key, int | None] | None) -> np.ndarray:
    """Previous id per current key (-1 for new keys and previously unassigned ones)."""
    previous = previous or {}
    return np.array([-1 if previous.get(k) is None else int(previous[k]) for k in keys], dtype=np.int64)


def recompute(
    vectors: np.ndarray,
    keys: Sequence[Key],
    previous: dict[Key, int | None] | None,
    next_id: int,
    texts: Sequence[str] | None = None,
    params: ThemeParams | None = None,
    margin: float = 0.3,
    rounds: int = 6,
    merge_cut: float = 0.15,
) -> RecomputeResult:
    """Full recompute with id continuity: discover, match to previous ids, then (only when there is a
    previous assignment) undo weakly supported merges and send borderline points back to their old theme.

    margin 0.3 (was 0.4): on Banking77 + 10 % held-out texts, 96 % of the ids stay (0.4: 95.0 %) for an NMI
    0.002 lower; most of the rest are genuine splits (parts with < 10 % of their graph weight to the old
    theme), which keep their new id whatever the margin."""
    params = params or ThemeParams()
    g = build_graph(vectors, texts, params)
    labels = discover_on_graph(g, params)
    old = align_previous(keys, previous)
    mapping, mapping_events, next_id = match_themes(old, labels, next_id)
    ids = np.array([mapping.get(int(lab), UNASSIGNED) for lab in labels], dtype=np.int64)
    moved_back = 0
    if previous:
        graph = adjacency(g.idx, g.sim, params.weight_power)
        ids = revive_merged(graph, ids, old, mapping_events, merge_cut)
        ids, moved_back = stabilise(g, ids, old, margin, rounds)
    return RecomputeResult(ids=ids, events=describe_events(old, ids), next_id=next_id, stabilised=moved_back)
