"""CERES's candidate embeddings carry content after a short training: a collapsed candidate pool fails.

With the paper's description of ``Pool`` (a sequence's embedding is the output at its ``[SEARCH]`` / ``[ATTRTYPE]``
marker, ``sentence_pooling="first"``) a small CERES learns almost nothing about a product's words: after the main
job's pretraining every candidate has cosine 0.946 +- 0.004 to a session, and after its fine-tuning the candidate
embeddings vary along one direction, so every session ranks the pool by the same key and product search falls
below ranking by popularity (``benchmarks/results/pooling_spread.json``: ``python -m benchmarks.pooling_spread``).
Two checks catch that, on the test split's fixed pool after a short training, with the default config:

- **the scores spread**: the std of a session's cosine over the pool, averaged over sessions, is at least
  ``MIN_SCORE_STD``. It catches a pool whose candidates all score alike (marker pooling after the main job's
  pretraining: 0.0041), but not alone: fine-tuned marker pooling spreads its scores widely along its one
  direction (0.11 after this test's 30 steps, 0.23 after the main job's fine-tuning; mean pooling 0.29 and 0.21);
- **the spread has many directions**: the effective number of dimensions of the candidate embeddings
  (:func:`~session_transformers.metrics.effective_dimensions`: 1 when they vary along one line, the width when
  they vary equally in every direction) is at least ``MIN_EFFECTIVE_DIMENSIONS``. Measured with marker pooling:
  2.3 after this test's 30 steps, 2.6 after the main job's pretraining and 1.28 after its fine-tuning; with mean
  pooling 5.9, 18.0 and 21.3 (of 32);

and the ranking must be useful: MAP@32 at least ``MIN_MARGIN_OVER_POPULARITY`` points above ranking the pool by
training popularity (marker pooling: 14.9 against 26.5 after this test's 30 steps, 3.08 against 5.36 after the
main job; mean pooling: 59.9 against 26.5 and 32.3 against 5.36). The floors sit inside the gap between the two
poolings. Figures of the reformulation-mix store (2026-12-06).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from session_transformers.metrics import effective_dimensions
from session_transformers.models.ceres import CeresForSessionRetrieval
from session_transformers.recipes import RECIPES, resolve_data_arguments, training_parser

MIN_SCORE_STD = 0.05
MIN_EFFECTIVE_DIMENSIONS = 4.0
MIN_MARGIN_OVER_POPULARITY = 10.0  # MAP@32 points

TASK = RECIPES["ceres"].finetune["product_search"]


def test_effective_dimensions_known_answers():
    line = torch.tensor([[1.0, 2.0, 3.0]]) * torch.arange(5.0)[:, None] + 7.0  # points on one line
    assert effective_dimensions(line) == pytest.approx(1.0)
    square = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, -1.0, 0.0]])
    assert effective_dimensions(square) == pytest.approx(2.0)  # two directions, equal variance
    stretched = square * torch.tensor([3.0, 1.0, 1.0])  # variances 9 : 1 -> 100 / 82
    assert effective_dimensions(stretched) == pytest.approx(100 / 82)


@torch.no_grad()
def pool_spread(model: CeresForSessionRetrieval, data) -> dict[str, float]:
    """The test split against its fixed pool: score spread, effective dimensions, MAP@32 and the baselines'."""
    model.eval()
    rows = [data.test_dataset[i] for i in range(len(data.test_dataset))]
    batch = data.collate_fn(rows)
    labels = batch.pop("labels")
    out = model(**batch)
    found = TASK.summarize(TASK.per_example(out.logits, labels))
    baselines = TASK.baseline(data)
    return {
        "score_std": float(out.logits.std(1).mean()),
        "effective_dimensions": effective_dimensions(out.candidate_embeddings),
        "MAP@32": found["MAP@32"],
        "popularity MAP@32": baselines["popularity"]["MAP@32"],
        "BM25 MAP@32": baselines["BM25"]["MAP@32"],
    }


def assert_not_collapsed(spread: dict[str, float]) -> None:
    assert spread["score_std"] >= MIN_SCORE_STD, spread  # candidates do not all score alike
    assert spread["effective_dimensions"] >= MIN_EFFECTIVE_DIMENSIONS, spread  # nor along one direction only
    assert spread["MAP@32"] >= spread["popularity MAP@32"] + MIN_MARGIN_OVER_POPULARITY, spread


def test_candidates_carry_content_after_a_short_training():
    """The default config, 30 steps of product search on the tiny store (a hand-written loop: the trainers'
    own runs are in the slow test below)."""
    argv = [
        "--model",
        "ceres",
        "--task",
        "product_search",
        "--store-preset",
        "tiny",
        "--num-sessions",
        "1000",
        "--config",
        "hidden_size=32",
        "num_hidden_layers=1",
        "num_attention_heads=2",
        "intermediate_size=64",
        "num_cross_attention_layers=1",
        "retrieval_projection_size=32",
    ]
    parser, recipe, _ = training_parser("test", argv, with_task=True)
    data = TASK.prepare(resolve_data_arguments(parser, parser.parse_args(argv), recipe))
    torch.manual_seed(0)
    model = CeresForSessionRetrieval(data.config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    draw = torch.Generator().manual_seed(0)
    for _ in range(30):
        rows = torch.randint(0, len(data.train_dataset), (16,), generator=draw).tolist()
        loss = model(**data.collate_fn([data.train_dataset[i] for i in rows])).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    spread = pool_spread(model, data)
    print(f"tiny store, 30 steps: {spread}")  # shown with pytest -s
    assert_not_collapsed(spread)


@pytest.mark.slow
def test_main_jobs_ceres_candidates_carry_content(tmp_path, capsys):
    """The main job's CERES (``trainers/quickstart.py --models ceres``: pretraining, then product-search
    fine-tuning with Trainer), its fine-tuned model on the test split's pool."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "trainers"))
    import finetune
    import quickstart

    quickstart.main(["--models", "ceres", "--no-launch", "--threads", "1", "--output-dir", str(tmp_path)])
    job = RECIPES["ceres"].quickstart
    args, _ = finetune.parse_args(
        [
            "--model",
            "ceres",
            "--task",
            job.finetune_task,
            *job.finetune_args,
            "--init-from",
            str(tmp_path / "ceres" / "pretrain"),
        ]
    )
    data = TASK.prepare(args)
    model = CeresForSessionRetrieval.from_pretrained(tmp_path / "ceres" / "finetune")
    spread = pool_spread(model, data)
    with capsys.disabled():
        print(f"\nmain job's CERES on its test pool: {spread}")
    assert_not_collapsed(spread)
