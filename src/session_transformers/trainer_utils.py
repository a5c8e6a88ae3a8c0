"""The pieces every training recipe is made of, and the data flags every trainer shares.

A :class:`Recipe` says how the generic trainers (``trainers/pretrain.py`` with Accelerate,
``trainers/finetune.py`` with ``transformers.Trainer``) train one model family: its pretraining :class:`Task`,
its fine-tuning tasks and its data sources. Each model family writes its recipe beside its model
(``models/<family>/recipe.py``); :mod:`session_transformers.recipes` collects them in ``RECIPES``.
"""

from __future__ import annotations

import argparse
import ast
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from datasets import Dataset, IterableDataset
from transformers.trainer_pt_utils import LengthGroupedSampler

from .data.synthetic.config import QUERY_REFORMULATIONS
from .protocol import TrainingProtocol


@dataclass
class PreparedData:
    """What a recipe hands to a trainer."""

    processor: Any
    train_dataset: Dataset
    eval_dataset: Dataset | None
    """The validation split: periodic evaluation and ``--select-best`` use it. ``None`` when there is none
    (``--validation-fraction 0``): then nothing is evaluated during training, the last weights are kept and the
    test split is scored once; never the test split in its place."""
    collate_fn: Callable[[list[dict]], dict]
    config: Any
    description: str = ""
    init_weights: Callable[[Any], Any] | None = None
    """Called on a model built from ``config`` (not on one loaded with ``--init-from``), e.g. to load pretrained
    encoder weights from another checkpoint."""
    example_lengths: Callable[[Any], Sequence[int] | None] | None = None
    """``example_lengths(split)``: the length of every example of a split as the collator pads it (e.g. items in a
    TAGNN++ prefix; ``None`` for a stream). With it, ``--group-by-length`` draws training batches of similar
    lengths (:attr:`train_lengths`), and both trainers evaluate every split in :class:`LengthOrderedSampler` order,
    so that a batch carries little padding. Give it only where the task's metrics do not depend on the order of
    the examples (rankings summarised per example: HR@K, MRR@K)."""
    test_dataset: Dataset | None = None
    """Scored once, at the end, with the final (or selected) weights; ``eval_dataset`` is the validation split
    that periodic evaluation and checkpoint selection use. ``None`` when the source has no test split."""
    eval_collate_fn: Callable[[list[dict]], dict] | None = None
    """The collator of the evaluation loaders when it differs from ``collate_fn`` (e.g. fixed masks); ``None``:
    ``collate_fn``."""

    @functools.cached_property
    def train_lengths(self) -> Sequence[int] | None:
        """:attr:`example_lengths` of the training split, for ``--group-by-length`` (``None`` without it)."""
        return None if self.example_lengths is None else self.example_lengths(self.train_dataset)


@dataclass
class Task:
    """One training objective of a model family: its data, the Auto class of its head, and its metrics.

    ``per_example(logits, labels)`` turns a batch's head output into per-example tensors (e.g. the rank of the
    target); it serves as ``eval_step`` in the Accelerate loop and as ``preprocess_logits_for_metrics`` under
    ``transformers.Trainer``, so that neither keeps a full score matrix. ``summarize`` turns the gathered
    per-example tensors into metrics.
    """

    prepare: Callable[[argparse.Namespace], PreparedData]
    auto_class: Any
    per_example: Callable[[Any, torch.Tensor], dict[str, torch.Tensor]]
    summarize: Callable[[dict[str, torch.Tensor]], dict[str, float]]
    label_names: tuple[str, ...] = ("labels",)
    protocol: TrainingProtocol | None = None
    """This task's training protocol when it differs from the recipe's (e.g. a fine-tuning recipe)."""
    after_optimizer_step: Callable[[Any, int, int], None] | None = None
    """``hook(model, step, total_steps)``, called by both trainers after every optimiser step (``step`` counts
    from 1) on the unwrapped model, on every process: updates state that gradients do not train (BYOL's EMA
    target network). Keep that state in the model, as buffers or as parameters whose names the model class lists
    in ``_frozen_parameters`` (name prefixes; the trainers freeze them after building or loading the model,
    because ``from_pretrained`` returns every parameter trainable), so that checkpoints save it; and make the
    update a function of the weights and ``step`` alone, so that it resumes exactly and stays identical on every
    process."""

    before_optimizer_step: Callable[[Any, int, int], None] | None = None
    """``hook(model, step, total_steps)``, called by both trainers before the forward pass of every micro-batch of
    optimiser step ``step`` (from 1) on the unwrapped model, on every process: sets state that depends on the
    step alone (MUVCOG's random-negative warm-up). It must be idempotent and a function of ``step`` alone: it is
    not checkpointed, and a resumed run calls it again from the resumed step."""

    after_training: Callable[[Any], None] | None = None
    """``hook(model)``, called by the pretraining trainer on the unwrapped model once training ends, before the
    final validation and test scoring: undoes step-dependent state so that those figures are the saved model's as
    anyone who loads it computes them (MUVCOG: no training step, so evaluation uses ``config.negatives``, not the
    warm-up's random negatives of the last step)."""

    tune_on_validation: Callable[[Any, Callable[[], dict[str, float]]], dict] | None = None
    """``hook(model, score)``, called by the fine-tuning trainer once training has ended and the selected weights
    are loaded, before the validation and test figures: sets what the optimiser does not train, from the validation
    split alone (MUVCOG's query suggestion: the weight of the copy head against the learned head).
    ``score()`` returns this task's metrics on the validation split (``summarize``'s names); the hook changes the
    model in place (what it sets is saved with the weights) and returns what it chose, which the trainer records
    in ``eval_results.json`` and the training record. Never called without a validation split: the test split is
    not seen."""

    baseline: Callable[[PreparedData], dict[str, dict[str, float]]] | None = None
    """Trivial baselines of this task on the prepared test split (``{"popularity": {"HR@20": ...}, ...}``: popularity,
    last item, majority class, mean length...), with the same metric names as ``summarize``; the trainers write them
    beside the model's results so that a reader sees whether the model learned anything."""

    def eval_step(self, model: torch.nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        labels = batch.pop(self.label_names[0])
        return self.per_example(model(**batch).logits, labels)


@dataclass
class Stage:
    """One ordered pretraining stage: its own task (data, collator, objective), protocol and trainable modules.

    UBM, for example, trains its interaction encoder on item pairs first, then the whole model on sessions
    starting from stage 1's weights: ``trainers/pretrain.py --stage 2 --init-from <stage-1 output>``.
    """

    name: str
    task: Task
    protocol: TrainingProtocol | None = None
    """The stage's protocol (default: the recipe's)."""
    trainable: tuple[str, ...] | None = None
    """Parameter-name prefixes this stage trains (``("ubm.interaction_encoder.",)``); the others are frozen.
    ``None``: every parameter."""
    description: str = ""


@dataclass(frozen=True)
class QuickstartJob:
    """What the main job (``trainers/quickstart.py``) runs for one model family, at CPU scale on the synthetic store.

    ``pretrain_stages`` holds the ``trainers/pretrain.py`` flags of each pretraining stage in order (a later stage
    starts from the previous stage's output); ``finetune_args`` the ``trainers/finetune.py`` flags of
    ``finetune_task``; ``metrics`` the held-out metrics the summary table prints (each against the task's
    baselines). ``full_*``: the larger version run by ``--full`` (``None``: the same flags).
    """

    pretrain_stages: tuple[tuple[str, ...], ...]
    finetune_task: str
    finetune_args: tuple[str, ...]
    metrics: tuple[str, ...]
    full_pretrain_stages: tuple[tuple[str, ...], ...] | None = None
    full_finetune_args: tuple[str, ...] | None = None


@dataclass
class Recipe:
    """How to train one model family: its pretraining task, its fine-tuning tasks, its data sources, its paper's
    training protocol (the trainers' defaults) and its own command-line flags."""

    pretrain: Task
    finetune: dict[str, Task]
    datasets: tuple[str, ...] = ("synthetic",)
    default_data_path: dict[str, str] = field(default_factory=dict)
    protocol: TrainingProtocol = field(default_factory=TrainingProtocol)
    """The paper's training protocol: the defaults of ``pretrain.py`` and of every task without its own."""
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    """Adds this family's own flags (what its ``prepare`` functions read) to both trainers' parsers."""
    stages: tuple[Stage, ...] = ()
    """Ordered pretraining stages (``--stage N``, 1-based); empty: one stage, ``pretrain`` with ``protocol``."""
    quickstart: QuickstartJob | None = None
    """This family's part of the main job; ``None``: the main job skips it."""

    def task_protocol(self, task: Task) -> TrainingProtocol:
        return task.protocol or self.protocol

    def pretraining_stages(self) -> tuple[Stage, ...]:
        return self.stages or (Stage("pretrain", self.pretrain, self.protocol),)

    def stage(self, number: int) -> Stage:
        """Stage ``number`` (1-based)."""
        stages = self.pretraining_stages()
        if not 1 <= number <= len(stages):
            raise ValueError(f"--stage {number}: this model has {len(stages)} pretraining stage(s)")
        return stages[number - 1]

    def stage_protocol(self, stage: Stage) -> TrainingProtocol:
        return stage.protocol or self.task_protocol(stage.task)


class LengthGroupedEpochSampler(LengthGroupedSampler):
    """``transformers``' length grouping (random mega-batches of 50 batches, sorted by length inside), re-seeded
    from ``(seed, epoch)`` at every epoch so that an epoch's order is reproducible: accelerate calls
    :meth:`set_epoch`, and ``skip_first_batches`` then resumes a partial epoch exactly."""

    def __init__(self, batch_size: int, lengths: Sequence[int], seed: int):
        super().__init__(batch_size, lengths=list(lengths), generator=torch.Generator())
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        self.generator.manual_seed(self.seed + self.epoch)
        return super().__iter__()


class LengthOrderedSampler(torch.utils.data.Sampler[int]):
    """Every index once, longest example first (ties in dataset order): the evaluation order of a split with
    :attr:`PreparedData.example_lengths`. Padding to a batch's longest example then costs little, and the largest
    batch comes first, so that running out of memory shows at once. Deterministic; nothing is drawn."""

    def __init__(self, lengths: Sequence[int]):
        self.order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable").tolist()

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self):
        return iter(self.order)


def synthetic_store(args: argparse.Namespace, **overrides):
    """The synthetic store the data flags describe: ``--store-preset`` (``tiny`` or the default), ``--seed``,
    ``--num-sessions`` (0: the preset's), ``--query-reformulation``, then ``overrides`` (other
    ``SyntheticStoreConfig`` fields)."""
    import dataclasses

    from .data.synthetic import SyntheticStore, SyntheticStoreConfig

    base = SyntheticStoreConfig.tiny() if args.store_preset == "tiny" else SyntheticStoreConfig()
    overrides = {"query_reformulation": getattr(args, "query_reformulation", "mix"), **overrides}
    return SyntheticStore(
        dataclasses.replace(
            base, seed=args.seed, num_sessions=args.num_sessions or base.num_sessions, **overrides
        )
    )


def bert_initializer(path: str | None, load: str, part: str) -> Callable | None:
    """``PreparedData.init_weights`` that loads a BERT-family checkpoint (folder or ``.safetensors`` file) into one
    part of a model built from scratch, through ``model.base_model.<load>(path)``; ``None`` without a path."""
    if not path:
        return None

    def init_weights(model) -> None:
        report = getattr(model.base_model, load)(path)
        print(f"{part} initialised from {path}: {len(report['loaded'])} tensors loaded")

    return init_weights


def first_n(data, n: int | None):
    """The first ``n`` rows of a list, a ``datasets.Dataset`` or an ``IterableDataset`` (``take``: ``datasets``
    divides ``n`` between the shards); everything for ``n`` None or 0; ``None`` stays ``None``."""
    if data is None or not n:
        return data
    if isinstance(data, IterableDataset):
        return data.take(n)
    if isinstance(data, Dataset):
        return data.select(range(min(n, len(data))))
    return data[:n]


def split_sizes(n: int, eval_fraction: float, validation_fraction: float) -> tuple[int, int]:
    """(validation, test) session counts, as every recipe splits its sessions: the last ``eval_fraction`` of ``n``
    sessions are the test split and ``validation_fraction`` of the rest the validation split (at least one
    session each; no validation split when ``validation_fraction`` is 0)."""
    n_test = max(1, int(n * eval_fraction))
    n_val = max(1, int((n - n_test) * validation_fraction)) if validation_fraction > 0 else 0
    if n - n_test - n_val < 1:
        raise ValueError(
            f"{n} sessions leave none for training with --eval-fraction {eval_fraction} and "
            f"--validation-fraction {validation_fraction}"
        )
    return n_val, n_test


def split_in_order(
    sessions: Sequence[Any], eval_fraction: float, validation_fraction: float
) -> tuple[Any, Any, Any]:
    """``sessions`` cut in their order into train / validation / test of :func:`split_sizes`'s counts: the
    held-out splits are the last sessions (the latest, for sessions ordered by time)."""
    n_val, n_test = split_sizes(len(sessions), eval_fraction, validation_fraction)
    n_train = len(sessions) - n_val - n_test
    return sessions[:n_train], sessions[n_train : n_train + n_val], sessions[n_train + n_val :]


def source_key(args: argparse.Namespace, *extra: Any) -> tuple:
    """The flags that decide a recipe's sessions and their splits (and ``extra`` values of its own): the key of
    its per-process cache of sources (benchmarks call the trainers' ``main`` many times)."""
    return (
        args.dataset,
        args.data_path,
        args.store_preset,
        getattr(args, "query_reformulation", "mix"),
        args.seed,
        args.num_sessions,
        args.eval_fraction,
        args.validation_fraction,
        *extra,
    )


def limit_splits(args: argparse.Namespace, train: Any, validation: Any, test: Any) -> tuple[Any, Any, Any]:
    """The splits cut by the sample flags (:func:`first_n`): ``--max-train-samples``, the validation limit
    (:func:`validation_limit`) and ``--max-eval-samples``."""
    return (
        first_n(train, args.max_train_samples),
        first_n(validation, validation_limit(args)),
        first_n(test, args.max_eval_samples),
    )


def settle_selection(args: argparse.Namespace, data: PreparedData, argv: Sequence[str] | None) -> str | None:
    """What a run without a validation split selects on: nothing. Returns a line for the log, or ``None``.

    With no validation split (``data.eval_dataset is None``) there is no periodic evaluation and no checkpoint
    selection: the test split is never a stand-in for validation. A ``--select-best`` given on the command line
    is refused (a clear error before any training); the protocol's default one is dropped, said in the log."""
    if data.eval_dataset is not None or not args.select_best:
        return None
    spellings = ("--select-best", "--select_best")  # HfArgumentParser's two spellings of the flag
    given = any(a in spellings or a.startswith(tuple(f"{f}=" for f in spellings)) for a in argv or ())
    if given:
        raise ValueError(
            f"--select-best {args.select_best}: this run has no validation split (--validation-fraction 0), "
            "and checkpoints are never selected on the test split; hold out a validation split or pass "
            "--select-best none"
        )
    dropped, args.select_best = args.select_best, None
    return (
        f"no validation split: no periodic evaluation, the last weights are kept (the protocol's --select-best "
        f"{dropped} needs a validation split), and the test split is scored once at the end"
    )


def split_description(data: PreparedData) -> str:
    """``"N train / N validation / N test"`` (``streamed`` for a stream, ``no validation`` without one)."""
    from datasets import IterableDataset

    train = "streamed" if isinstance(data.train_dataset, IterableDataset) else str(len(data.train_dataset))
    validation = f"{len(data.eval_dataset)} validation" if data.eval_dataset is not None else "no validation"
    test = f" / {len(data.test_dataset)} test" if data.test_dataset is not None else ""
    return f"{train} train / {validation}{test}"


def freeze_parameters(model: torch.nn.Module, trainable: tuple[str, ...] | None = None) -> None:
    """Freeze what gradients must not train: the model's ``_frozen_parameters`` (name prefixes, e.g. an EMA
    target network), and, when ``trainable`` (a stage's prefixes) is given, every parameter outside it."""
    frozen = tuple(getattr(model, "_frozen_parameters", ()) or ())
    for name, p in model.named_parameters():
        keep = trainable is None or name.startswith(trainable)
        p.requires_grad_(keep and not (frozen and name.startswith(frozen)))


def check_activation_checkpointing(
    parser: argparse.ArgumentParser, args: argparse.Namespace, task: Task
) -> None:
    """At parse time, before any data is read: refuse ``--activation-checkpointing`` for a model whose class (the
    one ``task.auto_class`` builds for ``--model``) cannot do it."""
    if not args.activation_checkpointing:
        return
    from transformers import CONFIG_MAPPING

    model_class = task.auto_class._model_mapping[CONFIG_MAPPING[args.model]]
    if not model_class.supports_gradient_checkpointing:
        parser.error(
            f"--activation-checkpointing: {model_class.__name__} ({args.model}) does not support activation "
            "checkpointing (its supports_gradient_checkpointing is False); train it without the flag"
        )


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The data and config flags every trainer shares (what a recipe's ``prepare`` reads)."""
    parser.add_argument(
        "--dataset", default="synthetic", help="synthetic (default) or a real-data loader name"
    )
    parser.add_argument(
        "--data-path", default=None, help="folder of the real dataset (default under ../shared/data)"
    )
    parser.add_argument(
        "--store-preset",
        choices=("default", "tiny"),
        default="default",
        help="synthetic store size preset (tiny: for tests)",
    )
    parser.add_argument(
        "--num-sessions", type=int, default=None, help="synthetic store sessions (preset's default)"
    )
    parser.add_argument(
        "--query-reformulation",
        choices=QUERY_REFORMULATIONS,
        default="mix",
        help="synthetic store: how a keyword query follows the previous one (mix: the query-log mix; refine: the "
        "store before it, for figures taken on it)",
    )
    parser.add_argument(
        "--eval-fraction", type=float, default=0.1, help="synthetic sessions held out for the test split"
    )
    parser.add_argument(
        "--validation-fraction",
        type=float,
        default=0.1,
        help="training sessions held out (by session) for validation: periodic evaluation and --select-best",
    )
    parser.add_argument("--max-train-samples", type=int, default=None)
    parser.add_argument(
        "--max-eval-samples", type=int, default=None, help="cut the validation and test splits to N samples"
    )
    parser.add_argument(
        "--max-validation-samples",
        type=int,
        default=None,
        help="cut only the validation split (periodic evaluation) to N samples; the test set stays whole",
    )
    parser.add_argument(
        "--processor-path", default=None, help="reuse a saved processor instead of fitting one"
    )
    parser.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument("--seed", type=int, default=42)


def validation_limit(args: argparse.Namespace) -> int | None:
    """How many validation samples to keep: ``--max-validation-samples``, else ``--max-eval-samples``."""
    limit = getattr(args, "max_validation_samples", None)
    return limit if limit is not None else getattr(args, "max_eval_samples", None)


def resolve_data_arguments(
    parser: argparse.ArgumentParser, args: argparse.Namespace, recipe: Recipe
) -> argparse.Namespace:
    """Check the dataset against the model's recipe, fill the default data path, parse ``--config`` overrides."""
    overrides = {}
    for item in args.config:
        if "=" not in item:
            parser.error(f"--config takes KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            overrides[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[key] = value
    args.config_overrides = overrides
    if args.dataset not in recipe.datasets:
        parser.error(f"--model {args.model} trains on {list(recipe.datasets)}, not {args.dataset!r}")
    if args.data_path is None:
        args.data_path = recipe.default_data_path.get(args.dataset)
    return args


__all__ = [
    "bert_initializer",
    "first_n",
    "limit_splits",
    "synthetic_store",
    "PreparedData",
    "Recipe",
    "Stage",
    "Task",
    "TrainingProtocol",
    "LengthGroupedEpochSampler",
    "LengthOrderedSampler",
    "add_data_arguments",
    "check_activation_checkpointing",
    "freeze_parameters",
    "settle_selection",
    "split_description",
    "source_key",
    "split_in_order",
    "split_sizes",
    "resolve_data_arguments",
]
