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


def class_tfidf(texts: Sequence[str], labels: np.ndarray, n_themes: int) -> tuple[np.ndarray, np.ndarray]:
    """c-TF-IDF matrix (themes x terms) and the term vocabulary; all texts of a theme form one document.

    Why c-TF-IDF: it scores a term by how typical it is for a theme relative to all themes, which gives
    distinctive keywords even when themes share common domain words.
    """
    try:
        counts, vocab = count_matrix(texts, stop_words=STOP_WORDS, ngram_max=2, min_df=2)
    except ValueError:  # nothing but stop words / too few texts
        return np.zeros((n_themes, 0), dtype=np.float32), np.array([], dtype=object)
    mask = labels >= 0
    member = sp.csr_matrix(
        (np.ones(mask.sum(), dtype=np.float32), (labels[mask], np.flatnonzero(mask))), shape=(n_themes, len(labels))
    )
    per_theme = np.asarray((member @ counts).todense(), dtype=np.float32)
    tf = per_theme / np.maximum(per_theme.sum(axis=1, keepdims=True), 1)
    avg_words = per_theme.sum() / max(n_themes, 1)
    idf = np.log1p(avg_words / np.maximum(per_theme.sum(axis=0), 1))
    return tf * idf, vocab


def top_keywords(scores: np.ndarray, vocab: np.ndarray, n: int = 8) -> list[list[str]]:
    """The n best-scoring terms per theme (zero-score terms skipped)."""
    result = []
    for row in scores:
        best = np.argsort(-row, kind="stable")[:n]
        result.append([str(vocab[i]) for i in best if row[i] > 0])
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
