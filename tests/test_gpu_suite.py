"""The prepared GPU suite runs every part at toy size on the CPU (``--dry-run``), so that the one short GPU session
a task may get is not spent finding bugs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _suite():
    return importlib.import_module("benchmarks.gpu_suite")


def test_gpu_suite_dry_run_runs_every_part(tmp_path):
    results, runs = tmp_path / "results", tmp_path / "runs"
    figures = _suite().main(
        [
            "--dry-run",
            "--results-dir",
            str(results),
            "--run-dir",
            str(runs),
            "--limits",
            "300",
            "300",
            "300",
            "300",
        ]
    )
    parts = figures["parts"]
    assert set(parts) == {
        "tagnn_pp_speed_gpu",
        "tagnn_pp_speed_gpu_compile",
        "ceres_speed_cuda",
        "ubm_speed_cuda",
        "tagnn_pp_diginetica_gpu",
    }
    for name, outcome in parts.items():
        assert outcome["status"] == "ok", (name, outcome.get("log_tail"))
        assert "missing_result" not in outcome["figures"], (name, outcome["figures"])
    speed = parts["tagnn_pp_speed_gpu"]["figures"]
    assert speed["best_samples_per_s"] > 0 and speed["eval_seconds"] > 0
    assert set(speed["data_wait_share"]) == {
        "train batch 8 (random batches)",
        "train batch 8 (length-grouped)",
    }
    assert parts["ceres_speed_cuda"]["figures"]["ceres_over_bert_small"] > 0
    ubm = parts["ubm_speed_cuda"]["figures"]
    assert ubm["stage1_ubm_over_bert"] > 0 and ubm["stage2_sessions_per_s"] > 0
    assert "peak_rss_mib" in ubm["stage2_peak_memory"]  # the dry run's batch fits
    assert ubm["stage2_peak_memory_activation_checkpointing"]["activation checkpointing"] is True
    assert 0 <= parts["tagnn_pp_diginetica_gpu"]["figures"]["test"]["HR@20"] <= 100
    summary = json.loads((results / "gpu_suite.json").read_text())
    assert summary["figures"]["dry_run"] is True
    # A dry run never touches the committed results.
    assert not (ROOT / "benchmarks" / "results" / "gpu_suite.json").exists()


def test_gpu_suite_records_a_failing_part_and_goes_on(tmp_path, monkeypatch):
    suite = _suite()
    monkeypatch.setattr(suite, "MIN_PART_S", 1.0)
    part = suite.Part(
        "broken", [suite._python(), "-c", "import sys; print('boom'); sys.exit(3)"], 60.0, "none"
    )
    outcome = suite.run_part(part, tmp_path, tmp_path, tmp_path)
    assert outcome["status"] == "failed (exit 3)" and "boom" in outcome["log_tail"]
    slow = suite.Part("slow", [suite._python(), "-c", "import time; time.sleep(60)"], 2.0)
    assert suite.run_part(slow, tmp_path, tmp_path, tmp_path)["status"] == "timeout"
    assert (
        suite.run_part(suite.Part("late", ["true"], 0.5), tmp_path, tmp_path, tmp_path)["status"] == "skipped"
    )
