"""Word counts and TF-IDF for short texts on scipy.sparse alone, equal to scikit-learn's vectorizers.

Why not scikit-learn: importing it (it pulls pandas and scipy.stats) costs a themes worker ~150 MB of
resident memory and ~1 s of start-up, for two vectorizers that are a few lines each. The tokenizer, the
n-grams, the min_df pruning, the sorted vocabulary and the smoothed, sublinear, L2-normalised TF-IDF are
scikit-learn's defaults (`CountVectorizer`, `TfidfVectorizer(sublinear_tf=True)`); a test checks both match.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

#: scikit-learn's default token pattern: runs of 2+ word characters.
TOKEN = re.compile(r"(?u)\b\w\w+\b")

#: scikit-learn's ENGLISH_STOP_WORDS (BSD-3; the Glasgow Information Retrieval Group's list).
_ENGLISH = """
    a about above across after afterwards again against all almost alone along already also although always am
    among amongst amoungst amount an and another any anyhow anyone anything anyway anywhere are around as at back
    be became because become becomes becoming been before beforehand behind being below beside besides between
    beyond bill both bottom but by call can cannot cant co con could couldnt cry de describe detail do done down
    due during each eg eight either eleven else elsewhere empty enough etc even ever every everyone everything
    everywhere except few fifteen fifty fill find fire first five for former formerly forty found four from front
    full further get give go had has hasnt have he hence her here hereafter hereby herein hereupon hers herself him
    himself his how however hundred i ie if in inc indeed interest into is it its itself keep last latter latterly
    least less ltd made many may me meanwhile might mill mine more moreover most mostly move much must my myself
    name namely neither never nevertheless next nine no nobody none noone nor not nothing now nowhere of off often
    on once one only onto or other others otherwise our ours ourselves out over own part per perhaps please put
    rather re same see seem seemed seeming seems serious several she should show side since sincere six sixty so
    some somehow someone something sometime sometimes somewhere still such system take ten than that the their them
    themselves then thence there thereafter thereby therefore therein thereupon these they thick thin third this
    those though three through throughout thru thus to together too top toward towards twelve twenty two un under
    until up upon us very via was we well were what whatever when whence whenever where whereafter whereas whereby
    wherein whereupon wherever whether which while whither who whoever whole whom whose why will with within
    without would yet you your yours yourself yourselves
"""
ENGLISH_STOP_WORDS = frozenset(_ENGLISH.split())


def tokens(text: str, stop_words: frozenset[str] = frozenset()) -> list[str]:
    """Lower-cased word tokens of a text, stop words out."""
    return [t for t in TOKEN.findall(text.lower()) if t not in stop_words]


def terms(words: list[str], ngram_max: int) -> Iterable[str]:
    """The words, then their n-grams up to ngram_max joined by spaces (scikit-learn's order)."""
    yield from words
    for n in range(2, ngram_max + 1):
        for i in range(len(words) - n + 1):
            yield " ".join(words[i : i + n])


def count_matrix(
    texts: Sequence[str], *, stop_words: frozenset[str] = frozenset(), ngram_max: int = 1, min_df: int = 1
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Term counts (texts x terms, float32) over terms in at least min_df texts, vocabulary sorted.

    Raises ValueError when no term is left (as scikit-learn does), which callers treat as "no keywords".
    """
    vocabulary: dict[str, int] = {}
    indices, indptr = array("q"), array("q", [0])
    setdefault = vocabulary.setdefault
    for text in texts:
        words = tokens(text, stop_words)
        indices.extend([setdefault(t, len(vocabulary)) for t in (terms(words, ngram_max) if ngram_max > 1 else words)])
        indptr.append(len(indices))
    data = np.ones(len(indices), dtype=np.float32)
    shape = (len(texts), len(vocabulary))
    counts = sp.csr_matrix((data, np.frombuffer(indices, np.int64), np.frombuffer(indptr, np.int64)), shape=shape)
    counts.sum_duplicates()
    df = np.bincount(counts.indices, minlength=shape[1])
    names = np.array(list(vocabulary), dtype=object)
    keep = np.flatnonzero(df >= min_df)
    if len(keep) == 0:
        raise ValueError("empty vocabulary: no term occurs in enough texts")
    keep = keep[np.argsort(names[keep], kind="stable")]
    return counts[:, keep].tocsr(), names[keep]


def tfidf_matrix(texts: Sequence[str], *, min_df: int = 2) -> sp.csr_matrix:
    """Sublinear (1 + log tf), smoothed-idf, L2-normalised TF-IDF rows (float32)."""
    counts, _ = count_matrix(texts, min_df=min_df)
    counts.data = 1 + np.log(counts.data)
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    idf = (np.log((1 + counts.shape[0]) / (1 + df)) + 1).astype(np.float32)
    counts.data *= idf[counts.indices]
    norms = np.sqrt(np.asarray(counts.multiply(counts).sum(axis=1), dtype=np.float32).ravel())
    counts.data /= np.repeat(np.maximum(norms, 1e-12), np.diff(counts.indptr))
    return counts
