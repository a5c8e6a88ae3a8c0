"""Training recipes: for each ``model_type``, how the trainers get its data, processor, config and metrics.

The two entry points (``trainers/pretrain.py`` with Accelerate, ``trainers/finetune.py`` with
``transformers.Trainer``) are generic: everything model-specific they need is one :class:`Recipe` in
:data:`RECIPES`. A recipe turns a data source (the synthetic store by default, or a named real-data loader
and a path) into a :class:`PreparedData`: the processor, train and eval ``datasets.Dataset`` s, the collate
function and a config. Its ``eval_step`` returns per-example tensors (so scripts can
``accelerator.gather_for_metrics`` them) and ``summarize`` turns the gathered tensors into metrics.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset

from . import metrics
from .data.schema import session_item_ids


@dataclass
class PreparedData:
    """What a recipe hands to a trainer."""

    processor: Any
    train_dataset: Dataset
    eval_dataset: Dataset
    collate_fn: Callable[[list[dict]], dict]
    config: Any
    description: str = ""


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

    def eval_step(self, model: torch.nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        labels = batch.pop(self.label_names[0])
        return self.per_example(model(**batch).logits, labels)


@dataclass
class Recipe:
    """How to train one model family: its pretraining task, its fine-tuning tasks and its data sources."""

    pretrain: Task
    finetune: dict[str, Task]
    datasets: tuple[str, ...] = ("synthetic",)
    default_data_path: dict[str, str] = field(default_factory=dict)


# --- next-item prediction (TAGNN++) -------------------------------------------------------------------------

def expand_prefixes(sequences: list[list[str]], ids: list[str] | None = None) -> dict[str, list]:
    """The protocol's training samples: every prefix of every sequence with its next item.

    ``[i1, ..., in]`` gives ``([i1..ik], i(k+1))`` for ``k = 1..n-1``; sequences of length 1 give none.
    """
    out: dict[str, list] = {"session_id": [], "item_ids": [], "target": []}
    for j, seq in enumerate(sequences):
        sid = ids[j] if ids is not None else str(j)
        for k in range(1, len(seq)):
            out["session_id"].append(sid)
            out["item_ids"].append(seq[:k])
            out["target"].append(seq[k])
    return out


def _synthetic_next_item(args: argparse.Namespace) -> tuple[Dataset, Dataset, list[str], str]:
    from .data.synthetic import SyntheticStore, SyntheticStoreConfig

    base = SyntheticStoreConfig.tiny() if args.store_preset == "tiny" else SyntheticStoreConfig()
    cfg = dataclasses.replace(base, seed=args.seed, num_sessions=args.num_sessions or base.num_sessions)
    store = SyntheticStore(cfg)
    seqs = [session_item_ids(s) for s in store.iter_sessions(0, cfg.num_sessions)]
    n_eval = max(1, int(len(seqs) * args.eval_fraction))
    train_seqs, eval_seqs = seqs[:-n_eval], seqs[-n_eval:]
    # Sessions, not prefixes, are split, so no session has prefixes on both sides.
    train = Dataset.from_dict(expand_prefixes(train_seqs))
    evaluation = Dataset.from_dict(expand_prefixes(eval_seqs))
    return train, evaluation, list(store.item_ids), (
        f"synthetic store (seed {args.seed}, {cfg.num_sessions} sessions; last {n_eval} sessions held out, "
        f"every prefix of each as a sample)"
    )


def _diginetica_next_item(args: argparse.Namespace) -> tuple[Dataset, Dataset, list[str], str]:
    from .data.loaders import load_next_item_dataset, next_item_catalogue_ids

    train = load_next_item_dataset(args.data_path, split="train")
    test = load_next_item_dataset(args.data_path, split="test")
    if args.max_train_samples:
        train = train.select(range(min(args.max_train_samples, len(train))))
    if args.max_eval_samples:
        test = test.select(range(min(args.max_eval_samples, len(test))))
    return train, test, list(next_item_catalogue_ids(args.data_path)), f"{args.data_path} (SR-GNN protocol: train prefixes, test.tsv, full catalogue)"


def _prepare_tagnn_pp(args: argparse.Namespace) -> PreparedData:
    from .models.tagnn_pp import TagnnPPConfig, TagnnPPProcessor

    source = {"synthetic": _synthetic_next_item, "diginetica": _diginetica_next_item}[args.dataset]
    train, evaluation, catalogue_ids, description = source(args)
    if args.processor_path:
        processor = TagnnPPProcessor.from_pretrained(args.processor_path)
    else:
        # The vocabulary is the whole catalogue: the protocol ranks every item, seen in training or not.
        processor = TagnnPPProcessor.from_sessions([catalogue_ids])
    config = TagnnPPConfig(num_items=processor.num_items, **args.config_overrides)
    return PreparedData(processor, train, evaluation, processor.collate, config, description)


def _next_item_ranks(logits: Any, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    logits = logits[0] if isinstance(logits, tuple) else logits
    return {"rank": metrics.rank_of_target(logits, labels)}


def _next_item_summarize(gathered: dict[str, torch.Tensor], ks: tuple[int, ...] = (10, 20)) -> dict[str, float]:
    ranks = gathered["rank"]
    out: dict[str, float] = {"num_samples": float(ranks.numel())}
    for k in ks:
        out[f"HR@{k}"] = 100.0 * metrics.hit_rate_from_ranks(ranks, k)
        out[f"MRR@{k}"] = 100.0 * metrics.mrr_from_ranks(ranks, k)
    return out


def _next_item_task() -> Task:
    from .auto import AutoModelForNextItemPrediction

    return Task(_prepare_tagnn_pp, AutoModelForNextItemPrediction, _next_item_ranks, _next_item_summarize)


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The data and config flags every trainer shares (what a recipe's ``prepare`` reads)."""
    parser.add_argument("--dataset", default="synthetic", help="synthetic (default) or a real-data loader name")
    parser.add_argument("--data-path", default=None, help="folder of the real dataset (default under ../shared/data)")
    parser.add_argument("--store-preset", choices=("default", "tiny"), default="default",
                        help="synthetic store size preset (tiny: for tests)")
    parser.add_argument("--num-sessions", type=int, default=None, help="synthetic store sessions (preset's default)")
    parser.add_argument("--eval-fraction", type=float, default=0.1, help="synthetic sessions held out for eval")
    parser.add_argument("--max-train-samples", type=int, default=None)
    parser.add_argument("--max-eval-samples", type=int, default=None)
    parser.add_argument("--processor-path", default=None, help="reuse a saved processor instead of fitting one")
    parser.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument("--seed", type=int, default=42)


def resolve_data_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
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
    recipe = RECIPES[args.model]
    if args.dataset not in recipe.datasets:
        parser.error(f"--model {args.model} trains on {list(recipe.datasets)}, not {args.dataset!r}")
    if args.data_path is None:
        args.data_path = recipe.default_data_path.get(args.dataset)
    return args


RECIPES: dict[str, Recipe] = {
    "tagnn_pp": Recipe(
        pretrain=_next_item_task(),
        finetune={"next_item": _next_item_task()},
        datasets=("synthetic", "diginetica"),
        default_data_path={"diginetica": str(Path("..") / "shared" / "data" / "diginetica")},
    ),
}
"""``model_type`` -> :class:`Recipe`; one row per model family."""


__all__ = [
    "RECIPES",
    "PreparedData",
    "Recipe",
    "Task",
    "add_data_arguments",
    "expand_prefixes",
    "resolve_data_arguments",
]
