"""The ``evaluate`` module metrics/session_ranking, loaded offline from its local folder."""

import math

import evaluate
import pytest
import torch

from launch import ROOT
from session_transformers import metrics

MODULE = str(ROOT / "metrics" / "session_ranking")


@pytest.fixture(scope="module")
def ranking():
    return evaluate.load(MODULE)


def test_hand_computed_values(ranking):
    predictions = [["a", "b", "c"], ["d", "e"], ["f", "g", "h", "i"]]
    references = [["b"], ["z"], ["f", "h"]]
    out = ranking.compute(predictions=predictions, references=references, k=[1, 3])
    # session 1: rank 2; session 2: missing; session 3: ranks 1 and 3
    assert out["HR@1"] == pytest.approx(1 / 3)
    assert out["HR@3"] == pytest.approx(2 / 3)
    assert out["MRR@3"] == pytest.approx((1 / 2 + 0 + 1) / 3)
    ndcg_3 = (1 / math.log2(3) + 0 + (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))) / 3
    assert out["NDCG@3"] == pytest.approx(ndcg_3)
    assert out["MAP@3"] == pytest.approx((1 / 2 + 0 + (1 / 1 + 2 / 3) / 2) / 3)
    assert out["MAP@1"] == pytest.approx((0 + 0 + 1 / 1) / 3)
    assert set(out) == {f"{m}@{k}" for m in ("HR", "MRR", "NDCG", "MAP") for k in (1, 3)}


def test_agrees_with_the_package_metrics_on_random_rankings(ranking):
    """The module wraps session_transformers.metrics: scores -> ranked lists give the same figures as the
    package computes from the scores directly."""
    generator = torch.Generator().manual_seed(0)
    scores = torch.rand(50, 30, generator=generator)
    relevant = torch.rand(50, 30, generator=generator) < 0.1
    relevant[torch.arange(50), torch.randint(0, 30, (50,), generator=generator)] = True
    order = scores.argsort(dim=1, descending=True)
    predictions = [[int(i) for i in row] for row in order]
    references = [torch.nonzero(r).flatten().tolist() for r in relevant]
    for start in range(0, 50, 20):  # batch by batch
        ranking.add_batch(
            predictions=predictions[start : start + 20], references=references[start : start + 20]
        )
    out = ranking.compute(k=[5, 10])
    ranks = metrics.ranks_from_scores(scores, relevant)
    for k in (5, 10):
        assert out[f"HR@{k}"] == pytest.approx(metrics.hit_rate_from_ranks(ranks, k), abs=1e-6)
        assert out[f"MRR@{k}"] == pytest.approx(metrics.mrr_from_ranks(ranks, k), abs=1e-6)
        assert out[f"NDCG@{k}"] == pytest.approx(metrics.ndcg_from_ranks(ranks, k), abs=1e-6)
        assert out[f"MAP@{k}"] == pytest.approx(metrics.map_from_ranks(ranks, k), abs=1e-6)


def test_options_and_errors(ranking):
    out = ranking.compute(predictions=[["a", "b"]], references=[["b"]], k=2, metrics=["MRR"])
    assert out == {"MRR@2": pytest.approx(0.5)}
    with pytest.raises(ValueError, match="unknown metrics"):
        ranking.compute(predictions=[["a"]], references=[["a"]], metrics=["F1"])
    with pytest.raises(ValueError, match="no reference"):
        ranking.compute(predictions=[["a"]], references=[[]])


def test_recommendation_pipeline_output_feeds_the_module(ranking):
    """The README's recipe: a pipeline's output, item IDs per session, is the module's ``predictions``."""
    rows = [[{"item_id": "x", "score": 2.0}, {"item_id": "y", "score": 1.0}]]
    predictions = [[r["item_id"] for r in row] for row in rows]
    assert ranking.compute(predictions=predictions, references=[["y"]], k=1)["HR@1"] == 0.0
