"""The trainers, launched for real: two CPU processes through accelerate, exact resume after a kill, Trainer."""

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from launch import run_script

TINY = [
    "--model",
    "tagnn_pp",
    "--store-preset",
    "tiny",
    "--num-sessions",
    "240",
    "--batch-size",
    "16",
    "--config",
    "hidden_size=16",
    "num_attention_heads=2",
    "score_chunk_size=64",
]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


def test_pretrain_two_cpu_processes(tmp_path):
    out = tmp_path / "ddp"
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    res = run_script(
        [
            accelerate,
            "launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "trainers/pretrain.py",
            *TINY,
            "--max-steps",
            "4",
            "--output-dir",
            str(out),
        ],
        ACCELERATE_USE_CPU="1",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "2 process(es)" in res.stdout, res.stdout[-2000:]
    metrics = json.loads((out / "eval_results.json").read_text())
    assert metrics["optimizer_steps"] == 4 and 0 <= metrics["HR@20"] <= 100
    assert (out / "model.safetensors").exists() and (out / "processor_config.json").exists()


def test_kill_and_resume_matches_uninterrupted_run(tmp_path):
    # the linear schedule changes the lr at every step, so a resumed step counter that is off shows in the weights
    common = [
        sys.executable,
        "trainers/pretrain.py",
        *TINY,
        "--max-steps",
        "9",
        "--checkpointing-steps",
        "3",
        "--lr-scheduler-type",
        "linear",
        "--warmup-ratio",
        "0.3",
    ]
    full = run_script([*common, "--output-dir", str(tmp_path / "full")])
    assert full.returncode == 0, full.stderr[-3000:]
    killed = run_script([*common, "--output-dir", str(tmp_path / "resumed"), "--stop-after-steps", "5"])
    assert killed.returncode == 137, killed.stderr[-3000:]
    assert not (tmp_path / "resumed" / "model.safetensors").exists()  # the kill left no final model
    resumed = run_script([*common, "--output-dir", str(tmp_path / "resumed"), "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout and "step_3" in resumed.stdout
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=0, rtol=0, msg=f"{k} differs after resume")


def test_finetune_with_trainer_from_pretrained(tmp_path):
    pre = run_script(
        [
            sys.executable,
            "trainers/pretrain.py",
            *TINY,
            "--max-steps",
            "3",
            "--output-dir",
            str(tmp_path / "pre"),
        ]
    )
    assert pre.returncode == 0, pre.stderr[-3000:]
    ft = run_script(
        [
            sys.executable,
            "trainers/finetune.py",
            *TINY,
            "--task",
            "next_item",
            "--init-from",
            str(tmp_path / "pre"),
            "--max-steps",
            "4",
            "--use-cpu",
            "--output-dir",
            str(tmp_path / "ft"),
            "--save-steps",
            "2",
        ]
    )
    assert ft.returncode == 0, ft.stderr[-3000:]
    metrics = json.loads((tmp_path / "ft" / "eval_results.json").read_text())
    assert {"eval_HR@20", "eval_MRR@20", "eval_loss"} <= metrics.keys()
    assert (tmp_path / "ft" / "checkpoint-4" / "processor_config.json").exists()


def test_linear_schedule_warms_up_then_decays_to_the_minimum():
    import argparse

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "trainers"))
    from pretrain import _learning_rate

    args = argparse.Namespace(
        lr_scheduler_type="linear", learning_rate=1e-3, warmup_ratio=0.1, min_learning_rate=1e-4
    )
    lrs = [_learning_rate(args, step, steps_per_epoch=7, total_steps=100) for step in range(100)]
    assert lrs[:10] == pytest.approx([1e-3 * (i + 1) / 10 for i in range(10)])
    assert lrs[10] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-4 + 9e-4 / 90)
    assert all(a > b for a, b in zip(lrs[10:], lrs[11:]))


def test_bad_flags_are_clear():
    res = run_script(
        [sys.executable, "trainers/pretrain.py", "--model", "tagnn_pp", "--dataset", "instacart"]
    )
    assert res.returncode != 0 and "trains on" in res.stderr
    res = run_script(
        [sys.executable, "trainers/pretrain.py", "--model", "tagnn_pp", "--config", "hidden_size"]
    )
    assert res.returncode != 0 and "KEY=VALUE" in res.stderr


@pytest.mark.parametrize("clip_factor", [0.01, 0.1])
def test_adaptive_gradient_clipping_known_answer(clip_factor):
    from session_transformers.optim import adaptive_clip_grad_

    w = torch.nn.Parameter(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))  # unit norms 5 and 0 (-> eps)
    w.grad = torch.tensor([[30.0, 40.0], [1e-6, 0.0]])
    clipped = adaptive_clip_grad_([w], clip_factor=clip_factor, eps=1e-3)
    assert clipped == 1  # the second unit's gradient is far under clip_factor * eps
    torch.testing.assert_close(w.grad[0].norm(), torch.tensor(5.0 * clip_factor))
    torch.testing.assert_close(w.grad[1], torch.tensor([1e-6, 0.0]))
    with pytest.raises(ValueError, match="clip_factor"):
        adaptive_clip_grad_([w], clip_factor=0.0)


def test_pretrain_bf16_with_gradient_accumulation(tmp_path):
    out = tmp_path / "bf16"
    res = run_script(
        [
            sys.executable,
            "trainers/pretrain.py",
            *TINY,
            "--max-steps",
            "2",
            "--gradient-accumulation-steps",
            "2",
            "--output-dir",
            str(out),
        ],
        ACCELERATE_MIXED_PRECISION="bf16",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((out / "eval_results.json").read_text())
    assert metrics["optimizer_steps"] == 2  # 4 micro-batches, 2 optimiser steps
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2]
