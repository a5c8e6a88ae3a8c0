"""Pieces of ``benchmarks/ubm_claims.py`` that a long run depends on: the item-ID row learns what item IDs carry,
and its scratch stages run at their own rate (its cache of kept work is tested with
``benchmarks._common`` in ``test_benchmark_common.py``)."""

from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np
from benchmarks import ubm_claims as uc


def _examples(n: int, rng: random.Random, pool: list[str]) -> list[dict]:
    """Sessions of 1-5 item views whose next item is the last one again (REES46's most common next item)."""
    rows = []
    for i in range(n):
        items = [rng.choice(pool) for _ in range(rng.randint(1, 5))]
        rows.append(
            {
                "session_id": str(i),
                "events": [{"subject": "item", "item_id": x} for x in items],
                "target": items[-1],
                "label": float(len(items)),
            }
        )
    return rows


def test_item_id_row_learns_what_ids_carry():
    rng = random.Random(0)
    pool = [f"p{i}" for i in range(40)]
    train, val, test = (_examples(n, rng, pool) for n in (600, 100, 200))
    data = SimpleNamespace(
        train_dataset=train, eval_dataset=val, test_dataset=test, collate_fn=SimpleNamespace(pool_ids=pool)
    )
    ranks = uc.item_id_values("next_item", data, seed=0, epochs=15)["rank"]
    assert ranks.shape == (200,) and (ranks >= 1).all()
    assert np.mean(ranks == 1) > 0.8, np.mean(ranks == 1)  # random ranking: 1 in 40
    # remaining length here is a function of the session's length: the regression head finds it too
    out = uc.item_id_values("remaining_length", data, seed=0, epochs=15)
    baseline = np.mean((out["label"] - np.mean([r["label"] for r in train])) ** 2)
    assert np.mean((out["prediction"] - out["label"]) ** 2) < 0.5 * baseline


def test_scratch_encoder_runs_every_stage_at_its_own_learning_rate():
    flags = ["--max-steps", "60", "--learning-rate", "1e-4", "--eval-steps", "50"]
    assert uc._with_flag(flags, "--learning-rate", uc.SCRATCH_LEARNING_RATE) == [
        "--max-steps",
        "60",
        "--learning-rate",
        "5e-4",
        "--eval-steps",
        "50",
    ]
    assert uc._with_flag(["--max-steps", "2"], "--learning-rate", "5e-4")[-2:] == ["--learning-rate", "5e-4"]
