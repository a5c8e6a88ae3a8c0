"""TAGNN++'s training recipe: next-item prediction on the synthetic store or on Diginetica (SR-GNN protocol).

Pretraining and fine-tuning are the same task here (TAGNN++ is trained end to end on next-item prediction);
evaluation ranks the whole catalogue and reports HR@K and MRR@K (K = 10, 20), ties pessimistic.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset

from ... import metrics
from ...data.schema import session_item_ids
from ...trainer_utils import PreparedData, Recipe, Task


def synthetic_next_item(args: argparse.Namespace) -> tuple[Dataset, Dataset, list[str], str]:
    from ...data.loaders import next_item_samples
    from ...data.synthetic import SyntheticStore, SyntheticStoreConfig

    base = SyntheticStoreConfig.tiny() if args.store_preset == "tiny" else SyntheticStoreConfig()
    cfg = dataclasses.replace(base, seed=args.seed, num_sessions=args.num_sessions or base.num_sessions)
    store = SyntheticStore(cfg)
    seqs = [session_item_ids(s) for s in store.iter_sessions(0, cfg.num_sessions)]
    n_eval = max(1, int(len(seqs) * args.eval_fraction))
    train_seqs, eval_seqs = seqs[:-n_eval], seqs[-n_eval:]
    # Sessions, not prefixes, are split, so no session has prefixes on both sides.
    train = next_item_samples(train_seqs)
    evaluation = next_item_samples(eval_seqs)
    return (
        train,
        evaluation,
        list(store.item_ids),
        (
            f"synthetic store (seed {args.seed}, {cfg.num_sessions} sessions; last {n_eval} sessions held out, "
            f"every prefix of each as a sample)"
        ),
    )


def diginetica_next_item(args: argparse.Namespace) -> tuple[Dataset, Dataset, list[str], str]:
    from ...data.loaders import load_next_item_dataset, next_item_catalogue_ids

    train = load_next_item_dataset(args.data_path, split="train")
    test = load_next_item_dataset(args.data_path, split="test")
    if args.max_train_samples:
        train = train.select(range(min(args.max_train_samples, len(train))))
    if args.max_eval_samples:
        test = test.select(range(min(args.max_eval_samples, len(test))))
    return (
        train,
        test,
        list(next_item_catalogue_ids(args.data_path)),
        f"{args.data_path} (SR-GNN protocol: train prefixes, test.tsv, full catalogue)",
    )


def _prepare_tagnn_pp(args: argparse.Namespace) -> PreparedData:
    from . import TagnnPPConfig, TagnnPPProcessor

    source = {"synthetic": synthetic_next_item, "diginetica": diginetica_next_item}[args.dataset]
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


def _next_item_summarize(
    gathered: dict[str, torch.Tensor], ks: tuple[int, ...] = (10, 20)
) -> dict[str, float]:
    ranks = gathered["rank"]
    out: dict[str, float] = {"num_samples": float(ranks.numel())}
    for k in ks:
        out[f"HR@{k}"] = 100.0 * metrics.hit_rate_from_ranks(ranks, k)
        out[f"MRR@{k}"] = 100.0 * metrics.mrr_from_ranks(ranks, k)
    return out


def _next_item_task() -> Task:
    from ...auto import AutoModelForNextItemPrediction

    return Task(_prepare_tagnn_pp, AutoModelForNextItemPrediction, _next_item_ranks, _next_item_summarize)


RECIPE = Recipe(
    pretrain=_next_item_task(),
    finetune={"next_item": _next_item_task()},
    datasets=("synthetic", "diginetica"),
    default_data_path={"diginetica": str(Path("..") / "shared" / "data" / "diginetica")},
)
"""``trainers/pretrain.py --model tagnn_pp`` and ``trainers/finetune.py --model tagnn_pp --task next_item``."""

__all__ = ["RECIPE", "diginetica_next_item", "synthetic_next_item"]
