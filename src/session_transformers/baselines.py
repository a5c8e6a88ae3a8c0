"""Trivial next-item baselines: what a working model must beat by a margin.

* **popularity**: every session gets the items most often clicked in training, in that order;
* **last item**: the items that most often followed the session's last item in training (item-to-item
  transitions), then the popular ones.

Both take the next-item samples of :func:`~session_transformers.data.load_next_item_splits` (``item_ids`` and
``target`` columns); the first click of each training session counts towards popularity too. Ranks beyond ``k``
are misses, as in the models' metrics.
"""

from __future__ import annotations

from collections import Counter, defaultdict

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


__all__ = ["next_item_baseline_ranks", "next_item_baselines"]
