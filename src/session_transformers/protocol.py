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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import HfArgumentParser, get_scheduler
from transformers.trainer_utils import SchedulerType

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("step", *(s.value for s in SchedulerType if s.value not in ("reduce_lr_on_plateau", "greedy")))


def _help(text: str) -> dict[str, Any]:
    return {"help": text}


@dataclass(frozen=True)
class ProtocolArguments:
    """The protocol's command-line flags (``--learning-rate``, ...), one per field: :func:`protocol_parser` turns
    them into flags with ``transformers.HfArgumentParser``, so a field added here is a flag with nothing else to
    edit. :class:`TrainingProtocol` adds what is not a flag."""

    _argument_group_name = (
        "training protocol"  # HfArgumentParser's group for these fields (a class attribute)
    )

    optimizer: str = field(default="adam", metadata={"choices": OPTIMIZERS, **_help("optimiser")})
    learning_rate: float = field(default=1e-4, metadata=_help("peak learning rate"))
    weight_decay: float = field(default=0.0, metadata=_help("L2 penalty (adam/sgd) or decay"))
    momentum: float = field(default=0.9, metadata=_help("SGD momentum"))
    lr_scheduler_type: str = field(
        default="constant", metadata={"choices": SCHEDULERS, **_help("learning-rate schedule")}
    )
    warmup_ratio: float = field(default=0.0, metadata=_help("share of steps warming up linearly"))
    min_learning_rate: float = field(default=0.0, metadata=_help("linear/cosine decay floor"))
    lr_decay_epochs: float = field(default=3.0, metadata=_help("step schedule: decay period"))
    lr_decay_rate: float = field(default=0.1, metadata=_help("step schedule: decay factor"))
    batch_size: int = field(default=32, metadata=_help("per-process batch size"))
    num_epochs: float = field(default=1.0, metadata=_help("passes over the training data"))
    max_grad_norm: float | None = field(
        default=None, metadata=_help("clip the global gradient norm (none: no clipping)")
    )
    group_by_length: bool = field(
        default=False,
        metadata=_help("batch examples of similar length together (true/false): far less padding"),
    )
    select_best: str | None = field(
        default=None,
        metadata={
            "metavar": "METRIC",
            **_help(
                "validation metric that picks the best checkpoint (e.g. HR@20; none: keep the last weights); the "
                "test set is scored once, with the selected weights"
            ),
        },
    )
    greater_is_better: bool = field(default=True, metadata=_help("direction of --select-best (true/false)"))


@dataclass(frozen=True)
class TrainingProtocol(ProtocolArguments):
    """How a paper trains a model: optimiser, learning rate and schedule, batch size, length, clipping.

    Args:
        optimizer: ``adam`` (``torch.optim.Adam``; ``weight_decay`` is then an L2 penalty added to the gradient,
            what the SR-GNN family calls "L2 penalty"), ``adamw`` (decoupled weight decay) or ``sgd``
            (with ``momentum``).
        learning_rate: peak learning rate.
        weight_decay: L2 penalty (``adam``, ``sgd``) or decoupled weight decay (``adamw``).
        momentum: SGD momentum.
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
        adam_betas: Adam's ``(beta1, beta2)`` (not a flag).
        source: where these numbers come from (shown in ``--help``; not a flag).
    """

    adam_betas: tuple[float, float] = (0.9, 0.999)
    source: str = ""

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer={self.optimizer!r} must be one of {OPTIMIZERS}")
        if self.lr_scheduler_type not in SCHEDULERS:
            raise ValueError(f"lr_scheduler_type={self.lr_scheduler_type!r} must be one of {SCHEDULERS}")

    def replace(self, **changes: Any) -> TrainingProtocol:
        return dataclasses.replace(self, **changes)


def _or_none(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse``, except that ``none`` (or nothing) is ``None``: the way to switch off an optional setting."""

    def parse_or_none(text: str) -> Any:
        return None if text.lower() in ("none", "") else parse(text)

    parse_or_none.__name__ = getattr(parse, "__name__", "value")  # argparse names the type in its errors
    return parse_or_none


def protocol_parser(protocol: TrainingProtocol) -> HfArgumentParser:
    """A parent parser (``argparse.ArgumentParser(parents=[...])``) holding the protocol's flags.

    ``HfArgumentParser`` makes one flag per field of :class:`ProtocolArguments` (``--learning-rate`` and its
    ``--learning_rate`` spelling) in a "training protocol" group; the defaults are ``protocol``'s values, so
    ``--help`` shows the model's protocol and where it comes from. ``none`` switches off the optional ones.
    """
    parser = HfArgumentParser(ProtocolArguments, add_help=False)
    optional = {f.name for f in dataclasses.fields(ProtocolArguments) if f.default is None}
    for action in parser._actions:
        if action.dest in optional:
            action.type = _or_none(action.type)
    for group in parser._action_groups:
        if group.title == ProtocolArguments._argument_group_name:
            group.description = (
                f"defaults: {protocol.source}" if protocol.source else "defaults of this model"
            )
    parser.set_defaults(
        **{f.name: getattr(protocol, f.name) for f in dataclasses.fields(protocol) if f.name != "source"}
    )
    return parser


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
    "ProtocolArguments",
    "TrainingProtocol",
    "build_optimizer",
    "build_scheduler",
    "protocol_from_args",
    "protocol_parser",
]
