"""Big channels: the theme tables are read and written under the pipeline's DuckDB memory_limit, and the
clustering's memory does not grow with a channel's size where it need not (text vectorizers, kNN blocks)."""

from __future__ import annotations

import csv
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from usersnap_channels.settings import Settings
from usersnap_channels.themes.discovery import knn, lexical_matrix, prepare
from usersnap_channels.themes.keywords import STOP_WORDS
from usersnap_channels.themes.text import ENGLISH_STOP_WORDS, count_matrix, tfidf_matrix
from usersnap_channels.warehouse import themes as store
from usersnap_channels.warehouse.connection import ensure_schema

MODEL = "test-model"
CHANNEL = "Big"
SAMPLE = Path(__file__).with_name("data") / "banking77_sample.csv"


def insert_data_points(con: duckdb.DuckDBPyConnection, n: int) -> None:
    """n data points of one channel, in three sources, one per minute."""
    start = datetime(2025, 6, 1, tzinfo=UTC)
    times = [start + timedelta(minutes=i) for i in range(n)]
    rows = pa.table(
        {
            "channel_name": [CHANNEL] * n,
            "source_id": [f"src_{i % 3}" for i in range(n)],
            "source_name": ["Source"] * n,
            "project_id": ["p1"] * n,
            "feedback_id": [f"fb-{i:06d}" for i in range(n)],
            "submitted_at": times,
            "tags": [[] for _ in range(n)],
            "text": [f"feedback {i}: the export of report {i % 101} fails on page {i % 7}" for i in range(n)],
            "imported_at": [start] * n,
            "partition_date": [t.date() for t in times],
        }
    )
    con.register("_rows", rows)
    con.execute("INSERT INTO data_points BY NAME SELECT * FROM _rows")
    con.unregister("_rows")


def test_fifty_thousand_vectors_round_trip_under_the_pipeline_memory_limit(tmp_path: Path) -> None:
    """50k x 384 float32 is 77 MB, more than the 64 MB DuckDB may hold: reading them in one query failed
    with DuckDB's out-of-memory error (the themes step at ~40k data points); they now stream in batches."""
    n = 50_000
    limit = Settings.model_fields["duckdb_memory_limit"].default
    con = duckdb.connect(str(tmp_path / "big.duckdb"), config={"memory_limit": limit})
    ensure_schema(con)
    insert_data_points(con, n)
    started = time.monotonic()
    pending = store.texts_to_embed(con, MODEL, channel=CHANNEL)
    vectors = np.random.default_rng(0).standard_normal((n, 384), dtype=np.float32)
    assert store.write_embeddings(con, MODEL, pending, vectors) == n

    data = store.channel_vectors(con, CHANNEL, MODEL)
    assert data.vectors.dtype == np.float32 and data.vectors.shape == (n, 384)
    assert data.keys == sorted(data.keys) == [(p.source_id, p.feedback_id) for p in pending]
    assert np.array_equal(data.vectors, vectors), "every vector comes back exactly, in key order"
    assert data.texts == [p.text for p in pending]

    ids = [None if i % 10 == 0 else i % 40 for i in range(n)]
    store.write_assignments(con, data.keys, ids, np.ones(n, np.float32), "recompute")
    unthemed = store.channel_vectors(con, CHANNEL, MODEL, unthemed_only=True)
    assert unthemed.keys == [k for k, i in zip(data.keys, ids, strict=True) if i is None]
    assert np.array_equal(unthemed.vectors, vectors[::10])
    store.refresh_trends(con, CHANNEL)
    assert con.execute("SELECT sum(data_points) FROM theme_trends").fetchone()[0] == n - n // 10
    con.close()
    assert time.monotonic() - started < 60


def test_knn_does_not_depend_on_the_block_size() -> None:
    """Big channels get smaller kNN blocks (bounded memory); the neighbours must be exactly the same."""
    rng = np.random.default_rng(1)
    x = prepare(rng.standard_normal((3000, 64), dtype=np.float32), center=True)
    texts = [" ".join(rng.choice(["export", "login", "card", "slow", "page", "pin"], 5)) for _ in range(3000)]
    lex = lexical_matrix(texts, 0.5)
    idx, sim = knn(x, 10, lex, chunk=512)
    small_idx, small_sim = knn(x, 10, lex, chunk=512, block_cells=50_000)  # 16 rows per block
    assert np.array_equal(idx, small_idx) and np.array_equal(sim, small_sim)


def test_the_vectorizers_equal_scikit_learns() -> None:
    """Our counts and TF-IDF (no scikit-learn import in a themes worker) equal scikit-learn's defaults."""
    text_module = pytest.importorskip("sklearn.feature_extraction.text")
    with SAMPLE.open(newline="") as handle:
        texts = [r["text"] for r in csv.DictReader(handle)] + ["Ünïcode café naïve", "", "the of and"]
    assert ENGLISH_STOP_WORDS == text_module.ENGLISH_STOP_WORDS
    theirs = text_module.CountVectorizer(stop_words=sorted(STOP_WORDS), ngram_range=(1, 2), min_df=2)
    expected = theirs.fit_transform(texts)
    counts, vocabulary = count_matrix(texts, stop_words=STOP_WORDS, ngram_max=2, min_df=2)
    assert list(vocabulary) == list(theirs.get_feature_names_out())
    assert abs(counts - expected).max() == 0
    tfidf = text_module.TfidfVectorizer(sublinear_tf=True, min_df=2, dtype=np.float32).fit_transform(texts)
    assert abs(tfidf_matrix(texts, min_df=2) - tfidf).max() < 1e-6
    with pytest.raises(ValueError):
        count_matrix(["the of", "and"], stop_words=STOP_WORDS, min_df=2)
