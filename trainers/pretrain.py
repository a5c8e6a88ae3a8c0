"""Train any registered session model with its own training objective, with Accelerate.

The same script runs on one CPU, several CPU processes, one GPU or many (DDP/FSDP through ``accelerate
config``). Examples::

    # one CPU process on the synthetic store (the default dataset)
    accelerate launch --cpu --num_processes 1 trainers/pretrain.py --model tagnn_pp --output-dir runs/tagnn

    # two CPU processes (gloo); note: `--cpu --num_processes 2` alone starts ONE process
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 trainers/pretrain.py --model tagnn_pp

    # one GPU, bf16, on Diginetica
    accelerate launch --mixed_precision bf16 trainers/pretrain.py --model tagnn_pp --dataset diginetica \
        --data-path ../shared/data/diginetica --config hidden_size=120 num_attention_heads=8

What it does: (1) parse flags, (2) build the ``Accelerator``, (3) let the model's recipe prepare processor,
datasets and config, (4) build data loaders, model and optimiser and ``prepare`` them once, (5) resume from
the latest checkpoint if asked, (6) train with gradient accumulation, optional adaptive gradient clipping,
checkpoints every N optimiser steps and periodic evaluation, (7) ``save_pretrained`` model and processor and
write the final metrics.

Resume is exact: the sampler is seedable and re-seeded per epoch, the partial epoch is skipped batch by batch,
checkpoints are taken only at optimiser-step boundaries, and the learning rate is a pure function of the
optimiser-step counter, which is saved with the checkpoint.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

import session_transformers  # noqa: F401  (registers the models with the Auto classes)
from session_transformers.optim import adaptive_clip_grad_
from session_transformers.recipes import RECIPES, add_data_arguments, resolve_data_arguments


class TrainingProgress:
    """Counters saved with every checkpoint (registered with ``accelerator.register_for_checkpointing``)."""

    def __init__(self):
        self.optimizer_steps = 0
        self.epoch = 0
        self.batches_in_epoch = 0
        self.samples_seen = 0

    def state_dict(self) -> dict:
        return dict(self.__dict__)

    def load_state_dict(self, state: dict) -> None:
        self.__dict__.update(state)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, choices=sorted(RECIPES), help="model_type to train")
    add_data_arguments(p)
    p.add_argument("--init-from", default=None, help="start from a saved checkpoint instead of from scratch")
    p.add_argument("--output-dir", default="runs/pretrain")
    p.add_argument("--batch-size", type=int, default=50, help="per-process batch size")
    p.add_argument("--eval-batch-size", type=int, default=None)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=1e-6, help="L2 penalty (Adam weight_decay)")
    p.add_argument("--lr-decay-epochs", type=float, default=3.0, help="decay the lr every this many epochs")
    p.add_argument("--lr-decay-rate", type=float, default=0.1)
    p.add_argument(
        "--lr-scheduler-type",
        choices=("step", "linear"),
        default="step",
        help=(
            "step: multiply by --lr-decay-rate every --lr-decay-epochs (TAGNN++); linear: warm up over "
            "--warmup-ratio of the steps, then decay linearly to --min-learning-rate (CERES)"
        ),
    )
    p.add_argument("--warmup-ratio", type=float, default=0.0, help="linear schedule: warm-up share of steps")
    p.add_argument("--min-learning-rate", type=float, default=0.0, help="linear schedule: final lr")
    p.add_argument("--num-epochs", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimiser steps")
    p.add_argument("--gradient-accumulation-steps", type=int, default=1)
    p.add_argument("--checkpointing-steps", type=int, default=None, help="save a checkpoint every N steps")
    p.add_argument("--checkpoints-total-limit", type=int, default=3)
    p.add_argument("--resume", action="store_true", help="resume from the latest checkpoint in --output-dir")
    p.add_argument("--eval-steps", type=int, default=None, help="evaluate every N optimiser steps")
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--report-to", default=None, help="an accelerate tracker (tensorboard, wandb, ...)")
    p.add_argument("--stop-after-steps", type=int, default=None, help=argparse.SUPPRESS)  # simulates a kill
    return resolve_data_arguments(p, p.parse_args(argv))


def get_dataloaders(args, data, accelerator: Accelerator):
    """Train loader (shuffled by a seedable sampler) and eval loader; ``prepare`` shards both per process."""
    g = torch.Generator().manual_seed(
        args.seed
    )  # own generator: the loader must not draw from the global RNG
    train = DataLoader(
        data.train_dataset,
        batch_size=args.batch_size,
        shuffle=True,
        collate_fn=data.collate_fn,
        num_workers=args.num_workers,
        generator=g,
        drop_last=False,
    )
    evaluation = DataLoader(
        data.eval_dataset,
        batch_size=args.eval_batch_size or 4 * args.batch_size,
        shuffle=False,
        collate_fn=data.collate_fn,
        num_workers=args.num_workers,
    )
    return train, evaluation


@torch.no_grad()
def evaluate(model, dataloader, accelerator: Accelerator, task) -> dict[str, float]:
    """Run the task's eval step on every batch, gather per-example tensors across processes, summarise."""
    model.eval()
    gathered: dict[str, list[torch.Tensor]] = {}
    for batch in dataloader:
        out = task.eval_step(model, dict(batch))
        for k, v in accelerator.gather_for_metrics(out).items():
            gathered.setdefault(k, []).append(v.cpu())
    model.train()
    return task.summarize({k: torch.cat(v) for k, v in gathered.items()})


def _learning_rate(args, steps: int, steps_per_epoch: int, total_steps: int) -> float:
    """The lr of optimiser step ``steps`` (0-based): a pure function of the step, so resume is exact."""
    if args.lr_scheduler_type == "linear":
        warmup = round(args.warmup_ratio * total_steps)
        if steps < warmup:
            return args.learning_rate * (steps + 1) / warmup
        left = max(0.0, 1.0 - (steps - warmup) / max(1, total_steps - warmup))
        return args.min_learning_rate + (args.learning_rate - args.min_learning_rate) * left
    decay_every = max(1, round(args.lr_decay_epochs * steps_per_epoch))
    return args.learning_rate * args.lr_decay_rate ** (steps // decay_every)


def _latest_checkpoint(ckpt_dir: Path) -> Path | None:
    found = (
        sorted(ckpt_dir.glob("step_*"), key=lambda p: int(p.name.split("_")[1])) if ckpt_dir.exists() else []
    )
    return found[-1] if found else None


def _save_checkpoint(accelerator: Accelerator, ckpt_dir: Path, step: int, limit: int) -> None:
    accelerator.save_state(str(ckpt_dir / f"step_{step}"))
    if accelerator.is_main_process:
        old = sorted(ckpt_dir.glob("step_*"), key=lambda p: int(p.name.split("_")[1]))[:-limit]
        for path in old:
            for f in sorted(path.rglob("*"), reverse=True):
                f.unlink() if f.is_file() else f.rmdir()
            path.rmdir()


def main(argv: list[str] | None = None) -> dict[str, float]:
    # 1. Flags.
    args = parse_args(argv)
    recipe = RECIPES[args.model]
    task = recipe.pretrain
    output_dir = Path(args.output_dir)
    ckpt_dir = output_dir / "checkpoints"

    # 2. Accelerator: mixed precision and the device come from `accelerate launch`.
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        log_with=args.report_to,
        project_dir=str(output_dir),
    )
    set_seed(args.seed)
    if args.report_to:
        accelerator.init_trackers(f"pretrain-{args.model}", config={k: str(v) for k, v in vars(args).items()})

    # 3. Data, processor and config from the model's recipe.
    with accelerator.main_process_first():
        data = task.prepare(args)
    accelerator.print(
        f"data: {data.description}; {len(data.train_dataset)} train / {len(data.eval_dataset)} eval"
    )

    # 4. Loaders, model, optimiser; prepare once.
    train_dl, eval_dl = get_dataloaders(args, data, accelerator)
    if args.init_from:
        model = task.auto_class.from_pretrained(args.init_from, dtype=torch.float32, **args.config_overrides)
    else:
        model = task.auto_class.from_config(data.config)
        if data.init_weights is not None:
            data.init_weights(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    model, optimizer, train_dl, eval_dl = accelerator.prepare(model, optimizer, train_dl, eval_dl)
    config = accelerator.unwrap_model(model).config
    use_agc = bool(getattr(config, "use_adaptive_gradient_clipping", False))
    progress = TrainingProgress()
    accelerator.register_for_checkpointing(progress)

    steps_per_epoch = math.ceil(len(train_dl) / args.gradient_accumulation_steps)
    total_steps = args.max_steps or math.ceil(args.num_epochs * steps_per_epoch)
    accelerator.print(
        f"model: {type(accelerator.unwrap_model(model)).__name__}, "
        f"{sum(p.numel() for p in model.parameters()):,} parameters; {total_steps} optimiser steps, "
        f"{steps_per_epoch} per epoch, {accelerator.num_processes} process(es)"
    )

    # 5. Resume.
    if args.resume and (latest := _latest_checkpoint(ckpt_dir)) is not None:
        accelerator.load_state(str(latest))
        accelerator.print(f"resumed from {latest} at step {progress.optimizer_steps}")

    # 6. Train.
    model.train()
    bar = tqdm(
        total=total_steps,
        initial=progress.optimizer_steps,
        disable=not accelerator.is_local_main_process,
        desc=f"train {args.model}",
    )
    log_path = output_dir / "metrics.jsonl"
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
    start, last_eval = time.perf_counter(), {}
    while progress.optimizer_steps < total_steps:
        train_dl.set_epoch(progress.epoch)
        batches = (
            accelerator.skip_first_batches(train_dl, progress.batches_in_epoch)
            if progress.batches_in_epoch
            else train_dl
        )
        for batch in batches:
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients and use_agc:
                    accelerator.unscale_gradients()
                    adaptive_clip_grad_(model.parameters(), config.agc_clip_factor, config.agc_eps)
                lr = _learning_rate(args, progress.optimizer_steps, steps_per_epoch, total_steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                optimizer.step()
                optimizer.zero_grad()
            progress.batches_in_epoch += 1
            progress.samples_seen += args.batch_size * accelerator.num_processes
            if not accelerator.sync_gradients:
                continue
            progress.optimizer_steps += 1
            step = progress.optimizer_steps
            bar.update(1)
            record = {"step": step, "epoch": progress.epoch, "loss": float(loss.detach()), "lr": lr}
            bar.set_postfix(loss=f"{record['loss']:.4f}")
            if args.eval_steps and step % args.eval_steps == 0:
                last_eval = evaluate(model, eval_dl, accelerator, task)
                record.update({f"eval/{k}": v for k, v in last_eval.items()})
                accelerator.print(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in last_eval.items()))
            accelerator.log(record, step=step)
            if accelerator.is_main_process:
                with open(log_path, "a") as fh:
                    fh.write(json.dumps(record) + "\n")
            if args.checkpointing_steps and step % args.checkpointing_steps == 0:
                _save_checkpoint(accelerator, ckpt_dir, step, args.checkpoints_total_limit)
            if args.stop_after_steps and step >= args.stop_after_steps:
                accelerator.wait_for_everyone()
                os._exit(137)  # a kill without any clean-up, for resume tests
            if step >= total_steps:
                break
        else:
            progress.epoch += 1
            progress.batches_in_epoch = 0
    bar.close()
    train_seconds = time.perf_counter() - start

    # 7. Final evaluation, save model and processor, write metrics.
    final = evaluate(model, eval_dl, accelerator, task)
    final.update(train_seconds=train_seconds, optimizer_steps=float(progress.optimizer_steps))
    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.save_pretrained(
        output_dir, is_main_process=accelerator.is_main_process, save_function=accelerator.save
    )
    if accelerator.is_main_process:
        data.processor.save_pretrained(output_dir)
        (output_dir / "eval_results.json").write_text(json.dumps(final, indent=2) + "\n")
    accelerator.print("final: " + ", ".join(f"{k} {v:.4f}" for k, v in final.items()))
    accelerator.log({f"final/{k}": v for k, v in final.items()}, step=progress.optimizer_steps)
    accelerator.end_training()
    return final


if __name__ == "__main__":
    main()
