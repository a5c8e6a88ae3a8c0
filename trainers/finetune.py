"""Fine-tune a session model on a downstream task with ``transformers.Trainer``.

Starts from a saved checkpoint (``--init-from``, e.g. the output of ``trainers/pretrain.py``) or from scratch,
and evaluates with the shared ranking metrics. Examples::

    python trainers/finetune.py --model tagnn_pp --task next_item --init-from runs/tagnn --output-dir runs/tagnn-ft
    torchrun --nproc_per_node 2 trainers/finetune.py --model tagnn_pp --use-cpu ...   # 2-process CPU DDP

Steps: (1) flags, (2) the task's data, processor and config (the processor is the checkpoint's when there is
one, so item IDs map the same way), (3) the model through the task's Auto class, (4) ``TrainingArguments`` and
``Trainer`` with the processor as ``processing_class`` (so checkpoints carry it), ranks as
``preprocess_logits_for_metrics`` (no full score matrix is kept) and the task's metrics as ``compute_metrics``,
(5) train (resuming from the last Trainer checkpoint with ``--resume``), evaluate, save.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

import session_transformers  # noqa: F401  (registers the models with the Auto classes)
from session_transformers.optim import adaptive_clip_grad_
from session_transformers.recipes import RECIPES, add_data_arguments, resolve_data_arguments


class AdaptiveGradientClippingCallback(TrainerCallback):
    """Applies unit-wise adaptive gradient clipping right before each optimiser step."""

    def __init__(self, clip_factor: float, eps: float):
        self.clip_factor, self.eps = clip_factor, eps

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        adaptive_clip_grad_(model.parameters(), self.clip_factor, self.eps)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, choices=sorted(RECIPES), help="model_type")
    p.add_argument("--task", default=None, help="downstream task (default: the model's first)")
    add_data_arguments(p)
    p.add_argument("--init-from", default=None, help="a saved checkpoint folder (or Hub repo) to start from")
    p.add_argument("--output-dir", default="runs/finetune")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--eval-batch-size", type=int, default=None)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=1e-6)
    p.add_argument("--lr-scheduler-type", default="linear")
    p.add_argument("--num-epochs", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=-1)
    p.add_argument("--gradient-accumulation-steps", type=int, default=1)
    p.add_argument(
        "--eval-steps", type=int, default=None, help="evaluate every N steps (default: each epoch)"
    )
    p.add_argument("--save-steps", type=int, default=500)
    p.add_argument("--logging-steps", type=int, default=50)
    p.add_argument("--resume", action="store_true", help="resume from the last checkpoint in --output-dir")
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--use-cpu", action="store_true")
    p.add_argument("--report-to", default="none")
    args = resolve_data_arguments(p, p.parse_args(argv))
    tasks = RECIPES[args.model].finetune
    args.task = args.task or next(iter(tasks))
    if args.task not in tasks:
        p.error(f"--model {args.model} has tasks {list(tasks)}, not {args.task!r}")
    if args.init_from and not args.processor_path:
        args.processor_path = args.init_from
    return args


def main(argv: list[str] | None = None) -> dict[str, float]:
    # 1. Flags.
    args = parse_args(argv)
    task = RECIPES[args.model].finetune[args.task]

    # 2. Data, processor, config.
    data = task.prepare(args)
    print(f"data: {data.description}; {len(data.train_dataset)} train / {len(data.eval_dataset)} eval")

    # 3. Model.
    if args.init_from:
        # --config overrides apply to the checkpoint's config too (e.g. an ablation switch at fine-tuning).
        model = task.auto_class.from_pretrained(args.init_from, dtype=torch.float32, **args.config_overrides)
    else:
        model = task.auto_class.from_config(data.config)
        if data.init_weights is not None:
            data.init_weights(model)

    # 4. Trainer.
    keys: list[str] = []

    def preprocess_logits_for_metrics(logits, labels):
        out = task.per_example(logits, labels)
        keys[:] = sorted(out)
        return tuple(out[k] for k in keys) if len(keys) > 1 else out[keys[0]]

    def compute_metrics(eval_pred) -> dict[str, float]:
        preds = (
            eval_pred.predictions if isinstance(eval_pred.predictions, tuple) else (eval_pred.predictions,)
        )
        return task.summarize({k: torch.as_tensor(v) for k, v in zip(keys, preds)})

    config = model.config
    use_agc = bool(getattr(config, "use_adaptive_gradient_clipping", False))
    training_args = TrainingArguments(
        output_dir=args.output_dir,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.eval_batch_size or 4 * args.batch_size,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        lr_scheduler_type=args.lr_scheduler_type,
        num_train_epochs=args.num_epochs,
        max_steps=args.max_steps,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        eval_strategy="steps" if args.eval_steps else "epoch",
        eval_steps=args.eval_steps,
        save_strategy="steps",
        save_steps=args.save_steps,
        save_total_limit=2,
        logging_steps=args.logging_steps,
        max_grad_norm=0.0 if use_agc else 1.0,
        remove_unused_columns=False,  # the collator needs the raw columns
        label_names=list(task.label_names),
        dataloader_num_workers=args.num_workers,
        report_to=args.report_to,
        seed=args.seed,
        use_cpu=args.use_cpu,
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=data.train_dataset,
        eval_dataset=data.eval_dataset,
        data_collator=data.collate_fn,
        processing_class=data.processor,
        compute_metrics=compute_metrics,
        preprocess_logits_for_metrics=preprocess_logits_for_metrics,
        callbacks=[AdaptiveGradientClippingCallback(config.agc_clip_factor, config.agc_eps)]
        if use_agc
        else None,
    )

    # 5. Train, evaluate, save.
    trainer.train(resume_from_checkpoint=True if args.resume else None)
    metrics = trainer.evaluate()
    trainer.save_model(args.output_dir)
    if trainer.is_world_process_zero():
        Path(args.output_dir, "eval_results.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print("final: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
    return metrics


if __name__ == "__main__":
    main()
