"""Killed runs lose nothing: SIGKILL at chosen moments (while writing a checkpoint, during evaluation, at random,
twice), then ``--resume``, gives the uninterrupted run's exact weights and test figures. The trial runner is
``benchmarks/kill_trials.py``; a fast subset runs by default, the full set under ``-m slow``."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _trials():
    return importlib.import_module("benchmarks.kill_trials")


@pytest.mark.parametrize("model", ["tagnn_pp", "ceres"])
def test_killed_while_writing_a_checkpoint_resumes_exactly(tmp_path, model):
    # CERES: its training masks are collated a batch ahead of the checkpoint and its tokenizer is fitted per
    # run, the two ways a resume went wrong before
    kt = _trials()
    duration, ref = kt.reference(model, tmp_path / "reference")
    out = kt.trial(model, "checkpoint", tmp_path / "checkpoint", random.Random(0), duration, ref)
    assert out["ok"], out
    assert out["kills"] == ["while writing a checkpoint"]


@pytest.mark.slow
def test_kill_trials_over_every_model(tmp_path):
    kt = _trials()
    result = kt.run_trials(list(kt.MODELS), list(kt.KINDS), 3, tmp_path)
    assert result["trials"] >= 20
    assert result["ok"] == result["trials"], [r for r in result["rows"] if not r["ok"]]
