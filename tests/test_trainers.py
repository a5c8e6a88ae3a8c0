"""The trainers, launched for real: two CPU processes through accelerate, exact resume after a kill, Trainer."""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from launch import ROOT, run_script

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
    assert metrics["optimizer_steps"] == 4 and 0 <= metrics["test"]["HR@20"] <= 100
    assert (out / "model.safetensors").exists() and (out / "processor_config.json").exists()


def _kill_when_logged(cmd: list[str], log: Path, at_step: int) -> int:
    """Start ``cmd``, SIGKILL it once ``log`` (metrics.jsonl) records ``at_step``; return the exit code."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if log.exists() and any(json.loads(x)["step"] >= at_step for x in log.read_text().splitlines() if x):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    return proc.wait(timeout=60)


@pytest.mark.parametrize("group_by_length", ["false", "true"])
def test_kill_and_resume_matches_uninterrupted_run(tmp_path, group_by_length):
    # the linear schedule changes the lr at every step, so a resumed step counter that is off shows in the weights
    common = [
        sys.executable,
        "trainers/pretrain.py",
        *TINY,
        "--max-steps",
        "60",
        "--checkpointing-steps",
        "4",
        "--eval-steps",
        "1000",
        "--lr-scheduler-type",
        "linear",
        "--warmup-ratio",
        "0.3",
        "--learning-rate",
        "1e-3",
        "--group-by-length",
        group_by_length,
    ]
    full = run_script([*common, "--output-dir", str(tmp_path / "full")])
    assert full.returncode == 0, full.stderr[-3000:]
    resumed_dir = tmp_path / "resumed"
    code = _kill_when_logged([*common, "--output-dir", str(resumed_dir)], resumed_dir / "metrics.jsonl", 10)
    assert code == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (resumed_dir / "model.safetensors").exists()  # the kill left no final model
    resumed = run_script([*common, "--output-dir", str(resumed_dir), "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout
    a, b = _weights(tmp_path / "full"), _weights(resumed_dir)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=0, rtol=0, msg=f"{k} differs after resume")
    # every optimiser step is logged once, in order, even though the resumed run replayed some
    steps = [json.loads(x)["step"] for x in (resumed_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 61))
    full_log = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    res_log = [json.loads(x) for x in (resumed_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in full_log] == pytest.approx([r["loss"] for r in res_log], abs=0)


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
            "--group-by-length",  # Trainer's own length grouping on the recipe's lengths
            "true",
            "--init-from",
            str(tmp_path / "pre"),
            "--max-steps",
            "4",
            "--use-cpu",
            "--output-dir",
            str(tmp_path / "ft"),
            "--eval-steps",
            "2",
        ]
    )
    assert ft.returncode == 0, ft.stderr[-3000:]
    metrics = json.loads((tmp_path / "ft" / "eval_results.json").read_text())
    assert {"validation_HR@20", "validation_MRR@20", "validation_loss"} <= metrics["validation"].keys()
    assert {"test_HR@20", "test_MRR@20"} <= metrics["test"].keys()
    assert (tmp_path / "ft" / "checkpoint-4" / "processor_config.json").exists()


def _lrs(steps: int, steps_per_epoch: int, **flags) -> list[float]:
    from session_transformers.protocol import build_optimizer, build_scheduler

    defaults = dict(
        optimizer="adam",
        momentum=0.9,
        adam_betas=(0.9, 0.999),
        weight_decay=0.0,
        min_learning_rate=0.0,
        warmup_ratio=0.0,
        lr_decay_epochs=3.0,
        lr_decay_rate=0.1,
    )
    args = argparse.Namespace(**{**defaults, **flags})
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(1))], args)
    sched = build_scheduler(opt, args, steps, steps_per_epoch)
    out = []
    for _ in range(steps):
        out.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return out


def test_linear_schedule_warms_up_then_decays_to_the_minimum():
    lrs = _lrs(
        100, 7, lr_scheduler_type="linear", learning_rate=1e-3, warmup_ratio=0.1, min_learning_rate=1e-4
    )
    assert lrs[:10] == pytest.approx([1e-3 * i / 10 for i in range(10)])  # transformers' warm-up starts at 0
    assert lrs[10] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-4 + 9e-4 / 90)
    assert all(a > b for a, b in zip(lrs[10:], lrs[11:]))


def test_step_schedule_decays_every_few_epochs():
    lrs = _lrs(40, 5, lr_scheduler_type="step", learning_rate=1e-3, lr_decay_epochs=3.0, lr_decay_rate=0.1)
    assert lrs[:15] == pytest.approx([1e-3] * 15) and lrs[15:30] == pytest.approx([1e-4] * 15)
    assert lrs[30:] == pytest.approx([1e-5] * 10)


def test_protocol_defaults_come_from_the_recipe():
    from session_transformers.recipes import RECIPES

    res = run_script([sys.executable, "trainers/pretrain.py", "--model", "tagnn_pp", "--help"])
    assert res.returncode == 0
    p = RECIPES["tagnn_pp"].protocol
    assert p.learning_rate == 1e-4 and p.weight_decay == 1e-6 and p.batch_size == 50 and p.num_epochs == 15
    assert p.lr_scheduler_type == "step" and p.lr_decay_epochs == 3 and p.lr_decay_rate == 0.1
    assert (
        "(default: 0.0001)" in res.stdout and "(default: step)" in res.stdout and "--top-items" in res.stdout
    )
    res = run_script([sys.executable, "trainers/pretrain.py", "--model", "ceres", "--help"])
    assert "--top-items" not in res.stdout  # a recipe's own flags stay with it


def test_protocol_flags_are_the_dataclass_fields():
    """Every field of ProtocolArguments is a flag (HfArgumentParser builds them), defaulting to the recipe's
    protocol; ``none`` switches off the optional ones and a bad true/false value is refused."""
    import dataclasses

    from session_transformers.protocol import ProtocolArguments, protocol_from_args
    from session_transformers.recipes import RECIPES, training_parser

    parser, recipe, _ = training_parser("test", ["--model", "tagnn_pp"])
    flags = {o for a in parser._actions for o in a.option_strings}
    for f in dataclasses.fields(ProtocolArguments):
        assert f"--{f.name.replace('_', '-')}" in flags and f"--{f.name}" in flags, f.name
    args = parser.parse_args(["--model", "tagnn_pp"])
    assert protocol_from_args(args) == recipe.protocol.replace(source="")  # every value, adam_betas included
    args = parser.parse_args(
        ["--model", "tagnn_pp", "--max-grad-norm", "5", "--select-best", "none", "--group_by_length", "yes"]
    )
    assert (args.max_grad_norm, args.select_best, args.group_by_length) == (5.0, None, True)
    args = parser.parse_args(["--model", "tagnn_pp", "--max-grad-norm", "none", "--no-greater-is-better"])
    assert args.max_grad_norm is None and args.greater_is_better is False
    with pytest.raises(SystemExit):
        parser.parse_args(["--model", "tagnn_pp", "--group-by-length", "maybe"])
    assert RECIPES["tagnn_pp"].protocol.source  # shown as the group's description
    group = next(g for g in parser._action_groups if g.title == "training protocol")
    assert group.description == f"defaults: {RECIPES['tagnn_pp'].protocol.source}"


def test_bad_flags_are_clear():
    res = run_script(
        [sys.executable, "trainers/pretrain.py", "--model", "tagnn_pp", "--dataset", "instacart"]
    )
    # the data sets a model trains on are the flag's choices (listed, with what each reads, in --help)
    assert (
        res.returncode != 0 and "invalid choice: 'instacart'" in res.stderr and "session_lines" in res.stderr
    )
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


def test_agc_callback_clips_unscaled_fp16_gradients():
    """Trainer does not unscale fp16 gradients when it does not clip norms itself: the callback must."""
    from accelerate import Accelerator

    sys.path.insert(0, str(ROOT / "trainers"))
    from finetune import AdaptiveGradientClippingCallback

    def grads(scale: float | None):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 3))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        acc = Accelerator(cpu=True, mixed_precision="fp16")
        model, opt = acc.prepare(model, opt)
        cb = AdaptiveGradientClippingCallback(clip_factor=0.01, eps=1e-3)
        loss = 1e-5 * model(torch.randn(16, 4)).pow(2).mean()  # small: most units under the threshold
        if scale is None:
            loss.backward()
        else:  # what a CUDA fp16 run hands the callback: loss-scaled gradients and a scaler that knows it
            acc.scaler = torch.amp.GradScaler("cpu", init_scale=scale)
            acc.native_amp = True
            acc.scaler.scale(loss).backward()
        cb.accelerator = acc
        cb.on_pre_optimizer_step(None, None, None, model=model)
        return [p.grad.clone() for p in model.parameters()]

    plain, scaled = grads(None), grads(2.0**12)
    for a, b in zip(plain, scaled):
        torch.testing.assert_close(a, b)  # the same clipped gradients, whatever the loss scale


def test_agc_is_refused_under_fsdp():
    from accelerate.utils import DistributedType

    from session_transformers.optim import check_agc_supported

    with pytest.raises(ValueError, match="FSDP shards them"):
        check_agc_supported(DistributedType.FSDP)
    for ok in (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU):
        check_agc_supported(ok)


def test_logged_loss_is_the_optimizer_steps_loss_over_micro_batches(tmp_path):
    """Batch 8 in one micro-batch and batch 4 x 2 accumulated log the same first-step loss (no dropout)."""
    common = [sys.executable, "trainers/pretrain.py", *TINY, "--max-steps", "1", "--select-best", "none"]
    common += ["--config", "hidden_dropout_prob=0", "attention_probs_dropout_prob=0"]
    # TINY's --config comes first: the second --config replaces it, so repeat its fields
    common += ["hidden_size=16", "num_attention_heads=2", "score_chunk_size=64"]
    one = run_script([*common, "--batch-size", "8", "--output-dir", str(tmp_path / "one")])
    two = run_script(
        [
            *common,
            "--batch-size",
            "4",
            "--gradient-accumulation-steps",
            "2",
            "--output-dir",
            str(tmp_path / "acc"),
        ]
    )
    assert one.returncode == 0 and two.returncode == 0, (one.stderr + two.stderr)[-3000:]
    a, b = (json.loads((tmp_path / d / "metrics.jsonl").read_text().splitlines()[0]) for d in ("one", "acc"))
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)


def test_finetune_trainer_uses_the_recipes_optimizer_and_schedule(tmp_path):
    """Trainer would default to AdamW + linear decay + max_grad_norm 1; finetune.py hands it the protocol's."""
    from datasets import Dataset
    from transformers import TrainingArguments

    sys.path.insert(0, str(ROOT / "trainers"))
    from finetune import RecipeTrainer
    from session_transformers.recipes import RECIPES, training_parser

    parser, recipe, _ = training_parser("test", ["--model", "tagnn_pp"], with_task=True)
    args = parser.parse_args(["--model", "tagnn_pp"])
    model = torch.nn.Linear(2, 2)
    train = Dataset.from_dict({"x": [[0.0, 1.0]] * 20})
    trainer = RecipeTrainer(
        model=model,
        args=TrainingArguments(
            output_dir=str(tmp_path),
            per_device_train_batch_size=5,
            use_cpu=True,
            report_to="none",
            remove_unused_columns=False,
        ),
        train_dataset=train,
        protocol_args=args,
    )
    trainer.create_optimizer_and_scheduler(num_training_steps=40)
    opt, sched = trainer.optimizer, trainer.lr_scheduler
    assert (
        type(opt) is torch.optim.Adam
        and opt.defaults["weight_decay"] == RECIPES["tagnn_pp"].protocol.weight_decay
    )
    assert isinstance(sched, torch.optim.lr_scheduler.LambdaLR)
    lrs = []
    for _ in range(16):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    # 4 batches an epoch, x0.1 every 3 epochs: 12 steps at 1e-4, then 1e-5
    assert lrs[:12] == pytest.approx([1e-4] * 12) and lrs[12:] == pytest.approx([1e-5] * 4)


def test_length_grouped_batches_are_reproducible_per_epoch_and_nearly_unpadded():
    from session_transformers.trainer_utils import LengthGroupedEpochSampler

    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 40, (5000,), generator=g).tolist()
    sampler = LengthGroupedEpochSampler(50, lengths, seed=7)
    first, again = list(sampler), list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert first == again and first != second  # a function of (seed, epoch)
    assert sorted(first) == sorted(second) == list(range(5000))  # every example once per epoch

    def padding(order):
        batches = [[lengths[i] for i in order[j : j + 50]] for j in range(0, len(order), 50)]
        return sum(max(b) * len(b) - sum(b) for b in batches) / sum(lengths)

    shuffled = torch.randperm(5000, generator=g).tolist()
    assert padding(first) < 0.05 < 0.5 < padding(shuffled)  # padded positions per real position


def test_evaluation_runs_longest_first_and_ranks_every_case_as_in_dataset_order(tmp_path):
    """TAGNN++'s recipe gives ``example_lengths``: both trainers evaluate a split longest example first, so that a
    batch is padded to about its own length, and every case gets the rank it gets in dataset order."""
    from session_transformers.trainer_utils import LengthOrderedSampler

    sys.path.insert(0, str(ROOT / "trainers"))
    import finetune
    import pretrain

    args, recipe = pretrain.parse_args([*TINY, "--output-dir", str(tmp_path)])
    task = recipe.pretrain
    data = task.prepare(args)
    test = data.test_dataset
    lengths = data.example_lengths(test)
    assert len(lengths) == len(test) > 50 and len(set(lengths)) > 3

    _, eval_dl, test_dl = pretrain.get_dataloaders(args, data)
    order = list(test_dl.sampler)
    assert isinstance(eval_dl.sampler, LengthOrderedSampler) and sorted(order) == list(range(len(test)))
    assert all(lengths[a] >= lengths[b] for a, b in zip(order, order[1:]))  # longest first
    ties = [i for i in order if lengths[i] == lengths[order[-1]]]
    assert ties == sorted(ties)  # equal lengths keep the dataset's order

    trainer = finetune.RecipeTrainer(
        model=torch.nn.Linear(1, 1),
        args=finetune.TrainingArguments(output_dir=str(tmp_path / "ft"), use_cpu=True, report_to="none"),
        protocol_args=args,
        example_lengths=data.example_lengths,
    )
    assert list(trainer._get_eval_sampler(test)) == order

    def padded(indices):  # positions in the batches of 16, padding included
        return sum(16 * max(lengths[i] for i in indices[j : j + 16]) for j in range(0, len(indices), 16))

    in_order = list(range(len(test)))
    assert padded(order) < 0.8 * padded(in_order)

    torch.manual_seed(0)
    model = task.auto_class.from_config(data.config).eval()

    def ranks(indices):
        with torch.no_grad():
            return torch.cat(
                [
                    task.eval_step(model, data.collate_fn([test[i] for i in indices[j : j + 16]]))["rank"]
                    for j in range(0, len(indices), 16)
                ]
            )

    by_dataset, by_length = ranks(in_order), ranks(order)
    assert torch.equal(by_dataset[order], by_length)
    # the same ranks; only the float32 sum behind MRR runs in another order
    assert task.summarize({"rank": by_length}) == pytest.approx(
        task.summarize({"rank": by_dataset}), rel=1e-6
    )


def test_no_validation_split_never_evaluates_or_selects_on_the_test_split(tmp_path):
    """``--validation-fraction 0``: no periodic evaluation, no selection, the last weights, the test split scored
    once and labelled test; an explicit ``--select-best`` is refused before training (both trainers)."""
    flags = [*TINY, "--validation-fraction", "0", "--max-steps", "4"]
    pre = run_script(
        [
            sys.executable,
            "trainers/pretrain.py",
            *flags,
            "--eval-steps",
            "2",
            "--output-dir",
            str(tmp_path / "pre"),
        ]
    )
    assert pre.returncode == 0, pre.stderr[-3000:]
    assert "no validation split" in pre.stdout and "validation:" not in pre.stdout
    results = json.loads((tmp_path / "pre" / "eval_results.json").read_text())
    assert "validation" not in results and "selected_step" not in results and "HR@20" in results["test"]
    records = [json.loads(x) for x in (tmp_path / "pre" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert not any(
        k.startswith(("validation/", "test/")) for r in records for k in r
    )  # nothing scored in training
    assert not (tmp_path / "pre" / "best").exists()

    ft = run_script(
        [
            sys.executable,
            "trainers/finetune.py",
            *flags,
            "--task",
            "next_item",
            "--use-cpu",
            "--eval-steps",
            "2",
            "--output-dir",
            str(tmp_path / "ft"),
        ]
    )
    assert ft.returncode == 0, ft.stderr[-3000:]
    results = json.loads((tmp_path / "ft" / "eval_results.json").read_text())
    assert set(results) <= {"test", "baseline"} and "test_HR@20" in results["test"]

    for script in ("pretrain.py", "finetune.py"):
        refused = run_script(
            [
                sys.executable,
                f"trainers/{script}",
                *flags,
                "--select-best",
                "HR@20",
                "--output-dir",
                str(tmp_path / "x"),
            ]
        )
        assert refused.returncode != 0 and "no validation split" in refused.stderr, refused.stderr[-2000:]
        assert not (tmp_path / "x" / "model.safetensors").exists()


def test_both_trainers_take_mixed_precision_bf16(tmp_path):
    """``--mixed-precision bf16``: Accelerate's autocast in pretrain.py, TrainingArguments' bf16 in finetune.py (on a
    CPU too); the training record says which ran."""
    for script, extra in (("pretrain.py", []), ("finetune.py", ["--task", "next_item", "--use-cpu"])):
        out = tmp_path / script
        res = run_script(
            [sys.executable, f"trainers/{script}", *TINY, *extra, "--max-steps", "2", "--mixed-precision", "bf16",
             "--output-dir", str(out)]
        )  # fmt: skip
        assert res.returncode == 0, res.stderr[-3000:]
        record = json.loads((out / "training_record.json").read_text())
        assert "bf16" in json.dumps(record), record
