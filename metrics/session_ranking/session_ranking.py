"""Session ranking metrics (HR@K, MRR@K, NDCG@K, MAP@K) as a Hugging Face ``evaluate`` module.

Loaded from this folder, offline (nothing is downloaded)::

    import evaluate

    ranking = evaluate.load("metrics/session_ranking")
    ranking.compute(
        predictions=[["item-3", "item-7", "item-1"], ["item-2", "item-9"]],  # ranked recommendations, best first
        references=[["item-7"], ["item-5"]],  # the relevant items of each session
        k=[1, 3],
    )
    # {"HR@1": 0.0, "MRR@1": 0.0, "NDCG@1": 0.0, "MAP@1": 0.0, "HR@3": 0.5, "MRR@3": 0.25, ...}

The figures are computed by ``session_transformers.metrics`` (the functions the trainers use), from the rank of
each relevant item in its prediction list; this module only turns ID lists into those ranks.
"""

from __future__ import annotations

import math

import datasets
import evaluate
import torch

from session_transformers import metrics as ranking_metrics

_DESCRIPTION = """\
Ranking metrics of next-item recommendation and session-to-item retrieval, as in session_transformers:
HR@K (a relevant item in the top K), MRR@K (reciprocal rank of the first relevant item, 0 beyond K), NDCG@K
(binary gains) and MAP@K (average precision at K normalised by min(R, K)). A relevant item that is not in the
prediction list counts as ranked beyond every K. Values are means over sessions, in [0, 1].
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions: per session, the recommended item IDs, best first (strings or integers).
    references: per session, the relevant item IDs (one or more; same type as predictions).
    k: a cut-off or a list of cut-offs (default [10, 20]).
    metrics: which of "HR", "MRR", "NDCG", "MAP" to return (default all four).
Returns:
    {"HR@10": ..., "MRR@10": ..., "NDCG@10": ..., "MAP@10": ..., ...} for every metric and cut-off.
Examples:
    >>> ranking = evaluate.load("metrics/session_ranking")
    >>> ranking.compute(predictions=[["a", "b"]], references=[["b"]], k=2)["MRR@2"]
    0.5
"""

_CITATION = """\
@software{session_transformers,
  title = {session_transformers: pretrained models of e-commerce user sessions},
  year = {2026}
}
"""

# metric name here -> name in session_transformers.metrics
METRICS = {"HR": "hit_rate", "MRR": "mrr", "NDCG": "ndcg", "MAP": "map"}


def ranks_of_references(predictions, references) -> torch.Tensor:
    """``(N, R)`` ranks (1-based) of each session's relevant items in its prediction list, sorted, ``inf`` for an
    item not in the list and ``nan`` padding (the layout ``session_transformers.metrics`` reads)."""
    if len(predictions) != len(references):
        raise ValueError(f"got {len(predictions)} predictions for {len(references)} references")
    rows = []
    for n, (ranked, relevant) in enumerate(zip(predictions, references)):
        relevant = list(dict.fromkeys(relevant))
        if not relevant:
            raise ValueError(f"session {n} has no reference (relevant) item")
        position: dict = {}
        for r, item in enumerate(ranked, start=1):
            position.setdefault(item, r)
        rows.append(sorted(float(position.get(item, math.inf)) for item in relevant))
    width = max((len(r) for r in rows), default=1)
    return torch.tensor([r + [math.nan] * (width - len(r)) for r in rows], dtype=torch.float).reshape(
        -1, width
    )


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SessionRanking(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features(
                    {
                        "predictions": datasets.Sequence(datasets.Value("string")),
                        "references": datasets.Sequence(datasets.Value("string")),
                    }
                ),
                datasets.Features(
                    {
                        "predictions": datasets.Sequence(datasets.Value("int64")),
                        "references": datasets.Sequence(datasets.Value("int64")),
                    }
                ),
            ],
        )

    def _compute(self, predictions, references, k=(10, 20), metrics=tuple(METRICS)):
        ks = [k] if isinstance(k, int) else list(k)
        unknown = [m for m in metrics if m not in METRICS]
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; choose from {list(METRICS)}")
        ranks = ranks_of_references(predictions, references)
        figures = ranking_metrics.metrics_from_ranks(ranks, ks, [METRICS[m] for m in metrics])
        return {f"{m}@{cut}": figures[f"{METRICS[m]}@{cut}"] for cut in ks for m in metrics}
