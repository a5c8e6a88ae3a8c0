"""Pieces of ``benchmarks/ubm_claims.py`` that a long run depends on: the item-ID row learns what item IDs carry,
and finished work is reused by the next call."""

from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np
import pytest
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


def test_finished_work_is_reused_by_the_next_call(tmp_path):
    calls = []

    def compute(x):
        calls.append(x)
        return {"value": x}

    path = tmp_path / "a" / "figure.json"
    assert uc._cached_json(path, compute, 3) == {"value": 3}
    assert uc._cached_json(path, compute, 4) == {"value": 3} and calls == [3]  # read back, not recomputed
    arrays = tmp_path / "b" / "values.npz"
    first = uc._cached_arrays(arrays, lambda n: {"rank": np.arange(n, dtype=float)}, 3)
    again = uc._cached_arrays(arrays, lambda n: {"rank": np.zeros(n)}, 5)
    assert again["rank"].tolist() == first["rank"].tolist() == [0.0, 1.0, 2.0]
    assert sorted(p.name for p in arrays.parent.iterdir()) == ["values.npz"]  # no temporary file left


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


def test_kept_work_is_not_reused_under_other_settings(tmp_path):
    path = tmp_path / "ft" / "test_predictions.npz"
    flags = ["--max-steps", "600"]
    uc._cached_arrays(path, lambda: {"rank": np.ones(2)}, settings=flags)
    again = uc._cached_arrays(path, lambda: {"rank": np.zeros(2)}, settings=list(flags))
    assert again["rank"].tolist() == [1.0, 1.0]  # same settings: read back
    with pytest.raises(SystemExit, match="other settings(.|\n)*--fresh"):
        uc._cached_arrays(path, lambda: {"rank": np.zeros(2)}, settings=["--max-steps", "100"])
    # work kept before settings were recorded is adopted with the current ones, then held to them
    uc._settings_path(path).unlink()
    uc._cached_arrays(path, lambda: {"rank": np.zeros(2)}, settings=["--max-steps", "100"])
    with pytest.raises(SystemExit):
        uc._cached_arrays(path, lambda: {"rank": np.zeros(2)}, settings=flags)
    figure = tmp_path / "alignment.json"
    uc._cached_json(figure, lambda: {"alignment": 0.1}, settings=[["--init-from", "a"]])
    with pytest.raises(SystemExit):
        uc._cached_json(figure, lambda: {"alignment": 0.2}, settings=[["--init-from", "b"]])
