"""The benchmarks' shared statistics and cache (``benchmarks._common``): one interval and verdict for every claims
benchmark, one way to keep finished work between runs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from benchmarks import _common as bc


def test_normal_interval_is_the_mean_plus_or_minus_two_standard_errors():
    values = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0])
    iv = bc.interval(values)
    half = 1.96 * values.std(ddof=1) / math.sqrt(len(values))
    assert iv.method == "normal" and iv.n == 8
    assert iv.value == pytest.approx(0.625) and iv.half_width == pytest.approx(half)
    assert bc.interval([3.0]).half_width != bc.interval([3.0]).half_width  # one example: undefined (NaN)


def test_t_interval_over_a_few_seeds_is_wider_than_the_normal_one():
    values = np.array([-0.0065, 0.0154, 0.0406, 0.0235, 0.0213])  # one figure per training seed
    iv = bc.interval(values, method="t")
    assert iv.method == "t" and iv.n == 5 and iv.value == pytest.approx(values.mean())
    # Student's t with 4 degrees of freedom: 2.776 standard errors, not 1.96
    assert iv.half_width == pytest.approx(2.7764 * values.std(ddof=1) / math.sqrt(5), rel=1e-4)
    assert iv.half_width > bc.interval(values).half_width and iv.verdict == "inconclusive"


def test_paired_difference_gives_each_verdict():
    rng = np.random.default_rng(0)
    base = rng.random(400)
    better = base + 0.1 + 0.01 * rng.standard_normal(400)
    same = base + 0.05 * rng.standard_normal(400)
    assert bc.paired_difference(better, base).verdict == "holds"
    assert bc.paired_difference(base, better).verdict == "fails"
    assert bc.paired_difference(same, base).verdict == "inconclusive"
    draws = bc.bootstrap_draws(400, 300, seed=1)
    assert bc.paired_difference(better, base, method="bootstrap", draws=draws).verdict == "holds"
    assert bc.paired_difference(same, base, method="bootstrap", draws=draws).verdict == "inconclusive"
    with pytest.raises(ValueError, match="pair them first"):
        bc.paired_difference(base, base[:10])
    # pairing is what separates them: the same shift is within noise for two rows scored apart
    noisy = rng.random(400)
    shifted = noisy + 0.02
    assert bc.paired_difference(shifted, noisy).verdict == "holds"
    assert not bc.interval(shifted).separated_above(bc.interval(noisy))


def test_bootstrap_interval_resamples_the_same_examples_for_every_row():
    values = np.arange(10, dtype=float)
    draws = bc.bootstrap_draws(10, 500, seed=0)
    iv = bc.interval(values, method="bootstrap", draws=draws)
    assert iv.low < iv.value == 4.5 < iv.high and iv.method == "bootstrap"
    # a statistic of several arrays: resamples where it is undefined are left out, not NaN bounds
    labels = np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
    found = bc.bootstrap_intervals(
        {"label": labels, "score": values},
        lambda label, score: {
            "mean": score.mean(),
            "top_is_positive": float(label[score.argmax()]) if label.any() else np.nan,
        },
        draws,
    )
    assert set(found) == {"mean", "top_is_positive"} and np.isfinite(found["top_is_positive"].low)
    assert found["mean"].low == pytest.approx(iv.low) and found["mean"].high == pytest.approx(iv.high)
    with pytest.raises(ValueError, match="draws are over 10 examples"):
        bc.interval(np.ones(5), method="bootstrap", draws=draws)


def test_proportions_difference_of_two_unpaired_rates():
    iv = bc.proportions_difference(50.0, 40.0, 100)  # percentages
    assert iv.value == pytest.approx(10.0)
    assert iv.half_width == pytest.approx(100 * 1.96 * math.sqrt((0.25 + 0.24) / 100))
    assert iv.verdict == "inconclusive"  # +10 points on 100 examples each is within noise
    assert bc.proportions_difference(50.0, 40.0, 2000).verdict == "holds"


def test_finished_work_is_reused_by_the_next_call(tmp_path):
    calls = []

    def compute(x):
        calls.append(x)
        return {"value": x}

    path = tmp_path / "a" / "figure.json"
    assert bc.cached_json(path, compute, 3) == {"value": 3}
    assert bc.cached_json(path, compute, 4) == {"value": 3} and calls == [3]  # read back, not recomputed
    arrays = tmp_path / "b" / "values.npz"
    first = bc.cached_arrays(arrays, lambda n: {"rank": np.arange(n, dtype=float)}, 3)
    again = bc.cached_arrays(arrays, lambda n: {"rank": np.zeros(n)}, 5)
    assert again["rank"].tolist() == first["rank"].tolist() == [0.0, 1.0, 2.0]
    assert sorted(p.name for p in arrays.parent.iterdir()) == ["values.npz"]  # no temporary file left
    made = []
    bc.made_once(tmp_path / "c", ["--steps", "2"], lambda: (tmp_path / "c").mkdir() or made.append(1))
    bc.made_once(tmp_path / "c", ["--steps", "2"], lambda: made.append(2))
    assert made == [1]


def test_kept_work_is_not_reused_under_other_settings(tmp_path):
    path = tmp_path / "ft" / "test_predictions.npz"
    flags = ["--max-steps", "600"]
    bc.cached_arrays(path, lambda: {"rank": np.ones(2)}, settings=flags)
    again = bc.cached_arrays(path, lambda: {"rank": np.zeros(2)}, settings=list(flags))
    assert again["rank"].tolist() == [1.0, 1.0]  # same settings: read back
    with pytest.raises(bc.SettingsMismatch, match="other settings(.|\n)*start it over"):
        bc.cached_arrays(path, lambda: {"rank": np.zeros(2)}, settings=["--max-steps", "100"])
    # work kept before settings were recorded is adopted with the current ones, then held to them
    path.with_name(path.name + ".settings.json").unlink()
    bc.cached_arrays(path, lambda: {"rank": np.zeros(2)}, settings=["--max-steps", "100"])
    with pytest.raises(SystemExit):
        bc.cached_arrays(path, lambda: {"rank": np.zeros(2)}, settings=flags)
    figure = tmp_path / "alignment.json"
    bc.cached_json(figure, lambda: {"alignment": 0.1}, settings=[["--init-from", "a"]])
    with pytest.raises(SystemExit):
        bc.cached_json(figure, lambda: {"alignment": 0.2}, settings=[["--init-from", "b"]])
    assert not bc.kept(tmp_path / "never_made", {"a": 1})


def test_claims_benchmarks_use_the_shared_verdict():
    import importlib

    ceres = importlib.import_module("benchmarks.ceres_claims")
    muvcog = importlib.import_module("benchmarks.muvcog_claims")
    ahead = {"MAP@1": 30.0, "MAP@64": 50.0, "num_eval": 2000}
    behind = {"MAP@1": 20.0, "MAP@64": 40.0, "num_eval": 2000}
    assert ceres.verdict(ahead, behind) == "holds" and ceres.verdict(behind, ahead) == "fails"
    # ahead on MAP@1 beyond noise but not on MAP@64: not a win
    assert ceres.verdict({**ahead, "MAP@64": 40.0}, behind) == "inconclusive"
    assert ceres.VERDICTS == bc.VERDICTS
    row = muvcog.verdict(np.full(50, 0.6) + np.linspace(0, 0.01, 50), np.full(50, 0.5), "A > B")
    assert (
        row["verdict"] == "holds" and row["n"] == 50 and row["difference"] == pytest.approx(0.105, abs=1e-3)
    )


def test_claims_over_seeds_take_one_value_per_seed_and_refuse_mixed_settings(tmp_path):
    from benchmarks import muvcog_claims_seeds

    def result(seed, differences, **settings):
        claims = [{"claim": f"claim {i}", "difference": d} for i, d in enumerate(differences)]
        figures = {"settings": {"num_sessions": 100, "seed": seed, "name": f"x_seed{seed}", **settings}}
        (tmp_path / f"x_seed{seed}.json").write_text(json.dumps({"figures": {**figures, "claims": claims}}))

    for seed, (a, b) in enumerate([(0.02, 0.01), (0.03, -0.02), (0.025, 0.015)]):
        result(seed, [a, b])
    out = muvcog_claims_seeds.main(
        ["--results-dir", str(tmp_path), "--pattern", "x_seed*.json", "--no-write"]
    )
    assert out["seeds"] == [0, 1, 2]
    first, second = out["claims"]["claim 0"], out["claims"]["claim 1"]
    assert first["mean"] == pytest.approx(0.025) and first["seeds"] == 3 and first["verdict"] == "holds"
    assert second["verdict"] == "inconclusive" and second["per_seed"] == {"0": 0.01, "1": -0.02, "2": 0.015}
    result(3, [0.02, 0.01], head_steps=7)  # another setting: not the same experiment
    with pytest.raises(SystemExit, match="differ"):
        muvcog_claims_seeds.main(["--results-dir", str(tmp_path), "--pattern", "x_seed*.json", "--no-write"])
