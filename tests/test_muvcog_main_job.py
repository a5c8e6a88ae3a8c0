"""benchmarks/muvcog_main_job.py on a toy main job: the MUVCOG row's paired intervals against its baselines."""

import sys
from pathlib import Path

from accelerate.state import AcceleratorState
from benchmarks import muvcog_main_job
from benchmarks._common import VERDICTS

from session_transformers.models.muvcog.tasks import COPY_SCALES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "trainers"))
import quickstart


def test_scores_the_main_jobs_model_and_baselines_on_the_same_examples(tmp_path):
    quickstart.main(
        ["--tiny", "--no-launch", "--threads", "1", "--models", "muvcog", "--output-dir", str(tmp_path)]
    )
    AcceleratorState._reset_state(reset_partial_state=True)
    # it stops if its recomputed means differ from what the fine-tuning trainer wrote: the same model and split
    figures = muvcog_main_job.main(
        ["--run", str(tmp_path / "muvcog" / "finetune"), "--no-write", "--resamples", "200"]
    )
    n = figures["test_examples"]
    assert n >= 1 and figures["copy_scale"] in COPY_SCALES
    test, diffs = figures["test"], figures["MUVCOG minus baseline (paired)"]
    assert set(diffs) == {"previous query", "session words"} and set(test) == {"MUVCOG", *diffs}
    for name, by_metric in diffs.items():
        for metric, d in by_metric.items():
            assert d["n"] == n and d["verdict"] in VERDICTS and d["low"] <= d["value"] <= d["high"]
            assert abs(d["value"] - (test["MUVCOG"][metric]["value"] - test[name][metric]["value"])) < 1e-9
