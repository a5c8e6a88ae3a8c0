"""CERES's training recipe: graph-conditioned masked-LM pretraining and the three retrieval tasks.

Data: the synthetic store (default) or REES46 sessions (products only, so no query search), reduced to text
(image vectors dropped: CERES is text-only); the last ``--eval-fraction`` of the sessions is held out.

Pretraining (``--model ceres``): a WordPiece CeresProcessor is fitted on the catalogue text and the queries of
the training sessions (or loaded from ``--processor-path``; or, with ``--item-encoder-from PATH``, the BERT
checkpoint's tokenizer plus the CERES special tokens, its encoder sizes and its weights); batches are sessions, encoded by the processor and
masked by CeresMaskingCollator; the loss is the model's MLM + graph-conditioned MLM loss. ``--pretrain-corpus
products`` trains on one-product "sessions" (every catalogue product alone): with ``gmlm_loss_weight=0`` and
``use_gnn=False`` that is plain MLM on product text (the paper's Product-BERT baseline).

Evaluation of pretraining: the masked-LM loss. Its per-example output is **one element per batch** (the
batch's summed token cross-entropy and its masked-token count), so ``summarize`` gives the token-weighted mean
over the eval set. Under several processes ``gather_for_metrics`` may trim the last, padded batch's values;
the figures are then the mean over the batches kept.

Fine-tuning (product_search, query_search, entity_linking; see models/ceres/tasks.py for the task builders):
training batches rank the batch's targets (in-batch negatives, as in the paper). Evaluation ranks a FIXED
candidate pool shared by every eval example: all distinct targets of the eval set (the paper's protocol),
topped up to ``--num-candidates`` (default 100) with candidates drawn (seeded) from the task's universe (the
catalogue for products; the training targets for queries and entities). Each example's ranks of its relevant
candidates are padded with NaN to CERES_MAX_RELEVANT columns, so Trainer can concatenate them across batches;
MAP@K and Recall@K (K = 1, 32, 64) follow from the ranks (metrics.map_at_k / recall_at_k, ties pessimistic).
"""

from __future__ import annotations

import argparse
import dataclasses
import random
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from transformers import AutoConfig

from ... import metrics
from ...trainer_utils import PreparedData, Recipe, Task
from . import tasks
from .configuration_ceres import CeresConfig
from .processing_ceres import (
    CeresMaskingCollator,
    CeresProcessor,
    candidate_key,
    catalogue_attribute_names,
    iter_corpus,
)

CERES_MAX_RELEVANT = 16
"""Width of the per-example rank rows of the CERES retrieval tasks (most relevant candidates per example)."""
CERES_KS: tuple[int, ...] = (1, 32, 64)
_CATALOGUE_FIELDS = ("item_id", "title", "description", "category", "brand", "attributes")
_CERES_SOURCES: dict[tuple, tuple] = {}


def text_session(session: dict) -> dict:
    """A session reduced to what CERES reads (image vectors dropped: CERES is text-only)."""
    events = [{**ev, "image": None} for ev in session["events"]]
    out = {"session_id": str(session["session_id"]), "events": events}
    if session.get("labels"):
        out["labels"] = session["labels"]
    return out


def ceres_source(args: argparse.Namespace) -> tuple[list[dict], list[dict], dict[str, dict], str]:
    """``(train_sessions, eval_sessions, catalogue, description)``; the last ``eval_fraction`` sessions are held
    out. Cached per process (benchmarks call the trainers' ``main`` many times); callers must not mutate."""
    key = (args.dataset, args.data_path, args.store_preset, args.seed, args.num_sessions, args.eval_fraction)
    if key in _CERES_SOURCES:
        return _CERES_SOURCES[key]
    if args.dataset == "synthetic":
        from ...data.synthetic import SyntheticStore, SyntheticStoreConfig

        base = SyntheticStoreConfig.tiny() if args.store_preset == "tiny" else SyntheticStoreConfig()
        cfg = dataclasses.replace(base, seed=args.seed, num_sessions=args.num_sessions or base.num_sessions)
        store = SyntheticStore(cfg)
        sessions = [text_session(s) for s in store.iter_sessions(0, cfg.num_sessions)]
        records = store.catalogue
        what = f"synthetic store (seed {args.seed}, {cfg.num_sessions} sessions, {cfg.num_items} products)"
    elif args.dataset == "rees46":
        from ...data.loaders import load_rees46

        session_ds, catalogue_ds = load_rees46(args.data_path)
        sessions = [text_session(s) for s in session_ds]
        records = list(catalogue_ds)
        what = f"REES46 events {args.data_path} ({len(sessions)} sessions, {len(records)} products)"
    else:
        raise ValueError(f"CERES has no data source {args.dataset!r}")
    catalogue = {rec["item_id"]: {k: rec.get(k) for k in _CATALOGUE_FIELDS} for rec in records}
    sessions = [s for s in sessions if tasks._has_text_item(s["events"])]
    n_eval = max(1, int(len(sessions) * args.eval_fraction))
    out = (
        sessions[:-n_eval],
        sessions[-n_eval:],
        catalogue,
        f"{what}; the last {n_eval} of {len(sessions)} text sessions held out",
    )
    _CERES_SOURCES[key] = out
    return out


def label_attribute_names(sessions: list[dict]) -> set[str]:
    """Attribute names that appear only in labels (e.g. the synthetic store's visual ``pattern``)."""
    names = set()
    for s in sessions:
        for a in (s.get("labels") or {}).get("purchased_attributes") or []:
            names.add(a["name"])
    return names


def _ceres_processor(args: argparse.Namespace, train: list[dict], catalogue: dict[str, dict]):
    if args.processor_path:
        return CeresProcessor.from_pretrained(args.processor_path)
    names = sorted(set(catalogue_attribute_names(catalogue)) | label_attribute_names(train))
    if getattr(args, "item_encoder_from", None):
        return CeresProcessor.from_bert_tokenizer(args.item_encoder_from, attribute_names=names)
    return CeresProcessor.train_tokenizer(iter_corpus(train, catalogue), attribute_names=names)


def _ceres_config(args: argparse.Namespace, processor) -> CeresConfig:
    overrides = {
        "max_session_items": processor.max_session_items,
        "vocab_size": len(processor.tokenizer),
        "pad_token_id": processor.tokenizer.pad_token_id,
        **args.config_overrides,
    }
    if getattr(args, "item_encoder_from", None):
        return CeresConfig.from_bert_config(AutoConfig.from_pretrained(args.item_encoder_from), **overrides)
    return CeresConfig(**overrides)


def _bert_initializer(args: argparse.Namespace):
    """``PreparedData.init_weights`` for ``--item-encoder-from``: load the BERT weights into the item encoder."""
    path = getattr(args, "item_encoder_from", None)
    if not path:
        return None

    def init_weights(model) -> None:
        report = model.base_model.load_item_encoder_from_bert(path)
        print(f"item encoder initialised from {path}: {len(report['loaded'])} tensors loaded")

    return init_weights


def _ceres_rows(sessions: list[dict]) -> Dataset:
    return Dataset.from_list([{"session_id": s["session_id"], "events": s["events"]} for s in sessions])


def _prepare_ceres_pretrain(args: argparse.Namespace) -> PreparedData:
    train, evaluation, catalogue, description = ceres_source(args)
    processor = _ceres_processor(args, train, catalogue)
    config = _ceres_config(args, processor)
    if getattr(args, "pretrain_corpus", "sessions") == "products":
        # Product-BERT corpus: every catalogue product alone, as a one-view session.
        train = [
            {
                "session_id": f"product-{i}",
                "events": [
                    {
                        "action": "view",
                        "timestamp": 0.0,
                        "subject": "item",
                        "item_id": i,
                        "query": None,
                        "image": None,
                    }
                ],
            }
            for i in catalogue
        ]
        description += "; pretraining corpus: each catalogue product alone (product text only)"
    if args.max_train_samples:
        train = train[: args.max_train_samples]
    if args.max_eval_samples:
        evaluation = evaluation[: args.max_eval_samples]
    collate = CeresMaskingCollator(processor, catalogue, config)
    return PreparedData(
        processor,
        _ceres_rows(train),
        _ceres_rows(evaluation),
        collate,
        config,
        description,
        init_weights=_bert_initializer(args),
    )


class CeresPretrainTask(Task):
    """CERES pretraining: its output has no ``logits``, so the eval step reads the masked-position logits."""

    def eval_step(self, model: torch.nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        labels = batch[self.label_names[0]]
        out = model(**batch)
        return self.per_example((out.mlm_logits, out.gmlm_logits), labels)


def _ceres_mlm_per_batch(logits: Any, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per batch (1 element each): summed token cross-entropy and hits of both heads, and the masked count.

    ``logits`` = ``(mlm_logits, gmlm_logits, ...)``, each ``(M, V)`` at the ``M`` labelled positions.
    """
    target = labels[labels != -100]
    out = {"num_masked": torch.tensor([float(target.numel())], device=labels.device)}
    for name, lg in zip(("mlm", "gmlm"), logits[:2], strict=True):
        if target.numel():
            loss = torch.nn.functional.cross_entropy(lg.float(), target, reduction="sum")
            hits = (lg.argmax(-1) == target).sum().float()
        else:
            loss = hits = lg.new_zeros(())
        out[f"{name}_loss_sum"] = loss.detach().reshape(1)
        out[f"{name}_correct"] = hits.reshape(1).float()
    return out


def _ceres_mlm_summarize(gathered: dict[str, torch.Tensor]) -> dict[str, float]:
    n = float(gathered["num_masked"].sum())
    out = {"num_masked_tokens": n}
    for name in ("mlm", "gmlm"):
        out[f"{name}_loss"] = float(gathered[f"{name}_loss_sum"].sum()) / max(n, 1.0)
        out[f"{name}_accuracy"] = 100.0 * float(gathered[f"{name}_correct"].sum()) / max(n, 1.0)
    out["loss"] = out["mlm_loss"] + out["gmlm_loss"]
    return out


def _ceres_examples(task: str, sessions: list[dict], catalogue: dict[str, dict]) -> list[dict]:
    if task == "product_search":
        return tasks.product_search_examples(sessions)
    if task == "query_search":
        return tasks.query_search_examples(sessions)
    return tasks.entity_linking_examples(sessions, catalogue)


def _ceres_universe(task: str, train_examples: list[dict], catalogue: dict[str, dict]) -> list[dict]:
    """Candidates to top the eval pool up from: the catalogue (products), else the training targets."""
    if task == "product_search":
        return [{"item_id": i} for i in catalogue]
    return tasks.candidate_pool(train_examples)


class CeresRetrievalTaskCollator:
    """Rows ``{"session_id", "events", "targets"[, "evaluate"]}`` -> CeresForSessionRetrieval inputs.

    Training rows: candidates are the batch's targets (in-batch negatives). Rows with ``evaluate`` set: the
    candidates are the fixed eval ``pool`` (the same for every batch) and ``labels`` ``(B, len(pool))``.
    """

    def __init__(self, processor, catalogue: dict[str, dict], pool: list[dict]):
        self.processor, self.catalogue, self.pool = processor, catalogue, pool
        self._key = candidate_key
        self._index = {candidate_key(c): i for i, c in enumerate(pool)}
        self._pool_inputs = None

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        sessions = [{"session_id": r["session_id"], "events": r["events"]} for r in rows]
        targets = [[{k: v for k, v in t.items() if v is not None} for t in r["targets"]] for r in rows]
        if not rows[0].get("evaluate"):
            return dict(self.processor(sessions, self.catalogue, targets=targets))
        if self._pool_inputs is None:
            self._pool_inputs = dict(self.processor.encode_candidates(self.pool, self.catalogue))
        labels = torch.zeros(len(rows), len(self.pool))
        for b, specs in enumerate(targets):
            for spec in specs:
                labels[b, self._index[self._key(spec)]] = 1.0
        return {**self.processor(sessions, self.catalogue), **self._pool_inputs, "labels": labels}


def _prepare_ceres_retrieval(task: str, args: argparse.Namespace) -> PreparedData:
    train_sessions, eval_sessions, catalogue, description = ceres_source(args)
    processor = _ceres_processor(args, train_sessions, catalogue)
    config = _ceres_config(args, processor)
    train, evaluation = (_ceres_examples(task, s, catalogue) for s in (train_sessions, eval_sessions))
    if (
        task == "entity_linking"
    ):  # entities whose attribute the tokenizer has no [ATTRTYPE] token for are dropped

        def known(spec):
            return processor._marker(spec["attribute"]) is not None

        processor.on_unknown_attribute, saved = "skip", processor.on_unknown_attribute
        train, evaluation = (
            [{**ex, "targets": [t for t in ex["targets"] if known(t)]} for ex in part]
            for part in (train, evaluation)
        )
        processor.on_unknown_attribute = saved
        train, evaluation = [ex for ex in train if ex["targets"]], [ex for ex in evaluation if ex["targets"]]
    if not train or not evaluation:
        raise ValueError(
            f"{args.dataset} gives {len(train)} train / {len(evaluation)} eval {task} examples"
            + (" (its sessions have no queries)" if task == "query_search" else "")
        )
    universe = _ceres_universe(
        task, train, catalogue
    )  # before any cut, so the pool ignores --max-train-samples
    if args.max_train_samples:
        train = train[: args.max_train_samples]
    if args.max_eval_samples:
        evaluation = evaluation[: args.max_eval_samples]
    widest = max(len(ex["targets"]) for ex in train + evaluation)
    if widest > CERES_MAX_RELEVANT:
        raise ValueError(f"an example has {widest} relevant candidates, more than {CERES_MAX_RELEVANT}")
    pool = tasks.candidate_pool(evaluation)
    n_targets = len(pool)
    num_candidates = getattr(args, "num_candidates", 100)
    in_pool = {candidate_key(p) for p in pool}
    extra = [c for c in universe if candidate_key(c) not in in_pool]
    random.Random(args.seed).shuffle(extra)
    pool += extra[: max(0, num_candidates - len(pool))]
    description += (
        f"; {task}: {len(train)} train / {len(evaluation)} eval examples; eval pool of {len(pool)} "
        f"candidates ({n_targets} distinct eval targets + {len(pool) - n_targets} sampled)"
    )
    train_ds = Dataset.from_list([{k: ex[k] for k in ("session_id", "events", "targets")} for ex in train])
    eval_ds = Dataset.from_list(
        [{**{k: ex[k] for k in ("session_id", "events", "targets")}, "evaluate": True} for ex in evaluation]
    )
    collate = CeresRetrievalTaskCollator(processor, catalogue, pool)
    return PreparedData(
        processor, train_ds, eval_ds, collate, config, description, init_weights=_bert_initializer(args)
    )


def _ceres_ranks(logits: Any, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Ranks (1 = best) of each example's relevant candidates among its candidates, ``(B, CERES_MAX_RELEVANT)``
    padded with NaN, and the size of the pool each example was ranked in. ``labels`` ``(B, C)``: 1 relevant,
    0 other candidate, -1 (optional) not a candidate of this example."""
    logits = logits[0] if isinstance(logits, tuple | list) else logits
    labels = labels.to(logits.device)
    exclude = labels < 0
    ranks = metrics.ranks_from_scores(
        logits.float(),
        labels > 0,
        exclude=exclude if bool(exclude.any()) else None,
        max_relevant=CERES_MAX_RELEVANT,
    )
    return {"ranks": ranks, "pool_size": (~exclude).sum(1).float()}


def _ceres_retrieval_summarize(gathered: dict[str, torch.Tensor]) -> dict[str, float]:
    ranks = gathered["ranks"].float()
    out = {"num_samples": float(ranks.shape[0]), "pool_size": float(gathered["pool_size"].float().mean())}
    for k in CERES_KS:
        out[f"MAP@{k}"] = 100.0 * float(metrics.map_at_k(ranks=ranks, k=k))
        out[f"Recall@{k}"] = 100.0 * float(metrics.recall_at_k(ranks=ranks, k=k))
    return out


def _ceres_pretrain_task() -> Task:
    from transformers import AutoModelForPreTraining

    return CeresPretrainTask(
        _prepare_ceres_pretrain, AutoModelForPreTraining, _ceres_mlm_per_batch, _ceres_mlm_summarize
    )


def _ceres_retrieval_task(task: str) -> Task:
    from ...auto import AutoModelForSessionRetrieval

    return Task(
        lambda args: _prepare_ceres_retrieval(task, args),
        AutoModelForSessionRetrieval,
        _ceres_ranks,
        _ceres_retrieval_summarize,
    )


RECIPE = Recipe(
    pretrain=_ceres_pretrain_task(),
    finetune={t: _ceres_retrieval_task(t) for t in ("product_search", "query_search", "entity_linking")},
    datasets=("synthetic", "rees46"),
    default_data_path={"rees46": str(Path("..") / "shared" / "data" / "rees46")},
)
"""``trainers/pretrain.py --model ceres`` and ``trainers/finetune.py --model ceres --task <task>``."""

__all__ = [
    "CERES_KS",
    "CERES_MAX_RELEVANT",
    "RECIPE",
    "CeresPretrainTask",
    "CeresRetrievalTaskCollator",
    "ceres_source",
    "label_attribute_names",
    "text_session",
]
