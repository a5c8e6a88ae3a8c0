"""Several processes agree with one (issue 15, item 4): two CPU processes (gloo, through accelerate) on one global
batch against one process on the same batch, for every model's objective (``benchmarks/process_parity.py``).

The merge of two collated halves is checked first, without processes: where a collator draws nothing at random,
the merged halves are exactly the batch collated at once; where it augments, the halves' draws differ from the
whole batch's (the reason to merge rather than collate the global batch)."""

import pytest
import torch
from benchmarks import process_parity as pp

DETERMINISTIC_KEYS = {
    "tagnn_pp": None,  # every key
    "ceres_pretrain": ("attention_mask", "sequence_item_index", "item_session_index", "item_position"),
    "ubm_stage1": ("item_input_ids", "item_attention_mask"),
    "ubm_stage2": ("input_ids", "attention_mask", "interaction_mask"),
    "muvcog": ("num_queries", "global_view", "local_view", "click_ids"),
    "product_byol": None,
}
"""Per case: the batch keys its collator computes without drawing at random (``None``: all of them)."""
AUGMENTED_KEY = {
    "ceres_pretrain": "labels",
    "ubm_stage1": "masked_item_input_ids",
    "ubm_stage2": "masked_input_ids",
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _assert_same(x, y, what: str) -> None:
    if torch.is_tensor(y):
        assert torch.equal(x, y), what
        return
    assert set(x.node_types) == set(y.node_types) and set(x.edge_types) == set(y.edge_types), what
    for t in y.node_types:
        assert set(x[t].keys()) == set(y[t].keys()), (what, t)
        for k, v in y[t].items():
            assert torch.equal(x[t][k], v) if torch.is_tensor(v) else x[t][k] == v, (what, t, k)
    for t in y.edge_types:
        assert torch.equal(x[t].edge_index, y[t].edge_index), (what, t)
    assert torch.equal(x.num_queries, y.num_queries), what


@pytest.mark.parametrize("name", list(DETERMINISTIC_KEYS))
def test_merged_halves_are_the_whole_batch(name):
    case = pp.CASES[name]
    data, _, _ = pp.recipe_data(case)
    rows = [data.train_dataset[i] for i in range(10)]
    halves = [dict(data.collate_fn(rows[:4])), dict(data.collate_fn(rows[4:]))]  # uneven: 4 and 6 rows
    before = {k: v.clone() for k, v in halves[1].items() if torch.is_tensor(v)}
    merged = pp.MERGES[case.family](*halves, pad_id=pp._pad_id(data.processor))
    whole = dict(data.collate_fn(rows))
    assert set(merged) == set(whole)
    for key in DETERMINISTIC_KEYS[name] or whole:
        _assert_same(merged[key], whole[key], f"{name}: {key}")
    for key, value in before.items():  # merging leaves the halves (the two-process inputs) untouched
        assert torch.equal(halves[1][key], value), key
    if name in AUGMENTED_KEY:  # the halves draw other masks than the whole batch: hence the merge
        key = AUGMENTED_KEY[name]
        assert merged[key].shape == whole[key].shape and not torch.equal(merged[key], whole[key])


def test_retrieval_merge_keeps_each_halfs_candidates():
    """CERES retrieval: candidates stacked (a target of both halves twice), labels block-diagonal."""
    data, _, _ = pp.recipe_data(pp.CASES["ceres_retrieval"])
    rows = [data.train_dataset[i] for i in range(6)]
    a, b = dict(data.collate_fn(rows[:3])), dict(data.collate_fn(rows[3:]))
    merged = pp.merge_ceres(a, b, pad_id=pp._pad_id(data.processor))
    ca, cb = a["labels"].shape[1], b["labels"].shape[1]
    assert merged["labels"].shape == (6, ca + cb)
    assert torch.equal(merged["labels"][:3, :ca], a["labels"]) and not merged["labels"][:3, ca:].any()
    assert torch.equal(merged["labels"][3:, ca:], b["labels"]) and not merged["labels"][3:, :ca].any()
    assert torch.equal(merged["candidate_sequence_index"][-len(b["candidate_sequence_index"]) :] - ca,
                       b["candidate_sequence_index"])  # fmt: skip


def _check(figures: dict) -> None:
    for name, f in figures.items():
        assert f["ranks_identical"], f"{name}: the two processes hold different weights"
        assert f["passed"], (name, f)


def test_two_processes_agree_with_one():
    """One global batch of 4 rows (2 per process), one SGD step (+ BYOL's EMA update), for the cases that gather
    across processes or were fixed for it: loss, gradients and weights within float tolerance."""
    fast = [name for name, case in pp.CASES.items() if case.fast]
    assert {"ceres_pretrain", "ceres_retrieval", "ubm_stage1", "muvcog", "product_byol_sync_bn"} <= set(fast)
    _check(pp.measure(fast, per_process=2, steps=1))


@pytest.mark.slow
def test_every_case_agrees_over_two_steps(tmp_path):
    """Every case, 4 rows per process, 2 steps; writes the result file as the benchmark does. Product BYOL with
    per-process BatchNorm (the default) is the one stated deviation: it must differ beyond float tolerance (else
    the per-process statistics would not be per process) and stay within its measured bound."""
    figures = pp.main(["--results-dir", str(tmp_path)])
    assert set(figures) == set(pp.CASES) and (tmp_path / "process_parity.json").exists()
    _check(figures)
    for name in ("product_byol", "product_byol_64"):
        assert figures[name]["max_rel_dloss"] > pp.FLOAT_TOLERANCE["loss"], name
