"""The toy family's training recipe: next-item prediction on the synthetic store (every prefix of a session with
its next item), split by session; evaluation ranks the whole catalogue (HR@K, MRR@K)."""

from __future__ import annotations

import argparse
import dataclasses

import torch

from session_transformers import metrics
from session_transformers.auto import AutoModelForNextItemPrediction
from session_transformers.protocol import TrainingProtocol
from session_transformers.trainer_utils import (
    PreparedData,
    QuickstartJob,
    Recipe,
    Task,
    first_n,
    split_sizes,
    validation_limit,
)

from .configuration_toy import ToyConfig
from .processing_toy import ToyProcessor


def prepare(args: argparse.Namespace) -> PreparedData:
    """Next-item samples of the synthetic store; the store's products are the vocabulary."""
    from session_transformers.data.loaders import next_item_samples
    from session_transformers.data.schema import session_item_ids
    from session_transformers.data.synthetic import SyntheticStore, SyntheticStoreConfig

    base = SyntheticStoreConfig.tiny() if args.store_preset == "tiny" else SyntheticStoreConfig()
    store_config = dataclasses.replace(
        base, seed=args.seed, num_sessions=args.num_sessions or base.num_sessions
    )
    store = SyntheticStore(store_config)
    sequences = [session_item_ids(s) for s in store.iter_sessions(0, store_config.num_sessions)]
    n_val, n_test = split_sizes(len(sequences), args.eval_fraction, args.validation_fraction)
    n_train = len(sequences) - n_val - n_test
    train = first_n(next_item_samples(sequences[:n_train]), args.max_train_samples)
    validation = next_item_samples(sequences[n_train : n_train + n_val]) if n_val else None
    validation = first_n(validation, validation_limit(args))
    test = first_n(next_item_samples(sequences[-n_test:]), args.max_eval_samples)
    if args.processor_path:
        processor = ToyProcessor.from_pretrained(args.processor_path)
    else:
        processor = ToyProcessor(item_vocab=sorted(store.item_ids))
    config = ToyConfig(num_items=processor.num_items, **args.config_overrides)
    return PreparedData(
        processor,
        train,
        validation,
        processor.collate,
        config,
        f"synthetic store (seed {args.seed}), toy family",
        test_dataset=test,
    )


def _ranks(logits, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    logits = logits[0] if isinstance(logits, tuple) else logits
    return {"rank": metrics.rank_of_target(logits, labels)}


def _summarize(gathered: dict[str, torch.Tensor]) -> dict[str, float]:
    ranks = gathered["rank"]
    out = {"num_samples": float(ranks.numel())}
    for k in (10, 20):
        out[f"HR@{k}"] = 100.0 * metrics.hit_rate_from_ranks(ranks, k)
        out[f"MRR@{k}"] = 100.0 * metrics.mrr_from_ranks(ranks, k)
    return out


def _task() -> Task:
    return Task(prepare, AutoModelForNextItemPrediction, _ranks, _summarize)


PROTOCOL = TrainingProtocol(learning_rate=1e-2, batch_size=16, num_epochs=1.0, source="the toy family's own")

QUICKSTART = QuickstartJob(
    pretrain_stages=(("--num-sessions", "400", "--max-steps", "20"),),
    finetune_task="next_item",
    finetune_args=("--num-sessions", "400", "--max-steps", "10"),
    metrics=("HR@20", "MRR@20"),
)

RECIPE = Recipe(pretrain=_task(), finetune={"next_item": _task()}, protocol=PROTOCOL, quickstart=QUICKSTART)
"""``trainers/pretrain.py --model toy`` and ``trainers/finetune.py --model toy --task next_item``."""

__all__ = ["PROTOCOL", "QUICKSTART", "RECIPE", "prepare"]
