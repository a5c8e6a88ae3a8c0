"""The BM25 helper of ``session_transformers.baselines``: known answers worked by hand, stop words, empty input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from session_transformers.baselines import BM25Index, bm25_scores, bm25_top_k

DOCS = ["red cotton dress", "blue denim jeans", "red leather shoes and red laces", ""]
WORDS = [  # what BM25 indexes: lower case, "and" (an English stop word) dropped
    ["red", "cotton", "dress"],
    ["blue", "denim", "jeans"],
    ["red", "leather", "shoes", "red", "laces"],
    [],
]


def _lucene_bm25(query: list[str], docs: list[list[str]], k1: float = 1.5, b: float = 0.75) -> list[float]:
    """BM25 as Lucene (8 and later) scores it: idf = ln(1 + (N - df + 0.5) / (df + 0.5)), term weight
    tf / (tf + k1 (1 - b + b dl / avgdl)) (no (k1 + 1) factor: it does not change the ranking)."""
    n = len(docs)
    avg = sum(len(d) for d in docs) / n
    out = []
    for doc in docs:
        score = 0.0
        for word in query:
            df = sum(word in d for d in docs)
            tf = doc.count(word)
            if df and tf:
                idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                score += idf * tf / (tf + k1 * (1 - b + b * len(doc) / avg))
        out.append(score)
    return out


def test_scores_are_lucene_bm25_worked_by_hand():
    got = bm25_scores(["Red dress", "jeans"], DOCS)
    assert got.shape == (2, 4) and got.dtype == np.float32
    np.testing.assert_allclose(got[0], _lucene_bm25(["red", "dress"], WORDS), rtol=1e-5)
    np.testing.assert_allclose(got[1], _lucene_bm25(["jeans"], WORDS), rtol=1e-5)
    assert got[0, 0] > got[0, 2] > 0 == got[0, 1] == got[0, 3]  # both words beat one word twice


def test_stop_words_and_unknown_words_score_zero():
    index = BM25Index(DOCS)
    assert index.tokenize(["the red and blue"]) == [["red", "blue"]]
    scores = index.scores(["the and", "", "zebra"])
    assert not scores.any()
    kept = BM25Index(DOCS, stopwords=None)  # without a stop list "and" is a word of document 2
    assert kept.scores(["and"])[0, 2] > 0


def test_top_k_is_best_first_and_matches_the_scores():
    queries = ["red", "blue jeans", "nothing matches"]
    indices, scores = bm25_top_k(queries, DOCS, k=3)
    full = bm25_scores(queries, DOCS)
    assert indices.shape == scores.shape == (3, 3)
    for row in range(3):
        np.testing.assert_allclose(scores[row], full[row, indices[row]])
        assert list(scores[row]) == sorted(scores[row], reverse=True)
    assert indices[1, 0] == 1
    assert indices[2].tolist() == [0, 1, 2]  # all tied at 0: the lower index first
    assert bm25_top_k(["red"], DOCS, k=10)[0].shape == (1, 4)  # k is capped at the number of documents


@pytest.mark.parametrize("k1,b", [(1.2, 0.75), (1.5, 0.0)])
def test_parameters_reach_the_scores(k1, b):
    got = bm25_scores(["red"], DOCS, k1=k1, b=b)[0]
    np.testing.assert_allclose(got, _lucene_bm25(["red"], WORDS, k1=k1, b=b), rtol=1e-5)
