"""A paper's training protocol, and the optimiser and schedule both trainers build from it.

Each recipe declares its paper's protocol (:class:`TrainingProtocol`) as the defaults of both trainers:
``trainers/pretrain.py`` (Accelerate) and ``trainers/finetune.py`` (``transformers.Trainer``) turn the same flags
into the same optimiser (:func:`build_optimizer`) and the same learning-rate schedule (:func:`build_scheduler`),
so one task trains the same way in both. Flags override any field; ``--model X --help`` shows X's values.

Schedules come from :func:`transformers.get_scheduler`, except the step decay of SR-GNN-style papers
("multiply the lr by 0.1 every 3 epochs"), which is a ``LambdaLR``. Both are ordinary ``torch`` schedulers whose
``state_dict`` the Accelerate and Trainer checkpoints save, so a resumed run continues the schedule exactly.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from transformers import get_scheduler
from transformers.trainer_utils import SchedulerType

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("step", *(s.value for s in SchedulerType if s.value not in ("reduce_lr_on_plateau", "greedy")))


@dataclass(frozen=True)
class TrainingProtocol:
    """How a paper trains a model: optimiser, learning rate and schedule, batch size, length, clipping.

    Args:
        optimizer: ``adam`` (``torch.optim.Adam``; ``weight_decay`` is then an L2 penalty added to the gradient,
            what the SR-GNN family calls "L2 penalty"), ``adamw`` (decoupled weight decay) or ``sgd``
            (with ``momentum``).
        learning_rate: peak learning rate.
        weight_decay: L2 penalty (``adam``, ``sgd``) or decoupled weight decay (``adamw``).
        momentum: SGD momentum.
        adam_betas: Adam's ``(beta1, beta2)``.
        lr_scheduler_type: ``step`` (multiply by ``lr_decay_rate`` every ``lr_decay_epochs`` epochs) or any
            ``transformers`` scheduler name (``linear``, ``cosine``, ``constant``, ...). ``linear`` with
            ``min_learning_rate > 0`` decays linearly to that rate (``polynomial`` of power 1).
        warmup_ratio: share of the optimiser steps spent warming up linearly from 0.
        min_learning_rate: the rate ``linear`` / ``cosine`` decay to (0 = to zero).
        lr_decay_epochs, lr_decay_rate: the ``step`` schedule.
        batch_size: examples per process and optimiser step (before gradient accumulation).
        num_epochs: passes over the training data.
        max_grad_norm: clip the global gradient norm to this (``None``: no clipping).
        group_by_length: batch examples of similar lengths together (random mega-batches of 50 batches sorted
            by length, as ``transformers.Trainer``'s ``group_by_length``), where the recipe gives lengths: little
            padding, the same samples per epoch, a less random batch composition.
        select_best: validation metric that selects the best checkpoint (``None``: keep the last).
        greater_is_better: direction of ``select_best``.
        source: where these numbers come from (shown in ``--help``).
    """

    optimizer: str = "adam"
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    momentum: float = 0.9
    adam_betas: tuple[float, float] = (0.9, 0.999)
    lr_scheduler_type: str = "constant"
    warmup_ratio: float = 0.0
    min_learning_rate: float = 0.0
    lr_decay_epochs: float = 3.0
    lr_decay_rate: float = 0.1
    batch_size: int = 32
    num_epochs: float = 1.0
    max_grad_norm: float | None = None
    group_by_length: bool = False
    select_best: str | None = None
    greater_is_better: bool = True
    source: str = ""

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer={self.optimizer!r} must be one of {OPTIMIZERS}")
        if self.lr_scheduler_type not in SCHEDULERS:
            raise ValueError(f"lr_scheduler_type={self.lr_scheduler_type!r} must be one of {SCHEDULERS}")

    def replace(self, **changes: Any) -> TrainingProtocol:
        return dataclasses.replace(self, **changes)


def _flag(text: str) -> bool:
    """A true/false flag value (``true``, ``yes``, ``1`` are true)."""
    return text.lower() in ("1", "true", "yes")


def _optional_float(text: str) -> float | None:
    return None if text.lower() in ("none", "") else float(text)


def add_protocol_arguments(parser: argparse.ArgumentParser, protocol: TrainingProtocol) -> None:
    """The protocol's flags, with the recipe's values as defaults (so ``--help`` shows the model's protocol)."""
    g = parser.add_argument_group(
        "training protocol", f"defaults: {protocol.source}" if protocol.source else "defaults of this model"
    )
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=protocol.optimizer, help="optimiser")
    g.add_argument("--learning-rate", type=float, default=protocol.learning_rate, help="peak learning rate")
    g.add_argument(
        "--weight-decay", type=float, default=protocol.weight_decay, help="L2 penalty (adam/sgd) or decay"
    )
    g.add_argument("--momentum", type=float, default=protocol.momentum, help="SGD momentum")
    g.add_argument(
        "--lr-scheduler-type",
        choices=SCHEDULERS,
        default=protocol.lr_scheduler_type,
        help="learning-rate schedule",
    )
    g.add_argument(
        "--warmup-ratio", type=float, default=protocol.warmup_ratio, help="share of steps warming up linearly"
    )
    g.add_argument(
        "--min-learning-rate",
        type=float,
        default=protocol.min_learning_rate,
        help="linear/cosine decay floor",
    )
    g.add_argument(
        "--lr-decay-epochs", type=float, default=protocol.lr_decay_epochs, help="step schedule: decay period"
    )
    g.add_argument(
        "--lr-decay-rate", type=float, default=protocol.lr_decay_rate, help="step schedule: decay factor"
    )
    g.add_argument("--batch-size", type=int, default=protocol.batch_size, help="per-process batch size")
    g.add_argument(
        "--num-epochs", type=float, default=protocol.num_epochs, help="passes over the training data"
    )
    g.add_argument(
        "--max-grad-norm",
        type=_optional_float,
        default=protocol.max_grad_norm,
        help="clip the global gradient norm (none: no clipping)",
    )
    g.add_argument(
        "--group-by-length",
        type=_flag,
        default=protocol.group_by_length,
        help="batch examples of similar length together (true/false): far less padding",
    )
    g.add_argument(
        "--select-best",
        type=lambda text: None if text.lower() == "none" else text,
        default=protocol.select_best,
        metavar="METRIC",
        help="validation metric that picks the best checkpoint (e.g. HR@20; none: keep the last weights); the "
        "test set is scored once, with the selected weights",
    )
    g.add_argument(
        "--greater-is-better",
        type=_flag,
        default=protocol.greater_is_better,
        help="direction of --select-best (true/false)",
    )
    parser.set_defaults(adam_betas=protocol.adam_betas)


def build_optimizer(params, args: argparse.Namespace) -> torch.optim.Optimizer:
    """The protocol's optimiser over ``params`` (from the resolved flags)."""
    if args.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=args.learning_rate, momentum=args.momentum, weight_decay=args.weight_decay
        )
    cls = torch.optim.AdamW if args.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=args.learning_rate, betas=tuple(args.adam_betas), weight_decay=args.weight_decay)


def build_scheduler(
    optimizer: torch.optim.Optimizer, args: argparse.Namespace, num_training_steps: int, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """The protocol's schedule, stepped once per optimiser step for ``num_training_steps`` steps."""
    warmup = round(args.warmup_ratio * num_training_steps)
    name = args.lr_scheduler_type
    if name == "step":
        period = max(1, round(args.lr_decay_epochs * steps_per_epoch))
        rate = args.lr_decay_rate
        return torch.optim.lr_scheduler.LambdaLR(optimizer, _StepDecay(period, rate, warmup))
    extra: dict[str, Any] = {}
    if name == "linear" and args.min_learning_rate > 0:
        name, extra = "polynomial", {"lr_end": args.min_learning_rate, "power": 1.0}
    elif name in ("cosine_with_min_lr", "cosine_warmup_with_min_lr"):
        extra = {"min_lr": args.min_learning_rate}
    elif name == "cosine" and args.min_learning_rate > 0:
        name, extra = "cosine_with_min_lr", {"min_lr": args.min_learning_rate}
    return get_scheduler(
        name,
        optimizer,
        num_warmup_steps=warmup,
        num_training_steps=num_training_steps,
        scheduler_specific_kwargs=extra or None,
    )


class _StepDecay:
    """``lr(step) = lr0 * rate ** (step // period)`` after a linear warm-up (a picklable ``LambdaLR`` factor)."""

    def __init__(self, period: int, rate: float, warmup: int = 0):
        self.period, self.rate, self.warmup = period, rate, warmup

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        return self.rate ** (step // self.period)


def protocol_from_args(args: argparse.Namespace) -> TrainingProtocol:
    """The protocol the flags resolved to (recorded beside a trained model)."""
    names = {f.name for f in dataclasses.fields(TrainingProtocol)} - {"source"}
    return TrainingProtocol(**{n: getattr(args, n) for n in names if hasattr(args, n)})


__all__ = [
    "OPTIMIZERS",
    "SCHEDULERS",
    "TrainingProtocol",
    "add_protocol_arguments",
    "build_optimizer",
    "build_scheduler",
    "protocol_from_args",
]
