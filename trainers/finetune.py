"""Fine-tune a session model on a downstream task with ``transformers.Trainer``.

Starts from a saved checkpoint (``--init-from``, e.g. the output of ``trainers/pretrain.py``) or from scratch.
The optimiser, schedule, batch size, epochs and clipping are the task's protocol from the model's recipe, built by
the same functions ``trainers/pretrain.py`` uses (``--model X --task T --help`` shows them), so one task trains
the same way in both scripts. Examples::

    python trainers/finetune.py --model tagnn_pp --task next_item --init-from runs/tagnn --output-dir runs/tagnn-ft
    torchrun --nproc_per_node 2 trainers/finetune.py --model tagnn_pp --use-cpu ...   # 2-process CPU DDP

Steps: (1) flags, (2) the task's data (train / validation / test), processor and config (the processor is the
checkpoint's when there is one, so item IDs map the same way), (3) the model through the task's Auto class,
(4) ``TrainingArguments`` and a ``Trainer`` whose optimiser and scheduler come from the protocol, with the
processor as ``processing_class`` (so checkpoints carry it), ranks as ``preprocess_logits_for_metrics`` (no full
score matrix is kept) and the task's metrics as ``compute_metrics``; evaluation and ``--select-best`` use the
validation split, (5) train (resuming from the last Trainer checkpoint with ``--resume``), score the validation
split and then the test split once, save.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed

import session_transformers  # noqa: F401  (registers the models with the Auto classes)
from session_transformers.optim import adaptive_clip_grad_, agc_parameters
from session_transformers.protocol import build_optimizer, build_scheduler, protocol_from_args
from session_transformers.provenance import training_record, write_training_record
from session_transformers.recipes import resolve_data_arguments, training_parser
from session_transformers.trainer_utils import (
    LengthGroupedEpochSampler,
    LengthOrderedSampler,
    check_activation_checkpointing,
    freeze_parameters,
    settle_selection,
    split_description,
)


class AdaptiveGradientClippingCallback(TrainerCallback):
    """Unit-wise adaptive gradient clipping right before each optimiser step, on true (unscaled) gradients.

    Trainer only unscales fp16 gradients when it clips their global norm itself, so this callback unscales them
    first (``accelerator.unscale_gradients()``, once per step), then clips with AGC, then applies the protocol's
    global-norm clipping if there is one (Trainer's own ``max_grad_norm`` is 0 while this callback is active).
    """

    def __init__(self, clip_factor: float, eps: float, max_grad_norm: float | None = None):
        self.clip_factor, self.eps, self.max_grad_norm = clip_factor, eps, max_grad_norm
        self.accelerator = None  # set to the Trainer's accelerator once the Trainer exists

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if self.accelerator is not None and getattr(self.accelerator, "scaler", None) is not None:
            self.accelerator.unscale_gradients()
        adaptive_clip_grad_(agc_parameters(model), self.clip_factor, self.eps)
        if self.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.max_grad_norm)


class StepHookCallback(TrainerCallback):
    """Runs the task's step hooks: ``before_optimizer_step`` before each optimiser step's forward passes (e.g.
    MUVCOG's negative warm-up), ``after_optimizer_step`` after the step (e.g. BYOL's EMA target update)."""

    def __init__(self, after=None, before=None):
        self.after, self.before = after, before

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if self.before is not None:
            self.before(model, state.global_step + 1, state.max_steps)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.after is not None:
            self.after(model, state.global_step, state.max_steps)


class RecipeTrainer(Trainer):
    """``Trainer`` with the recipe's optimiser and schedule (the same builders as ``trainers/pretrain.py``)."""

    def __init__(self, *a, protocol_args=None, train_lengths=None, example_lengths=None, **kw):
        self.protocol_args, self.train_lengths, self.example_lengths = (
            protocol_args,
            train_lengths,
            example_lengths,
        )
        super().__init__(*a, **kw)

    def _get_train_sampler(self, train_dataset=None):
        """``--group-by-length``: the same length-grouped, epoch-seeded sampler as ``trainers/pretrain.py`` (Trainer's
        own ``group_by_length`` strategy would also reorder evaluation and needs a length column in every split)."""
        if self.train_lengths is None:
            return super()._get_train_sampler(train_dataset)
        batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
        return LengthGroupedEpochSampler(batch, self.train_lengths, self.args.seed)

    def _get_eval_sampler(self, eval_dataset):
        """Longest example first where the recipe gives ``PreparedData.example_lengths`` (as
        ``trainers/pretrain.py``); otherwise ``Trainer``'s sequential order."""
        lengths = self.example_lengths(eval_dataset) if self.example_lengths is not None else None
        if lengths is None:
            return super()._get_eval_sampler(eval_dataset)
        return LengthOrderedSampler(lengths)

    def create_optimizer(self, model=None):
        if self.optimizer is None:
            model = model if model is not None else self.model
            self.optimizer = build_optimizer(
                [p for p in model.parameters() if p.requires_grad], self.protocol_args
            )
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.lr_scheduler is None:
            a = self.args
            per_epoch = (
                len(self.get_train_dataloader()) if self.train_dataset is not None else num_training_steps
            )
            steps_per_epoch = max(1, math.ceil(per_epoch / a.gradient_accumulation_steps))
            self.lr_scheduler = build_scheduler(
                optimizer if optimizer is not None else self.optimizer,
                self.protocol_args,
                num_training_steps,
                steps_per_epoch,
            )
        return self.lr_scheduler


def parse_args(argv: list[str] | None = None):
    parser, recipe, _ = training_parser(__doc__.split("\n")[0], argv, with_task=True)
    p = parser
    p.add_argument("--init-from", default=None, help="a saved checkpoint folder (or Hub repo) to start from")
    p.add_argument("--output-dir", default="runs/finetune")
    p.add_argument("--eval-batch-size", type=int, default=None)
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
    args = resolve_data_arguments(p, p.parse_args(argv), recipe)
    tasks = recipe.finetune
    args.task = args.task or next(iter(tasks))
    if args.task not in tasks:
        p.error(f"--model {args.model} has tasks {list(tasks)}, not {args.task!r}")
    check_activation_checkpointing(p, args, tasks[args.task])  # the Trainer enables it
    if args.init_from and not args.processor_path:
        args.processor_path = args.init_from
    return args, recipe


def main(argv: list[str] | None = None) -> dict:
    # 1. Flags: the task's protocol as defaults.
    args, recipe = parse_args(argv)
    task = recipe.finetune[args.task]

    # 2. Data, processor, config.
    data = task.prepare(args)
    print(f"data: {data.description}; {split_description(data)}")
    selection_note = settle_selection(args, data, sys.argv[1:] if argv is None else argv)
    if selection_note:
        print(selection_note)

    # 3. Model, seeded first (as transformers' examples do): Trainer seeds only once it is built, after the head
    #    a checkpoint lacks has been initialised from whatever state the global RNG was left in.
    set_seed(args.seed)
    if args.init_from:
        # --config overrides apply to the checkpoint's config too (e.g. an ablation switch at fine-tuning).
        model = task.auto_class.from_pretrained(args.init_from, dtype=torch.float32, **args.config_overrides)
    else:
        model = task.auto_class.from_config(data.config)
        if data.init_weights is not None:
            data.init_weights(model)

    freeze_parameters(
        model
    )  # parameters gradients must not train (e.g. an EMA target), frozen again after loading

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
    strategy = "steps" if args.eval_steps else "epoch"
    validating = data.eval_dataset is not None
    grouped = args.group_by_length and data.train_lengths is not None
    training_args = TrainingArguments(
        output_dir=args.output_dir,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.eval_batch_size or 4 * args.batch_size,
        num_train_epochs=args.num_epochs,
        max_steps=args.max_steps,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        learning_rate=args.learning_rate,  # recorded; the optimiser itself comes from the protocol
        weight_decay=args.weight_decay,
        eval_strategy=strategy if validating else "no",
        eval_steps=args.eval_steps,
        save_strategy=strategy,
        save_steps=args.eval_steps or args.save_steps,
        save_total_limit=2,
        load_best_model_at_end=bool(args.select_best),
        metric_for_best_model=args.select_best,
        greater_is_better=args.greater_is_better if args.select_best else None,
        logging_steps=args.logging_steps,
        max_grad_norm=0.0 if use_agc else (args.max_grad_norm or 0.0),
        remove_unused_columns=False,  # the collator needs the raw columns
        label_names=list(task.label_names),
        dataloader_num_workers=args.num_workers,
        # pinned host memory only speeds copies to an accelerator; without one torch warns on every loader
        dataloader_pin_memory=torch.accelerator.is_available() and not args.use_cpu,
        report_to=args.report_to,
        seed=args.seed,
        use_cpu=args.use_cpu,
        bf16=args.mixed_precision == "bf16",
        fp16=args.mixed_precision == "fp16",
        activation_checkpointing=args.activation_checkpointing,
    )
    agc = (
        AdaptiveGradientClippingCallback(config.agc_clip_factor, config.agc_eps, args.max_grad_norm)
        if use_agc
        else None
    )
    step_hooks = (
        StepHookCallback(task.after_optimizer_step, task.before_optimizer_step)
        if task.after_optimizer_step or task.before_optimizer_step
        else None
    )
    trainer = RecipeTrainer(
        model=model,
        args=training_args,
        train_dataset=data.train_dataset,
        eval_dataset=data.eval_dataset,
        data_collator=data.collate_fn,
        processing_class=data.processor,
        compute_metrics=compute_metrics,
        preprocess_logits_for_metrics=preprocess_logits_for_metrics,
        callbacks=[c for c in (agc, step_hooks) if c] or None,
        protocol_args=args,
        train_lengths=data.train_lengths if grouped else None,
        example_lengths=data.example_lengths,
    )
    if agc:
        agc.accelerator = trainer.accelerator

    # 5. Train; what the task sets on validation (its hook); the (selected) weights on validation, then the test
    #    split once; save.
    trainer.train(resume_from_checkpoint=True if args.resume else None)
    results: dict = {}
    if validating and task.tune_on_validation is not None:

        def score() -> dict[str, float]:
            return {
                k.removeprefix("tuning_"): v for k, v in trainer.evaluate(metric_key_prefix="tuning").items()
            }

        results["tuned_on_validation"] = task.tune_on_validation(trainer.model, score)
    if validating:
        results["validation"] = trainer.evaluate(metric_key_prefix="validation")
    if data.test_dataset is not None:
        results["test"] = trainer.evaluate(data.test_dataset, metric_key_prefix="test")
    if args.select_best and trainer.state.best_model_checkpoint:
        results["selected_checkpoint"] = Path(trainer.state.best_model_checkpoint).name
    trainer.save_model(args.output_dir)
    if trainer.is_world_process_zero():
        if task.baseline is not None:  # trivial baselines on the same test split, beside the model's results
            results["baseline"] = task.baseline(data)
        Path(args.output_dir, "eval_results.json").write_text(json.dumps(results, indent=2) + "\n")
        # what ran, for the model card: command, data set (name, fingerprint), split, protocol (no machine path)
        write_training_record(
            args.output_dir,
            training_record(
                script="finetune.py",
                argv=sys.argv[1:] if argv is None else argv,
                args=args,
                data=data,
                protocol=dataclasses.asdict(protocol_from_args(args)),
                optimizer_steps=trainer.state.global_step,
                results=results,
                task=args.task,
                num_processes=trainer.args.world_size,
                mixed_precision="bf16" if trainer.args.bf16 else "fp16" if trainer.args.fp16 else None,
            ),
        )
    for split in ("validation", "test"):
        if split in results:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in results[split].items() if isinstance(v, float))
            print(f"{split}: {shown}")
    for name, figures in results.get("baseline", {}).items():
        print(f"baseline {name} (test): " + ", ".join(f"{k} {v:.4f}" for k, v in figures.items()))
    return results


if __name__ == "__main__":
    main()
