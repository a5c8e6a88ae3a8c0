"""Ranking metrics over full rankings: HR@K, MRR@K, NDCG@K, MAP@K, Recall@K and session Recall@K, and graded
relevance (NDCG@K with graded gains: :func:`judged_ranks`, :func:`graded_ndcg_at_k`, :func:`graded_ranking_metrics`).

Every metric is a function of the **ranks of the relevant items** (1 = best). Ranks come from scores without a
sort (:func:`rank_of_target` counts the items that score higher, ``O(N * num_items)`` memory in ``bool``), so
evaluation over a whole catalogue stays cheap, and ranks are small ``(N,)`` tensors that scripts gather across
processes (``accelerator.gather_for_metrics(ranks)``) instead of gathering ``(N, num_items)`` scores.

**Ties.** A ranking with ties is ambiguous; ``ties`` chooses how an item whose score equals a relevant item's
score is counted:

- ``"pessimistic"`` (default): ranked ahead of it, so ``rank = 1 + #{score > s} + #{score == s}``. A constant
  scorer gets the worst rank, never a lucky one;
- ``"optimistic"``: ranked behind it, ``rank = 1 + #{score > s}``;
- ``"average"``: half of them ahead, ``rank = 1 + #{score > s} + #{score == s} / 2`` (a fractional rank).

With several relevant items, ties *between relevant items* are broken by item index (the lower index first),
so relevant items always get distinct ranks; only irrelevant items follow the ``ties`` rule.

**Exclusion.** ``exclude`` is a boolean mask ``(num_items,)`` or ``(N, num_items)`` of items that are not
candidates (the padding index 0, items already in the session): they never count as ranked ahead. Relevant
items are ranked even when excluded.

**Definitions** for one row with sorted relevant ranks ``r_1 < r_2 < ... < r_R`` and cut-off ``K``:

- ``hit_rate@K = 1[r_1 <= K]``: *any* relevant item in the top K (equal to Recall@K with one relevant item);
- ``mrr@K = 1 / r_1`` if ``r_1 <= K`` else 0;
- ``ndcg@K = sum_{r_j <= K} 1 / log2(1 + r_j)  /  sum_{j <= min(R, K)} 1 / log2(1 + j)`` (binary gains);
- ``recall@K = #{j : r_j <= K} / R``: the **share of the row's relevant items** in the top K
  (:func:`recall_at_k`);
- ``session_recall@K = 1[r_R <= K]``: whether **all** of the row's relevant items are in the top K
  (:func:`session_recall_at_k`). Averaged over rows (sessions) this is the CERES paper's Recall@K, "the
  percentage of sessions whose relevant items were retrieved among the top N predictions" (its appendix,
  *Details on Evaluation Metrics*; it gives no formula, and this follows its text: all of them). With ``R > K``
  a row cannot count. With one relevant item per row, ``hit_rate@K``, ``recall@K`` and ``session_recall@K``
  are the same number. (The paper's entity-linking table, Recall@1 close to MAP@1, fits "any relevant item",
  i.e. ``hit_rate@K``, at least as well: the text and the table do not settle it.)
- ``map@K = sum_{r_j <= K} (j / r_j)  /  min(R, K)`` (precision at each relevant hit, normalised by the most
  hits possible in the top K, as in ``ml_metrics.apk`` and the CERES paper's AP@N).

Ranks of several relevant items are an ``(N, R)`` float tensor sorted along rows and padded with ``nan`` (no
item); ``inf`` marks a relevant item ranked beyond what was kept (the top-k path). One relevant item gives
``(N,)``. Each metric returns the per-row values (``reduction="none"``) or their mean.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import numpy as np
import torch

Ties = Literal["pessimistic", "optimistic", "average"]
Reduction = Literal["mean", "none"]
Relevant = torch.Tensor | Sequence[Iterable[int]]
METRIC_NAMES: tuple[str, ...] = ("hit_rate", "mrr", "ndcg", "map", "recall", "session_recall")
_TIE_WEIGHT = {"pessimistic": 1.0, "optimistic": 0.0, "average": 0.5}


def _tie_weight(ties: str) -> float:
    if ties not in _TIE_WEIGHT:
        raise ValueError(f"ties must be one of {list(_TIE_WEIGHT)}, got {ties!r}")
    return _TIE_WEIGHT[ties]


def _exclude_rows(exclude: torch.Tensor | None, rows, scores: torch.Tensor) -> torch.Tensor | None:
    """The exclusion mask of the given rows, ``(len(rows), num_items)`` (or ``(1, num_items)`` if shared)."""
    if exclude is None:
        return None
    exclude = exclude.to(device=scores.device, dtype=torch.bool)
    if exclude.shape[-1] != scores.shape[-1]:
        raise ValueError(f"exclude has {exclude.shape[-1]} items, scores have {scores.shape[-1]}")
    return exclude.unsqueeze(0) if exclude.dim() == 1 else exclude[rows]


def rank_of_target(
    scores: torch.Tensor,
    targets: torch.Tensor,
    *,
    exclude: torch.Tensor | None = None,
    ties: Ties = "pessimistic",
    chunk_size: int | None = None,
) -> torch.Tensor:
    """The 1-based rank of each target among all items, without sorting.

    Args:
        scores: ``(N, num_items)`` scores, higher is better.
        targets: ``(N,)`` index of each row's relevant item; a negative index (the processors' ``-100`` for a
            target outside the vocabulary) is a target the model cannot rank: its rank is ``inf``, a miss at
            every K (the user did not get the item either). Count them with ``(targets < 0).sum()``.
        exclude: ``(num_items,)`` or ``(N, num_items)`` bool mask of non-candidates (see the module docstring).
        ties: how items tied with the target count (see the module docstring).
        chunk_size: rows compared at once; by default as many as keep each ``(chunk, num_items)`` bool
            temporary near 16M elements.

    Returns:
        ``(N,)`` float ranks in ``[1, num_items]``, ``inf`` for unknown targets.
    """
    if scores.dim() != 2 or targets.shape != scores.shape[:1]:
        raise ValueError(
            f"scores must be (N, num_items) and targets (N,), got {tuple(scores.shape)} and "
            f"{tuple(targets.shape)}"
        )
    weight = _tie_weight(ties)
    targets = targets.to(device=scores.device, dtype=torch.long)
    ranks = []
    chunk_size = chunk_size or max(1, (1 << 24) // max(1, scores.shape[1]))
    for start in range(0, scores.shape[0], chunk_size):
        rows = slice(start, start + chunk_size)
        block, tgt = scores[rows], targets[rows]  # views, no copy
        unknown = tgt < 0
        tgt = tgt.clamp_min(0)
        target_score = block.gather(1, tgt[:, None])  # (n, 1)
        greater, equal = block > target_score, block == target_score  # (n, num_items)
        equal.scatter_(1, tgt[:, None], False)  # the target does not tie with itself
        mask = _exclude_rows(exclude, rows, scores)
        if mask is not None:
            greater &= ~mask
            equal &= ~mask
        rank = 1.0 + greater.sum(1).float() + weight * equal.sum(1).float()
        ranks.append(rank.masked_fill(unknown, math.inf))
    return torch.cat(ranks) if ranks else scores.new_zeros(0)


def _relevant_mask(relevant: Relevant, shape: tuple[int, int], device: torch.device) -> torch.Tensor:
    """Any accepted form of relevance as an ``(N, num_items)`` bool mask."""
    if isinstance(relevant, torch.Tensor) and relevant.dtype == torch.bool:
        if tuple(relevant.shape) != shape:
            raise ValueError(f"relevant mask has shape {tuple(relevant.shape)}, scores have {shape}")
        return relevant.to(device)
    if isinstance(relevant, torch.Tensor) and relevant.dim() == 1:
        mask = torch.zeros(shape, dtype=torch.bool, device=device)
        return mask.scatter_(1, relevant.to(device=device, dtype=torch.long)[:, None], True)
    if len(relevant) != shape[0]:
        raise ValueError(f"{len(relevant)} relevant sets for {shape[0]} rows of scores")
    mask = torch.zeros(shape, dtype=torch.bool)
    for i, items in enumerate(relevant):
        mask[i, torch.as_tensor(list(items), dtype=torch.long)] = True
    return mask.to(device)


def ranks_from_scores(
    scores: torch.Tensor,
    targets: Relevant,
    *,
    exclude: torch.Tensor | None = None,
    ties: Ties = "pessimistic",
    max_relevant: int | None = None,
) -> torch.Tensor:
    """Ranks of the relevant items, ready to gather across processes and feed to the metrics.

    Args:
        scores: ``(N, num_items)`` scores, higher is better.
        targets: ``(N,)`` long tensor (one relevant item per row), an ``(N, num_items)`` bool mask, or a list of
            ``N`` collections of relevant item indices.
        exclude, ties: see the module docstring.
        max_relevant: pad the ``(N, R)`` result to this width (gathering needs equal widths on every process).

    Returns:
        ``(N,)`` ranks for a ``(N,)`` long ``targets`` (and no ``max_relevant``); otherwise ``(N, R)`` sorted ranks
        padded with ``nan``.
    """
    if isinstance(targets, torch.Tensor) and targets.dtype != torch.bool and targets.dim() == 1:
        ranks = rank_of_target(scores, targets, exclude=exclude, ties=ties)
        return ranks if max_relevant is None else _pad(ranks[:, None], max_relevant)
    relevant = _relevant_mask(targets, tuple(scores.shape), scores.device)
    counts = relevant.sum(1)
    if bool((counts == 0).any()):
        raise ValueError(f"rows {torch.nonzero(counts == 0).flatten().tolist()[:10]} have no relevant item")
    row, item = torch.nonzero(relevant, as_tuple=True)  # (P,) pairs, item-ascending within each row
    # one pseudo-target per relevant pair, ranked against its own row; other relevant items never tie with it
    pair_scores = scores[row]  # (P, num_items)
    others = relevant[row]  # (P, num_items)
    ahead_by_index = others & (torch.arange(scores.shape[1], device=scores.device)[None] < item[:, None])
    target_score = pair_scores.gather(1, item[:, None])
    pair_exclude = _exclude_rows(exclude, row, scores)
    ties_mask = (pair_scores == target_score) & ~others
    greater = pair_scores > target_score
    if pair_exclude is not None:
        ties_mask &= ~pair_exclude
        greater &= ~(pair_exclude & ~others)
    tied_relevant_ahead = (ahead_by_index & (pair_scores == target_score)).sum(1)
    pair_ranks = 1.0 + greater.sum(1) + _tie_weight(ties) * ties_mask.sum(1) + tied_relevant_ahead
    width = int(counts.max()) if max_relevant is None else max_relevant
    if width < int(counts.max()):
        raise ValueError(f"max_relevant={max_relevant} but a row has {int(counts.max())} relevant items")
    out = torch.full((scores.shape[0], width), math.nan, device=scores.device)
    slot = torch.arange(row.numel(), device=scores.device) - (torch.cumsum(counts, 0) - counts)[row]
    out[row, slot] = pair_ranks.float()
    return out.sort(1).values


def _pad(ranks: torch.Tensor, width: int) -> torch.Tensor:
    if ranks.shape[1] > width:
        raise ValueError(f"cannot pad ranks of width {ranks.shape[1]} to {width}")
    fill = ranks.new_full((ranks.shape[0], width - ranks.shape[1]), math.nan)
    return torch.cat([ranks, fill], 1)


def _resolve_ranks(scores, targets, ranks, exclude, ties) -> torch.Tensor:
    """``(N, R)`` sorted ranks from either ``(scores, targets)`` or precomputed ``ranks``."""
    if (ranks is None) == (scores is None):
        raise ValueError("pass either scores and targets, or ranks")
    if ranks is None:
        if targets is None:
            raise ValueError("scores need targets")
        ranks = ranks_from_scores(scores, targets, exclude=exclude, ties=ties)
    ranks = torch.as_tensor(ranks, dtype=torch.float)
    return ranks[:, None] if ranks.dim() == 1 else ranks.sort(1).values


def _reduce(values: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    if reduction == "none":
        return values
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    return values.mean() if values.numel() else values.new_tensor(0.0)


def _check_k(k: int) -> int:
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return k


def _hit_rate(ranks: torch.Tensor, k: int) -> torch.Tensor:
    return (ranks[:, 0] <= k).float()


def _mrr(ranks: torch.Tensor, k: int) -> torch.Tensor:
    first = ranks[:, 0]
    return torch.where(first <= k, 1.0 / first, torch.zeros_like(first))


def _ndcg(ranks: torch.Tensor, k: int) -> torch.Tensor:
    hit = ranks <= k
    dcg = torch.where(hit, 1.0 / torch.log2(1.0 + ranks.clamp(max=1e30)), torch.zeros_like(ranks)).sum(1)
    ideal_hits = (~ranks.isnan()).sum(1).clamp(max=k)
    discounts = 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float))
    ideal = torch.cat([discounts.new_zeros(1), discounts.cumsum(0)])[ideal_hits]
    return dcg / ideal.clamp(min=1e-12)


def _recall(ranks: torch.Tensor, k: int) -> torch.Tensor:
    return (ranks <= k).sum(1).float() / (~ranks.isnan()).sum(1).clamp(min=1).float()


def _session_recall(ranks: torch.Tensor, k: int) -> torch.Tensor:
    present = ~ranks.isnan()  # nan pads; a row with no relevant item does not count
    return (((ranks <= k) | ~present).all(1) & present.any(1)).float()


def _map(ranks: torch.Tensor, k: int) -> torch.Tensor:
    position = torch.arange(1, ranks.shape[1] + 1, dtype=torch.float)  # j for the j-th relevant item
    precision = torch.where(ranks <= k, position / ranks.clamp(max=1e30), torch.zeros_like(ranks))
    return precision.sum(1) / (~ranks.isnan()).sum(1).clamp(min=1, max=k).float()


_METRICS: dict[str, Callable[[torch.Tensor, int], torch.Tensor]] = {
    "hit_rate": _hit_rate,
    "mrr": _mrr,
    "ndcg": _ndcg,
    "map": _map,
    "recall": _recall,
    "session_recall": _session_recall,
}


def _metric(name: str, scores, targets, k, ranks, exclude, ties, reduction) -> torch.Tensor:
    ranks = _resolve_ranks(scores, targets, ranks, exclude, ties).cpu()
    return _reduce(_METRICS[name](ranks, _check_k(k)), reduction)


def hit_rate_at_k(
    scores=None,
    targets=None,
    k: int = 20,
    *,
    ranks=None,
    exclude=None,
    ties: Ties = "pessimistic",
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """HR@K: the share of rows with a relevant item in the top K (Recall@K with one relevant item).

    Pass ``scores`` ``(N, num_items)`` with ``targets`` (``(N,)``, a bool mask or index sets), or ``ranks``
    (``(N,)`` or ``(N, R)`` from :func:`ranks_from_scores`).
    """
    return _metric("hit_rate", scores, targets, k, ranks, exclude, ties, reduction)


def mrr_at_k(
    scores=None,
    targets=None,
    k: int = 20,
    *,
    ranks=None,
    exclude=None,
    ties: Ties = "pessimistic",
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """MRR@K: the reciprocal rank of the first relevant item, 0 beyond K (arguments as :func:`hit_rate_at_k`)."""
    return _metric("mrr", scores, targets, k, ranks, exclude, ties, reduction)


def ndcg_at_k(
    scores=None,
    targets=None,
    k: int = 20,
    *,
    ranks=None,
    exclude=None,
    ties: Ties = "pessimistic",
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """NDCG@K with binary gains (one relevant item: ``1 / log2(1 + rank)``); arguments as :func:`hit_rate_at_k`."""
    return _metric("ndcg", scores, targets, k, ranks, exclude, ties, reduction)


def recall_at_k(
    scores=None,
    targets=None,
    k: int = 20,
    *,
    ranks=None,
    exclude=None,
    ties: Ties = "pessimistic",
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Recall@K as the share of each row's relevant items in the top K (arguments as :func:`hit_rate_at_k`).

    For the share of rows (sessions) whose relevant items are all in the top K, the CERES paper's Recall@K, see
    :func:`session_recall_at_k`.
    """
    return _metric("recall", scores, targets, k, ranks, exclude, ties, reduction)


def session_recall_at_k(
    scores=None,
    targets=None,
    k: int = 20,
    *,
    ranks=None,
    exclude=None,
    ties: Ties = "pessimistic",
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Session Recall@K (the CERES paper's Recall@K): 1 for a row whose relevant items are **all** in the top K.

    The mean is the share of rows (sessions) whose relevant items were retrieved among the top K. It differs from
    :func:`recall_at_k` (the share of relevant items) and from :func:`hit_rate_at_k` (any relevant item) only on
    rows with several relevant items. Arguments as :func:`hit_rate_at_k`.
    """
    return _metric("session_recall", scores, targets, k, ranks, exclude, ties, reduction)


def map_at_k(
    scores=None,
    targets=None,
    k: int = 20,
    *,
    ranks=None,
    exclude=None,
    ties: Ties = "pessimistic",
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """MAP@K: mean over rows of the average precision at K, normalised by ``min(R, K)``.

    Arguments as :func:`hit_rate_at_k`.
    """
    return _metric("map", scores, targets, k, ranks, exclude, ties, reduction)


def hit_rate_from_ranks(ranks: torch.Tensor, k: int) -> float:
    """HR@K of precomputed ranks ``(N,)`` or ``(N, R)``, as a float (shorthand for ``hit_rate_at_k(ranks=...)``)."""
    return float(hit_rate_at_k(ranks=ranks, k=k))


def mrr_from_ranks(ranks: torch.Tensor, k: int) -> float:
    """MRR@K of precomputed ranks, as a float."""
    return float(mrr_at_k(ranks=ranks, k=k))


def ndcg_from_ranks(ranks: torch.Tensor, k: int) -> float:
    """NDCG@K of precomputed ranks, as a float."""
    return float(ndcg_at_k(ranks=ranks, k=k))


def recall_from_ranks(ranks: torch.Tensor, k: int) -> float:
    """Recall@K (the share of relevant items) of precomputed ranks, as a float."""
    return float(recall_at_k(ranks=ranks, k=k))


def session_recall_from_ranks(ranks: torch.Tensor, k: int) -> float:
    """Session Recall@K (the CERES paper's Recall@K) of precomputed ranks, as a float."""
    return float(session_recall_at_k(ranks=ranks, k=k))


def map_from_ranks(ranks: torch.Tensor, k: int) -> float:
    """MAP@K of precomputed ranks, as a float."""
    return float(map_at_k(ranks=ranks, k=k))


def metrics_from_ranks(
    ranks: torch.Tensor, ks: Sequence[int] = (20,), metrics: Sequence[str] = ("hit_rate", "mrr", "ndcg")
) -> dict[str, float]:
    """Every requested metric at every cut-off, as ``{"hit_rate@20": value, ...}`` (means over rows)."""
    unknown = set(metrics) - set(_METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; expected some of {list(_METRICS)}")
    ranks = _resolve_ranks(None, None, ranks, None, "pessimistic").cpu()
    return {f"{m}@{k}": float(_reduce(_METRICS[m](ranks, _check_k(k)), "mean")) for m in metrics for k in ks}


class RankingMetrics:
    """Accumulates ranks over an evaluation loop and computes the metrics at the end.

    In a distributed loop, compute ranks on each process and gather those, not the scores::

        metrics = RankingMetrics(ks=(10, 20))
        for batch in loader:
            ranks = ranks_from_scores(model(**batch).logits, batch["labels"], exclude=pad_mask)
            metrics.update(ranks=accelerator.gather_for_metrics(ranks))
        results = metrics.compute()  # {"hit_rate@10": ..., "mrr@20": ...}

    Args:
        ks: cut-offs.
        metrics: names from :data:`METRIC_NAMES`.
        exclude, ties: used when :meth:`update` receives scores (see the module docstring).
    """

    def __init__(
        self,
        ks: Sequence[int] = (20,),
        metrics: Sequence[str] = ("hit_rate", "mrr", "ndcg"),
        *,
        exclude: torch.Tensor | None = None,
        ties: Ties = "pessimistic",
    ):
        unknown = set(metrics) - set(_METRICS)
        if unknown:
            raise ValueError(f"unknown metrics {sorted(unknown)}; expected some of {list(_METRICS)}")
        self.ks, self.metrics = tuple(_check_k(k) for k in ks), tuple(metrics)
        _tie_weight(ties)  # validate
        self.exclude, self.ties = exclude, ties
        self._ranks: list[torch.Tensor] = []

    def update(self, scores=None, targets=None, *, ranks=None) -> torch.Tensor:
        """Add a batch, from ``(scores, targets)`` or from (gathered) ``ranks``; returns its ``(n, R)`` ranks."""
        batch = _resolve_ranks(scores, targets, ranks, self.exclude, self.ties).detach().cpu()
        self._ranks.append(batch)
        return batch

    def compute(self) -> dict[str, float]:
        """The metrics over every row seen since the last :meth:`reset`."""
        if not self._ranks:
            raise ValueError("RankingMetrics.compute() called before any update()")
        width = max(r.shape[1] for r in self._ranks)
        return metrics_from_ranks(torch.cat([_pad(r, width) for r in self._ranks]), self.ks, self.metrics)

    def reset(self) -> None:
        self._ranks.clear()

    @property
    def num_rows(self) -> int:
        return sum(r.shape[0] for r in self._ranks)


# ------------------------------------------------------------------------------------------ graded relevance


def judged_ranks(
    scores: torch.Tensor,
    judged: torch.Tensor,
    *,
    ties: Ties = "pessimistic",
    chunk_size: int | None = None,
) -> torch.Tensor:
    """The rank of every judged item of every row among all items, aligned with ``judged`` (for graded metrics).

    Args:
        scores: ``(N, num_items)`` scores, higher is better (a whole catalogue: rows are taken in chunks).
        judged: ``(N, R)`` long indices of each row's judged items, ``-1`` for padding.
        ties: how *unjudged* items tied with a judged one count (see the module docstring); a judged item tied
            with another judged item of its row is ranked behind it when its column in ``judged`` comes later.
        chunk_size: rows compared at once (default: about 16M elements per temporary).

    Returns:
        ``(N, R)`` float ranks in ``[1, num_items]``, ``nan`` at padding; the same order as ``judged``, so that
        ``gains`` aligned with ``judged`` stay aligned (:func:`graded_ndcg_at_k`, :func:`graded_ranking_metrics`).
    """
    if scores.dim() != 2 or judged.dim() != 2 or judged.shape[0] != scores.shape[0]:
        raise ValueError(
            f"scores must be (N, num_items) and judged (N, R), got {tuple(scores.shape)} and {tuple(judged.shape)}"
        )
    judged = judged.to(device=scores.device, dtype=torch.long)
    if bool((judged >= scores.shape[1]).any()) or bool((judged < -1).any()):
        raise ValueError(f"judged indices must be in [0, {scores.shape[1]}) or -1 (padding)")
    weight = _tie_weight(ties)
    chunk_size = chunk_size or max(1, (1 << 24) // max(1, scores.shape[1]))
    out = torch.full(judged.shape, math.nan, device=scores.device)
    for start in range(0, scores.shape[0], chunk_size):
        rows = slice(start, start + chunk_size)
        idx = judged[rows]
        real = idx >= 0
        ordered = _sorted_rows(scores[rows])  # ascending: counts by binary search, O(R log C) per row
        own = scores[rows].gather(1, idx.clamp_min(0)).contiguous()  # (n, R) the judged items' scores
        below = torch.searchsorted(ordered, own, right=False)  # items scoring < s
        at_most = torch.searchsorted(ordered, own, right=True)  # items scoring <= s
        same = (own[:, :, None] == own[:, None, :]) & real[:, None, :] & real[:, :, None]  # (n, R, R)
        tied_judged = same.sum(2)  # judged items of the row scoring exactly s, itself included
        before = torch.tril(torch.ones(idx.shape[1], idx.shape[1], dtype=torch.bool, device=idx.device), -1)
        tied_judged_before = (same & before).sum(2)  # those in an earlier column
        greater = scores.shape[1] - at_most
        tied_unjudged = at_most - below - tied_judged
        rank = 1.0 + greater.float() + weight * tied_unjudged.float() + tied_judged_before.float()
        out[rows] = torch.where(real, rank, torch.full_like(rank, math.nan))
    return out


def _sorted_rows(block: torch.Tensor) -> torch.Tensor:
    """Each row sorted ascending: numpy's sort on CPU (SIMD, several times faster than ``torch.sort`` there)."""
    if block.device.type != "cpu" or block.dtype not in (torch.float32, torch.float64):
        return block.sort(1).values
    return torch.from_numpy(np.sort(block.detach().numpy(), axis=1))


def graded_ndcg_at_k(
    ranks: torch.Tensor, gains: torch.Tensor, k: int = 10, *, reduction: Reduction = "mean"
) -> torch.Tensor:
    """NDCG@K with graded gains (linear: ``DCG = sum_{rank_j <= K} gain_j / log2(1 + rank_j)``).

    Args:
        ranks: ``(N, R)`` rank of each judged item (:func:`judged_ranks`), ``nan`` at padding.
        gains: ``(N, R)`` the gain of each judged item, aligned with ``ranks`` (padding: any value). Unjudged
            items have gain 0: only judged items add to the DCG.
        k: the cut-off.
        reduction: ``"none"`` (per row) or ``"mean"``.

    The ideal DCG ranks a row's judged items by gain. A row with no positive gain (nothing to find) has no
    NDCG: ``nan`` per row, and left out of the mean.
    """
    _check_k(k)
    ranks, gains = torch.as_tensor(ranks, dtype=torch.float), torch.as_tensor(gains, dtype=torch.float)
    if ranks.shape != gains.shape or ranks.dim() != 2:
        raise ValueError(
            f"ranks and gains must both be (N, R), got {tuple(ranks.shape)} and {tuple(gains.shape)}"
        )
    present = ~ranks.isnan()
    gains = torch.where(present, gains, torch.zeros_like(gains))
    if bool((gains < 0).any()):
        raise ValueError("gains must be >= 0")
    hit = present & (ranks <= k)
    dcg = torch.where(hit, gains / torch.log2(1.0 + ranks.nan_to_num(1.0)), torch.zeros_like(gains)).sum(1)
    best = gains.sort(1, descending=True).values[:, :k]
    discounts = 1.0 / torch.log2(torch.arange(2, best.shape[1] + 2, dtype=torch.float))
    ideal = (best * discounts).sum(1)
    values = torch.where(ideal > 0, dcg / ideal.clamp(min=1e-12), torch.full_like(dcg, math.nan))
    if reduction == "none":
        return values
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    return values.nanmean() if bool((~values.isnan()).any()) else values.new_tensor(math.nan)


def graded_ranking_metrics(
    ranks: torch.Tensor,
    grades: torch.Tensor,
    *,
    ndcg_ks: Sequence[int] = (10,),
    mrr_ks: Sequence[int] = (10,),
    recall_ks: Sequence[int] = (100,),
    relevant_grade: float = 2.5,
    min_grade: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Per-row ranking metrics of judged items with graded relevance (e.g. Home Depot's 1-3 grades).

    ``NDCG@K`` gains are ``grade - min_grade`` for judged items and 0 for unjudged ones (:func:`graded_ndcg_at_k`);
    ``MRR@K`` and ``Recall@K`` (the share of the row's relevant items in the top K) count the items graded
    ``>= relevant_grade`` as relevant. A row with nothing to find for a metric (no positive gain, no relevant
    item) gets ``nan`` for it: average with ``nanmean``, and resample rows as they are (a bootstrap over rows).

    Args:
        ranks: ``(N, R)`` ranks of the judged items (:func:`judged_ranks`), ``nan`` at padding.
        grades: ``(N, R)`` their grades, aligned.

    Returns:
        ``{"NDCG@10": (N,), "MRR@10": (N,), "Recall@100": (N,)}`` (one key per requested cut-off).
    """
    ranks, grades = torch.as_tensor(ranks, dtype=torch.float), torch.as_tensor(grades, dtype=torch.float)
    if ranks.shape != grades.shape or ranks.dim() != 2:
        raise ValueError(
            f"ranks and grades must both be (N, R), got {tuple(ranks.shape)} and {tuple(grades.shape)}"
        )
    present = ~ranks.isnan()
    out = {
        f"NDCG@{k}": graded_ndcg_at_k(ranks, (grades - min_grade).clamp(min=0), k, reduction="none")
        for k in ndcg_ks
    }
    relevant = present & (grades >= relevant_grade)
    relevant_ranks = torch.where(relevant, ranks, torch.full_like(ranks, math.nan)).sort(1).values  # nan last
    none = ~relevant.any(1)
    for k in mrr_ks:
        out[f"MRR@{k}"] = _mrr(relevant_ranks, _check_k(k)).masked_fill(none, math.nan)
    for k in recall_ks:
        out[f"Recall@{k}"] = _recall(relevant_ranks, _check_k(k)).masked_fill(none, math.nan)
    return out


def effective_dimensions(embeddings: torch.Tensor) -> float:
    """How many directions a set of embeddings ``(N, D)`` varies along: the participation ratio
    ``(sum_i l_i)^2 / sum_i l_i^2`` of the eigenvalues ``l_i`` of their covariance (centred). 1 for points on a
    line, ``D`` for points spread equally in ``D`` directions. A collapsed candidate pool (every candidate a point
    on one line, so that every session ranks the pool by the same key) has about 1."""
    eig = torch.linalg.svdvals((embeddings - embeddings.mean(0)).double()) ** 2
    return float(eig.sum() ** 2 / (eig**2).sum().clamp(min=1e-300))


__all__ = [
    "METRIC_NAMES",
    "RankingMetrics",
    "effective_dimensions",
    "graded_ndcg_at_k",
    "graded_ranking_metrics",
    "hit_rate_at_k",
    "hit_rate_from_ranks",
    "judged_ranks",
    "map_at_k",
    "map_from_ranks",
    "metrics_from_ranks",
    "mrr_at_k",
    "mrr_from_ranks",
    "ndcg_at_k",
    "ndcg_from_ranks",
    "rank_of_target",
    "ranks_from_scores",
    "recall_at_k",
    "recall_from_ranks",
    "session_recall_at_k",
    "session_recall_from_ranks",
]
