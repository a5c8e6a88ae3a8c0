"""The main job (trainers/quickstart.py) at toy size, for every family whose recipe has a quickstart."""

import json
import sys
from pathlib import Path

import pytest

from launch import run_script
from session_transformers.recipes import RECIPES
from session_transformers.trainer_utils import QuickstartJob

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "trainers"))
import quickstart

FAMILIES = [name for name, recipe in RECIPES.items() if recipe.quickstart is not None]


def test_every_quickstart_job_is_well_formed():
    assert {"tagnn_pp", "ceres"} <= set(FAMILIES)
    for name in FAMILIES:
        recipe = RECIPES[name]
        job = recipe.quickstart
        assert isinstance(job, QuickstartJob)
        assert job.finetune_task in recipe.finetune, name
        assert len(job.pretrain_stages) == len(recipe.pretraining_stages()), name
        assert job.metrics, name
        assert recipe.finetune[job.finetune_task].baseline is not None, f"{name}: its task has no baseline"


def test_flags_full_and_tiny():
    job = QuickstartJob(
        pretrain_stages=(("--max-steps", "10"),),
        finetune_task="t",
        finetune_args=("--max-steps", "5"),
        metrics=("m",),
        full_pretrain_stages=(("--max-steps", "100"),),
    )
    assert quickstart._flags(job, full=False, tiny=False) == ([["--max-steps", "10"]], ["--max-steps", "5"])
    stages, finetune = quickstart._flags(job, full=True, tiny=False)
    assert stages == [["--max-steps", "100"]] and finetune == ["--max-steps", "5"]  # no full_finetune_args
    stages, finetune = quickstart._flags(job, full=False, tiny=True)
    assert stages[0][-len(quickstart.TINY_FLAGS) :] == list(quickstart.TINY_FLAGS)  # later flags win
    assert finetune[:2] == ["--max-steps", "5"] and finetune[-2:] == list(quickstart.TINY_FLAGS[-2:])


def test_summary_table_puts_each_metric_against_its_baselines():
    results = {
        "toy": {
            "task": "next_item",
            "split": "test",
            "metrics": {"HR@20": 80.0, "MRR@20": 30.0},
            "baselines": {"popularity": {"HR@20": 10.0, "MRR@20": 3.0}, "last item": {"HR@20": 70.0}},
        }
    }
    table = quickstart.summary_table(results).splitlines()
    assert table[0].split()[:4] == ["model", "task", "metric", "model"]
    hr = next(line for line in table if "HR@20" in line)
    assert "80.00" in hr and "70.00" in hr and "+10.00" in hr and "popularity 10.00" in hr
    mrr = next(line for line in table if "MRR@20" in line)
    assert "+27.00" in mrr and "last item" not in mrr  # no last-item figure for MRR@20


def test_main_job_tiny_every_family(tmp_path, capsys):
    """The whole job at toy size, in this process: every family pretrains (every stage), reloads, fine-tunes, and
    the summary table lists its metrics against its baselines."""
    summary = quickstart.main(["--tiny", "--no-launch", "--threads", "1", "--output-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert set(summary["results"]) == set(FAMILIES)
    for name in FAMILIES:
        job = RECIPES[name].quickstart
        res = summary["results"][name]
        assert set(res["metrics"]) == set(job.metrics)
        assert res["baselines"], f"{name}: no baseline in its eval_results.json"
        assert (tmp_path / name / "finetune" / "eval_results.json").exists()
        stage_dirs = (
            ["pretrain"]
            if len(job.pretrain_stages) == 1
            else [f"pretrain-stage{i}" for i in range(1, len(job.pretrain_stages) + 1)]
        )
        for d in stage_dirs:
            assert (tmp_path / name / d / "model.safetensors").exists()
        assert f"== {name}: reload with the Auto classes" in out
    assert "held-out synthetic sessions" in out and "best baseline" in out
    assert json.loads((tmp_path / "summary.json").read_text())["results"].keys() == set(FAMILIES)


@pytest.mark.slow
def test_main_job_tiny_through_accelerate_launch(tmp_path):
    """The README's command at toy size, in a subprocess, pretraining through ``accelerate launch``."""
    res = run_script(
        [
            sys.executable,
            "trainers/quickstart.py",
            "--tiny",
            "--models",
            "tagnn_pp",
            "--output-dir",
            str(tmp_path),
        ]
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "time per step" in res.stdout and "tagnn_pp" in res.stdout
    assert (tmp_path / "tagnn_pp" / "pretrain" / "model.safetensors").exists()


def test_help_lists_the_families(capsys):
    with pytest.raises(SystemExit) as exit_info:
        quickstart.parse_args(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--full" in out and "--tiny" in out
    assert all(name in out for name in FAMILIES)
