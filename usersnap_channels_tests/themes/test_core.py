"""The theme-discovery core on real labelled feedback (a Banking77 sample): quality, stable ids, assignment,
the model's integrity checks, and embedding with the network unreachable."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

from usersnap_channels.themes import embedding
from usersnap_channels.themes.assign import assign_nearest
from usersnap_channels.themes.discovery import UNASSIGNED, discover
from usersnap_channels.themes.embedding import Embedder, ModelFilesError
from usersnap_channels.themes.stability import recompute
from usersnap_channels.themes.summary import summarise

SAMPLE = Path(__file__).with_name("data") / "banking77_sample.csv"


@pytest.fixture(scope="module")
def sample() -> tuple[list[str], np.ndarray, np.ndarray]:
    """(texts, true intents, embeddings) of 600 messages of 20 intents."""
    with SAMPLE.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    texts = [r["text"] for r in rows]
    embedder = Embedder()
    try:
        vectors = embedder.embed(texts)
    finally:
        embedder.close()
    return texts, np.array([r["category"] for r in rows]), vectors


def test_vectors_are_unit_length_and_deterministic(sample) -> None:
    texts, _, vectors = sample
    assert vectors.shape == (600, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    embedder = Embedder()
    again = embedder.embed(texts[:5])
    embedder.close()
    assert np.allclose(again, vectors[:5], atol=1e-5)


def test_discovery_recovers_most_groups_without_being_told_how_many(sample) -> None:
    texts, truth, vectors = sample
    labels = discover(vectors, texts)
    assert (labels == UNASSIGNED).mean() <= 0.10
    nmi = normalized_mutual_info_score(truth, labels)
    found = len(set(labels.tolist()) - {UNASSIGNED})
    assert nmi >= 0.75, f"NMI {nmi:.3f} with {found} themes"
    assert 12 <= found <= 40, found


def test_ids_survive_a_recompute_and_a_recompute_after_new_data(sample) -> None:
    texts, _, vectors = sample
    keys = [f"k{i}" for i in range(len(texts))]
    first = recompute(vectors[:540], keys[:540], None, 1, texts=texts[:540])
    previous = {k: (None if t == UNASSIGNED else int(t)) for k, t in zip(keys, first.ids, strict=False)}
    same = recompute(vectors[:540], keys[:540], previous, first.next_id, texts=texts[:540])
    assert (same.ids == first.ids).all(), "an unchanged channel keeps every id"
    assert {e["event"] for e in same.events} == {"continued"}
    grown = recompute(vectors, keys, previous, first.next_id, texts=texts)
    kept = np.mean(grown.ids[:540] == first.ids)
    assert kept >= 0.9, f"only {kept:.1%} kept their theme id after 10 % more data"
    assert min(int(i) for i in grown.ids if i != UNASSIGNED) >= 1
    assert all(e["id"] < grown.next_id for e in grown.events)


def test_incremental_assignment_is_the_nearest_theme_above_the_threshold(sample) -> None:
    texts, _, vectors = sample
    themes = summarise(vectors[:500], texts[:500], discover(vectors[:500], texts[:500]))
    centroids = np.stack([t.centroid for t in themes])
    ids = [t.id for t in themes]
    assigned, scores = assign_nearest(vectors[500:], centroids, ids, threshold=0.5)
    sims = vectors[500:] @ centroids.T
    for row, (theme, score) in enumerate(zip(assigned, scores, strict=True)):
        best = int(np.argmax(sims[row]))
        assert score == pytest.approx(sims[row, best], abs=1e-5)
        assert theme == (ids[best] if sims[row, best] >= 0.5 else None)
    assert sum(t is not None for t in assigned) >= 80


def test_every_theme_has_a_label_and_keywords(sample) -> None:
    texts, _, vectors = sample
    for theme in summarise(vectors, texts, discover(vectors, texts)):
        assert theme.label and theme.keywords and theme.size == len(theme.members)
        assert np.linalg.norm(theme.centroid) == pytest.approx(1, abs=1e-4)


def test_an_altered_model_file_is_refused_with_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    model, tokenizer = embedding.model_files()
    altered = tmp_path / "model.onnx"
    shutil.copyfile(model, altered)
    with altered.open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00\x01\x02")
    monkeypatch.setattr(
        embedding, "locate_file", lambda dist, module, rel: altered if rel == "model.onnx" else tokenizer
    )
    with pytest.raises(ModelFilesError) as raised:
        Embedder()
    message = str(raised.value)
    assert "model.onnx" in message and embedding.MODEL_SHA256 in message and "--no-deps" in message


def test_a_missing_model_package_is_named(monkeypatch) -> None:
    monkeypatch.setattr(embedding, "MODEL_PACKAGE", ("no-such-model", "no_such_model_pkg", "model.onnx"))
    with pytest.raises(ModelFilesError, match=r"'no-such-model'.*not installed"):
        embedding.model_files()


EMBED_OFFLINE = """
import socket
from usersnap_channels.themes.embedding import Embedder
try:
    socket.create_connection(("pypi.org", 443), timeout=3)
    print("NETWORK")
except OSError:
    pass
vectors = Embedder().embed(["The export to Excel fails", "I love the new dashboard"])
print(vectors.shape)
"""


@pytest.mark.skipif(shutil.which("unshare") is None, reason="util-linux unshare is not installed")
def test_embedding_works_with_the_network_unreachable() -> None:
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {probe.stderr.decode().strip()}")
    result = subprocess.run(
        ["unshare", "-n", sys.executable, "-c", EMBED_OFFLINE], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["(2,", "384)"], result.stdout
