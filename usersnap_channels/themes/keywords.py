"""Class-based TF-IDF (BERTopic-style) keywords and a short human-readable label per theme."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from usersnap_channels.themes.text import ENGLISH_STOP_WORDS, count_matrix

#: Fragments the default tokenizer leaves of English contractions ("hasn't" -> "hasn"), and filler words
#: of feedback that name no topic: neither makes a useful keyword.
EXTRA_STOP_WORDS = frozenset(
    [
        "aren",
        "couldn",
        "didn",
        "doesn",
        "don",
        "hadn",
        "hasn",
        "haven",
        "isn",
        "ll",
        "mustn",
        "shouldn",
        "ve",
        "wasn",
        "weren",
        "won",
        "wouldn",
        "know",
        "want",
        "need",
        "make",
        "like",
        "just",
        "ok",
        "okay",
        "hi",
        "hello",
        "thanks",
        "thank",
        "please",
        "really",
    ]
)


STOP_WORDS = ENGLISH_STOP_WORDS | EXTRA_STOP_WORDS


def class_tfidf(texts: Sequence[str], labels: np.ndarray, n_themes: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """c-TF-IDF matrix (themes x terms, sparse) and the term vocabulary; all texts of a theme form one document.

    Why c-TF-IDF: it scores a term by how typical it is for a theme relative to all themes, which gives
    distinctive keywords even when themes share common domain words. Sparse because a dense themes x terms
    matrix grows with both (250 themes x 100k terms is 100 MB at 50k data points).
    """
    try:
        counts, vocab = count_matrix(texts, stop_words=STOP_WORDS, ngram_max=2, min_df=2)
    except ValueError:  # nothing but stop words / too few texts
        return sp.csr_matrix((n_themes, 0), dtype=np.float32), np.array([], dtype=object)
    mask = labels >= 0
    member = sp.csr_matrix(
        (np.ones(mask.sum(), dtype=np.float32), (labels[mask], np.flatnonzero(mask))), shape=(n_themes, len(labels))
    )
    per_theme = (member @ counts).tocsr()
    per_theme.sum_duplicates()
    words = np.asarray(per_theme.sum(axis=1), dtype=np.float32).ravel()
    avg_words = per_theme.sum() / max(n_themes, 1)
    idf = np.log1p(avg_words / np.maximum(np.asarray(per_theme.sum(axis=0), dtype=np.float32).ravel(), 1))
    rows = np.repeat(np.arange(n_themes), np.diff(per_theme.indptr))
    per_theme.data = per_theme.data / np.maximum(words[rows], 1) * idf[per_theme.indices].astype(np.float32)
    return per_theme, vocab


def top_keywords(scores: sp.csr_matrix, vocab: np.ndarray, n: int = 8) -> list[list[str]]:
    """The n best-scoring terms per theme (zero-score terms skipped; ties go to the earlier term)."""
    result = []
    for row in range(scores.shape[0]):
        lo, hi = scores.indptr[row], scores.indptr[row + 1]
        values, columns = scores.data[lo:hi], scores.indices[lo:hi]
        best = np.argsort(-values, kind="stable")[:n]
        result.append([str(vocab[columns[i]]) for i in best if values[i] > 0])
    return result


def make_label(keywords: list[str], n_terms: int = 3) -> str:
    """Join the top terms, skipping a unigram already contained in an earlier bigram (and vice versa)."""
    chosen: list[str] = []
    for term in keywords:
        words = set(term.split())
        if any(words <= set(c.split()) or set(c.split()) <= words for c in chosen):
            continue
        chosen.append(term)
        if len(chosen) == n_terms:
            break
    return " / ".join(chosen) if chosen else "(no keywords)"


def theme_keywords(texts: Sequence[str], labels: np.ndarray, n_keywords: int = 8) -> list[tuple[str, list[str]]]:
    """(label, keywords) for each theme 0..max(labels)."""
    n_themes = int(labels.max()) + 1 if len(labels) and labels.max() >= 0 else 0
    scores, vocab = class_tfidf(texts, labels, n_themes)
    return [(make_label(kw), kw) for kw in top_keywords(scores, vocab, n_keywords)]
