"""Known-answer tests for the ranking metrics (closed-form values, ties, exclusion, MAP, top-k path)."""

import math

import pytest
import torch

from session_transformers.metrics import (
    RankingMetrics,
    hit_rate_at_k,
    hit_rate_from_ranks,
    map_at_k,
    map_from_ranks,
    metrics_from_ranks,
    mrr_at_k,
    mrr_from_ranks,
    ndcg_at_k,
    ndcg_from_ranks,
    rank_of_target,
    ranks_from_scores,
    recall_at_k,
    recall_from_ranks,
    session_recall_at_k,
    session_recall_from_ranks,
)

# row 0: target 3 (0.5) is behind item 1 (0.9) -> rank 2
# row 1: target 1 ties with items 0 and 2 -> rank 3 pessimistic, 1 optimistic, 2 average
# row 2: target 0 is last -> rank 5
SCORES = torch.tensor(
    [
        [0.1, 0.9, 0.3, 0.5, 0.2],
        [0.5, 0.5, 0.5, 0.1, 0.0],
        [0.0, 0.1, 0.2, 0.3, 0.4],
    ]
)
TARGETS = torch.tensor([3, 1, 0])


def close(value, expected):
    return float(value) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("ties", "expected"), [("pessimistic", [2, 3, 5]), ("optimistic", [2, 1, 5]), ("average", [2, 2, 5])]
)
def test_rank_of_target_ties(ties, expected):
    assert rank_of_target(SCORES, TARGETS, ties=ties).tolist() == expected
    # chunking over rows changes nothing
    assert rank_of_target(SCORES, TARGETS, ties=ties, chunk_size=1).tolist() == expected


def test_constant_scores_get_the_worst_rank_when_pessimistic():
    scores = torch.zeros(2, 7)
    assert rank_of_target(scores, torch.tensor([0, 6])).tolist() == [7, 7]
    assert rank_of_target(scores, torch.tensor([0, 6]), ties="average").tolist() == [4, 4]


def test_closed_form_single_target_metrics():
    assert close(hit_rate_at_k(SCORES, TARGETS, k=1), 0.0)
    assert close(hit_rate_at_k(SCORES, TARGETS, k=3), 2 / 3)
    assert close(hit_rate_at_k(SCORES, TARGETS, k=5), 1.0)
    assert close(mrr_at_k(SCORES, TARGETS, k=3), (1 / 2 + 1 / 3) / 3)
    assert close(mrr_at_k(SCORES, TARGETS, k=5), (1 / 2 + 1 / 3 + 1 / 5) / 3)
    assert close(ndcg_at_k(SCORES, TARGETS, k=3), (1 / math.log2(3) + 1 / math.log2(4)) / 3)
    assert close(
        ndcg_at_k(SCORES, TARGETS, k=5), (1 / math.log2(3) + 1 / math.log2(4) + 1 / math.log2(6)) / 3
    )
    # one relevant item: recall == hit rate, MAP == MRR
    for k in (1, 2, 3, 5):
        assert close(recall_at_k(SCORES, TARGETS, k=k), float(hit_rate_at_k(SCORES, TARGETS, k=k)))
        assert close(map_at_k(SCORES, TARGETS, k=k), float(mrr_at_k(SCORES, TARGETS, k=k)))
    # optimistic ties put row 1 first
    assert close(hit_rate_at_k(SCORES, TARGETS, k=1, ties="optimistic"), 1 / 3)
    assert close(mrr_at_k(SCORES, TARGETS, k=5, ties="optimistic"), (1 / 2 + 1 + 1 / 5) / 3)
    per_row = mrr_at_k(SCORES, TARGETS, k=3, reduction="none")
    assert per_row.tolist() == pytest.approx([1 / 2, 1 / 3, 0.0])


def test_precomputed_ranks_equal_scores_path():
    ranks = torch.tensor([2.0, 3.0, 5.0])
    for fn in (hit_rate_at_k, mrr_at_k, ndcg_at_k, recall_at_k, map_at_k):
        assert close(fn(ranks=ranks, k=3), float(fn(SCORES, TARGETS, k=3)))


def test_float_shorthands_from_ranks():
    ranks = rank_of_target(SCORES, TARGETS)  # [2, 3, 5]
    assert hit_rate_from_ranks(ranks, 3) == pytest.approx(2 / 3)
    assert mrr_from_ranks(ranks, 3) == pytest.approx((1 / 2 + 1 / 3) / 3)
    assert ndcg_from_ranks(ranks, 1) == 0.0
    assert recall_from_ranks(ranks, 5) == 1.0
    assert map_from_ranks(ranks, 2) == pytest.approx(1 / 6)
    assert isinstance(hit_rate_from_ranks(ranks.long(), 20), float)  # integer ranks are accepted


def test_exclude_mask_shared_and_per_row():
    pad = torch.tensor([True, False, False, False, False])  # padding index 0 is never a candidate
    # row 1 loses its tie with item 0; row 2's target is item 0 itself, which is still ranked
    assert rank_of_target(SCORES, TARGETS, exclude=pad).tolist() == [2, 2, 5]
    per_row = torch.zeros(3, 5, dtype=torch.bool)
    per_row[0, 1] = True  # row 0: item 1 (0.9) already seen in the session
    per_row[2, 1:] = True
    assert rank_of_target(SCORES, TARGETS, exclude=per_row).tolist() == [1, 3, 1]
    assert close(hit_rate_at_k(SCORES, TARGETS, k=1, exclude=per_row), 2 / 3)


MULTI_SCORES = torch.tensor(
    [
        [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],  # ranking 0,1,2,3,4,5
        [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
    ]
)
MULTI_RELEVANT = [{0, 2, 5}, {4}]  # relevant ranks (1, 3, 6) and (5,)


def test_map_and_recall_with_several_relevant_items():
    ranks = ranks_from_scores(MULTI_SCORES, MULTI_RELEVANT)
    assert ranks.shape == (2, 3)
    assert ranks[0].tolist() == [1, 3, 6]
    assert ranks[1, 0] == 5 and math.isnan(ranks[1, 1]) and math.isnan(ranks[1, 2])
    # AP@3 = (1/1 + 2/3) / min(3, 3); AP@6 = (1/1 + 2/3 + 3/6) / 3; row 1: AP@3 = 0, AP@6 = (1/5) / 1
    per_row_3 = map_at_k(MULTI_SCORES, MULTI_RELEVANT, k=3, reduction="none")
    assert per_row_3.tolist() == pytest.approx([5 / 9, 0.0])
    assert close(map_at_k(MULTI_SCORES, MULTI_RELEVANT, k=6), (13 / 18 + 1 / 5) / 2)
    assert close(map_at_k(MULTI_SCORES, MULTI_RELEVANT, k=1), 1 / 2)  # row 0: 1 / min(3, 1)
    assert recall_at_k(MULTI_SCORES, MULTI_RELEVANT, k=3, reduction="none").tolist() == pytest.approx(
        [2 / 3, 0]
    )
    assert close(recall_at_k(MULTI_SCORES, MULTI_RELEVANT, k=6), 1.0)
    assert close(hit_rate_at_k(MULTI_SCORES, MULTI_RELEVANT, k=3), 1 / 2)
    assert close(mrr_at_k(MULTI_SCORES, MULTI_RELEVANT, k=6), (1 + 1 / 5) / 2)
    # NDCG@3 of row 0: (1/log2(2) + 1/log2(4)) / (1/log2(2) + 1/log2(3) + 1/log2(4))
    expected = 1.5 / (1.5 + 1 / math.log2(3))
    assert ndcg_at_k(MULTI_SCORES, MULTI_RELEVANT, k=3, reduction="none")[0].item() == pytest.approx(expected)


def test_session_recall_is_the_share_of_rows_with_all_relevant_items_in_the_top_k():
    # the CERES paper's Recall@K: a session counts when its relevant items were retrieved in the top K
    nan, inf = math.nan, math.inf
    ranks = torch.tensor([[1.0, 3.0, nan], [2.0, 5.0, 9.0], [inf, nan, nan], [4.0, nan, nan]])
    # K = 3: row 0 (1, 3) all in; row 1 has 5 and 9 out; row 2 unknown (inf); row 3 has 4 out
    assert session_recall_at_k(ranks=ranks, k=3, reduction="none").tolist() == [1.0, 0.0, 0.0, 0.0]
    assert session_recall_from_ranks(ranks, 3) == pytest.approx(1 / 4)
    assert session_recall_from_ranks(ranks, 5) == pytest.approx(2 / 4)  # rows 0 and 3
    assert session_recall_from_ranks(ranks, 9) == pytest.approx(3 / 4)  # row 2's inf never counts
    # the item share (recall_at_k) and "any relevant item" (hit_rate_at_k) on the same rows
    assert recall_from_ranks(ranks, 3) == pytest.approx((1 + 1 / 3 + 0 + 0) / 4)
    assert recall_from_ranks(ranks, 5) == pytest.approx((1 + 2 / 3 + 0 + 1) / 4)
    assert hit_rate_from_ranks(ranks, 3) == pytest.approx(2 / 4)
    assert metrics_from_ranks(ranks, ks=(5,), metrics=("session_recall", "recall")) == pytest.approx(
        {"session_recall@5": 0.5, "recall@5": (1 + 2 / 3 + 0 + 1) / 4}
    )
    # from scores: MULTI_RELEVANT ranks are (1, 3, 6) and (5,)
    per_row = session_recall_at_k(MULTI_SCORES, MULTI_RELEVANT, k=5, reduction="none")
    assert per_row.tolist() == [0.0, 1.0]
    assert close(session_recall_at_k(MULTI_SCORES, MULTI_RELEVANT, k=6), 1.0)
    assert close(session_recall_at_k(MULTI_SCORES, MULTI_RELEVANT, k=3), 0.0)
    # one relevant item per row: all three recalls are the same number
    for k in (1, 2, 3, 5):
        one = float(session_recall_at_k(SCORES, TARGETS, k=k))
        assert one == float(recall_at_k(SCORES, TARGETS, k=k)) == float(hit_rate_at_k(SCORES, TARGETS, k=k))
    # a padded row with no relevant item does not count
    assert session_recall_at_k(ranks=torch.tensor([[nan, nan]]), k=5, reduction="none").tolist() == [0.0]


def test_relevance_forms_agree():
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[0, [0, 2, 5]] = True
    mask[1, 4] = True
    torch.testing.assert_close(
        ranks_from_scores(MULTI_SCORES, mask), ranks_from_scores(MULTI_SCORES, MULTI_RELEVANT), equal_nan=True
    )
    # a (N,) target tensor and its one-hot mask give the same ranks
    one_hot = torch.nn.functional.one_hot(TARGETS, 5).bool()
    torch.testing.assert_close(ranks_from_scores(SCORES, one_hot)[:, 0], ranks_from_scores(SCORES, TARGETS))
    padded = ranks_from_scores(MULTI_SCORES, MULTI_RELEVANT, max_relevant=4)
    assert padded.shape == (2, 4) and math.isnan(padded[0, 3])
    assert close(map_at_k(ranks=padded, k=6), float(map_at_k(MULTI_SCORES, MULTI_RELEVANT, k=6)))


def test_ties_between_relevant_items_are_broken_by_index():
    scores = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    relevant = [{1, 2}]
    # pessimistic: irrelevant item 0 ties ahead of both; relevant item 1 goes before item 2
    assert ranks_from_scores(scores, relevant).tolist() == [[2.0, 3.0]]
    assert close(map_at_k(scores, relevant, k=3), (1 / 2 + 2 / 3) / 2)
    assert ranks_from_scores(scores, relevant, ties="optimistic").tolist() == [[1.0, 2.0]]
    assert close(map_at_k(scores, relevant, k=3, ties="optimistic"), 1.0)
    assert ranks_from_scores(scores, relevant, ties="average").tolist() == [[1.5, 2.5]]


def test_ranking_metrics_accumulator():
    metrics = RankingMetrics(ks=(1, 3, 5), metrics=("hit_rate", "mrr", "ndcg"))
    metrics.update(SCORES[:2], TARGETS[:2])
    metrics.update(ranks=rank_of_target(SCORES[2:], TARGETS[2:]))  # what gather_for_metrics hands back
    assert metrics.num_rows == 3
    result = metrics.compute()
    assert result["hit_rate@3"] == pytest.approx(2 / 3)
    assert result["mrr@5"] == pytest.approx((1 / 2 + 1 / 3 + 1 / 5) / 3)
    assert result == pytest.approx(metrics_from_ranks(rank_of_target(SCORES, TARGETS), (1, 3, 5)))
    metrics.reset()
    with pytest.raises(ValueError, match="before any update"):
        metrics.compute()
    # batches with different numbers of relevant items are padded together
    multi = RankingMetrics(ks=(3, 6), metrics=("map", "recall"))
    multi.update(MULTI_SCORES[:1], MULTI_RELEVANT[:1])
    multi.update(MULTI_SCORES[1:], MULTI_RELEVANT[1:])
    assert multi.compute()["map@6"] == pytest.approx((13 / 18 + 1 / 5) / 2)


def test_errors():
    with pytest.raises(ValueError, match="either scores"):
        hit_rate_at_k(k=3)
    with pytest.raises(ValueError, match="either scores"):
        hit_rate_at_k(SCORES, TARGETS, k=3, ranks=torch.ones(3))
    with pytest.raises(ValueError, match="positive integer"):
        hit_rate_at_k(SCORES, TARGETS, k=0)
    with pytest.raises(ValueError, match="ties"):
        rank_of_target(SCORES, TARGETS, ties="random")
    with pytest.raises(ValueError, match="no relevant item"):
        ranks_from_scores(MULTI_SCORES, [{0}, set()])
    with pytest.raises(ValueError, match="unknown metrics"):
        RankingMetrics(metrics=("auc",))


def test_unknown_targets_are_misses_not_crashes():
    from session_transformers.models.tagnn_pp.recipe import _next_item_ranks, _next_item_summarize

    scores = torch.tensor([[0.0, 3.0, 1.0, 2.0], [0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 3.0, 2.0]])
    labels = torch.tensor([1, -100, 3])  # the processor gives -100 to a target outside its vocabulary
    ranks = rank_of_target(scores, labels)
    assert ranks.tolist() == [1.0, float("inf"), 2.0]
    out = _next_item_summarize(_next_item_ranks(scores, labels), ks=(1, 2))
    assert out["num_unknown_targets"] == 1 and out["num_samples"] == 3
    assert out["HR@2"] == pytest.approx(200 / 3) and out["MRR@2"] == pytest.approx(100 * 1.5 / 3)
