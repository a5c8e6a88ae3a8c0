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


def _synthetic_next_item(args: argparse.Namespace) -> tuple[Dataset, Dataset, list[str], str]:
    from .data.loaders import next_item_samples
    from .data.synthetic import SyntheticStore, SyntheticStoreConfig

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


def _diginetica_next_item(args: argparse.Namespace) -> tuple[Dataset, Dataset, list[str], str]:
    from .data.loaders import load_next_item_dataset, next_item_catalogue_ids

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
    from .auto import AutoModelForNextItemPrediction

    return Task(_prepare_tagnn_pp, AutoModelForNextItemPrediction, _next_item_ranks, _next_item_summarize)


# --- CERES: graph-conditioned masked LM pretraining and session retrieval ------------------------------------
#
# Pretraining (``--model ceres``): a WordPiece CeresProcessor is fitted on the catalogue text and the queries of
# the training sessions (or loaded from ``--processor-path``); batches are sessions, encoded by the processor and
# masked by CeresMaskingCollator; the loss is the model's MLM + graph-conditioned MLM loss. ``--pretrain-corpus
# products`` trains on one-product "sessions" (every catalogue product alone): with ``gmlm_loss_weight=0`` and
# ``use_gnn=False`` that is plain MLM on product text (the paper's Product-BERT baseline).
#
# Evaluation of pretraining: the masked-LM loss. Its per-example output is **one element per batch** (the
# batch's summed token cross-entropy and its masked-token count), so ``summarize`` gives the token-weighted mean
# over the eval set. Under several processes ``gather_for_metrics`` may trim the last, padded batch's values;
# the figures are then the mean over the batches kept.
#
# Fine-tuning (product_search, query_search, entity_linking; see models/ceres/tasks.py for the task builders):
# training batches rank the batch's targets (in-batch negatives, as in the paper). Evaluation ranks a FIXED
# candidate pool shared by every eval example: all distinct targets of the eval set (the paper's protocol),
# topped up to ``--num-candidates`` (default 100) with candidates drawn (seeded) from the task's universe (the
# catalogue for products; the training targets for queries and entities). Each example's ranks of its relevant
# candidates are padded with NaN to CERES_MAX_RELEVANT columns, so Trainer can concatenate them across batches;
# MAP@K and Recall@K (K = 1, 32, 64) follow from the ranks (metrics.map_at_k / recall_at_k, ties pessimistic).

CERES_MAX_RELEVANT = 16
"""Width of the per-example rank rows of the CERES retrieval tasks (most relevant candidates per example)."""
CERES_KS: tuple[int, ...] = (1, 32, 64)
_CATALOGUE_FIELDS = ("item_id", "title", "description", "category", "brand", "attributes")
_CERES_SOURCES: dict[tuple, tuple] = {}


def _ceres_text_session(session: dict) -> dict:
    """A session reduced to what CERES reads (image vectors dropped: CERES is text-only)."""
    events = [{**ev, "image": None} for ev in session["events"]]
    out = {"session_id": str(session["session_id"]), "events": events}
    if session.get("labels"):
        out["labels"] = session["labels"]
    return out


def _ceres_source(args: argparse.Namespace) -> tuple[list[dict], list[dict], dict[str, dict], str]:
    """``(train_sessions, eval_sessions, catalogue, description)``; the last ``eval_fraction`` sessions are held
    out. Cached per process (benchmarks call the trainers' ``main`` many times); callers must not mutate."""
    key = (args.dataset, args.data_path, args.store_preset, args.seed, args.num_sessions, args.eval_fraction)
    if key in _CERES_SOURCES:
        return _CERES_SOURCES[key]
    if args.dataset == "synthetic":
        from .data.synthetic import SyntheticStore, SyntheticStoreConfig

        base = SyntheticStoreConfig.tiny() if args.store_preset == "tiny" else SyntheticStoreConfig()
        cfg = dataclasses.replace(base, seed=args.seed, num_sessions=args.num_sessions or base.num_sessions)
        store = SyntheticStore(cfg)
        sessions = [_ceres_text_session(s) for s in store.iter_sessions(0, cfg.num_sessions)]
        records = store.catalogue
        what = f"synthetic store (seed {args.seed}, {cfg.num_sessions} sessions, {cfg.num_items} products)"
    elif args.dataset == "rees46":
        from .data.loaders import load_rees46

        session_ds, catalogue_ds = load_rees46(args.data_path)
        sessions = [_ceres_text_session(s) for s in session_ds]
        records = list(catalogue_ds)
        what = f"REES46 events {args.data_path} ({len(sessions)} sessions, {len(records)} products)"
    else:
        raise ValueError(f"CERES has no data source {args.dataset!r}")
    catalogue = {rec["item_id"]: {k: rec.get(k) for k in _CATALOGUE_FIELDS} for rec in records}
    from .models.ceres.tasks import _has_text_item

    sessions = [s for s in sessions if _has_text_item(s["events"])]
    n_eval = max(1, int(len(sessions) * args.eval_fraction))
    out = (
        sessions[:-n_eval],
        sessions[-n_eval:],
        catalogue,
        f"{what}; the last {n_eval} of {len(sessions)} text sessions held out",
    )
    _CERES_SOURCES[key] = out
    return out


def _ceres_label_attribute_names(sessions: list[dict]) -> set[str]:
    """Attribute names that appear only in labels (e.g. the synthetic store's visual ``pattern``)."""
    names = set()
    for s in sessions:
        for a in (s.get("labels") or {}).get("purchased_attributes") or []:
            names.add(a["name"])
    return names


def _ceres_processor(args: argparse.Namespace, train: list[dict], catalogue: dict[str, dict]):
    from .models.ceres import CeresProcessor
    from .models.ceres.processing_ceres import catalogue_attribute_names, iter_corpus

    if args.processor_path:
        return CeresProcessor.from_pretrained(args.processor_path)
    names = set(catalogue_attribute_names(catalogue)) | _ceres_label_attribute_names(train)
    return CeresProcessor.train_tokenizer(iter_corpus(train, catalogue), attribute_names=sorted(names))


def _ceres_config(args: argparse.Namespace, processor):
    from .models.ceres import CeresConfig

    overrides = {"max_session_items": processor.max_session_items, **args.config_overrides}
    return CeresConfig(
        vocab_size=len(processor.tokenizer), pad_token_id=processor.tokenizer.pad_token_id, **overrides
    )


def _ceres_rows(sessions: list[dict]) -> Dataset:
    return Dataset.from_list([{"session_id": s["session_id"], "events": s["events"]} for s in sessions])


def _prepare_ceres_pretrain(args: argparse.Namespace) -> PreparedData:
    from .models.ceres import CeresMaskingCollator

    train, evaluation, catalogue, description = _ceres_source(args)
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
    return PreparedData(processor, _ceres_rows(train), _ceres_rows(evaluation), collate, config, description)


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
    from .models.ceres import tasks

    if task == "product_search":
        return tasks.product_search_examples(sessions)
    if task == "query_search":
        return tasks.query_search_examples(sessions)
    return tasks.entity_linking_examples(sessions, catalogue)


def _ceres_universe(task: str, train_examples: list[dict], catalogue: dict[str, dict]) -> list[dict]:
    """Candidates to top the eval pool up from: the catalogue (products), else the training targets."""
    if task == "product_search":
        return [{"item_id": i} for i in catalogue]
    from .models.ceres.tasks import candidate_pool

    return candidate_pool(train_examples)


class CeresRetrievalTaskCollator:
    """Rows ``{"session_id", "events", "targets"[, "evaluate"]}`` -> CeresForSessionRetrieval inputs.

    Training rows: candidates are the batch's targets (in-batch negatives). Rows with ``evaluate`` set: the
    candidates are the fixed eval ``pool`` (the same for every batch) and ``labels`` ``(B, len(pool))``.
    """

    def __init__(self, processor, catalogue: dict[str, dict], pool: list[dict]):
        from .models.ceres.processing_ceres import candidate_key

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
    import random

    from .models.ceres.processing_ceres import candidate_key
    from .models.ceres.tasks import candidate_pool

    train_sessions, eval_sessions, catalogue, description = _ceres_source(args)
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
    pool = candidate_pool(evaluation)
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
    return PreparedData(processor, train_ds, eval_ds, collate, config, description)


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
    from .auto import AutoModelForSessionRetrieval

    return Task(
        lambda args: _prepare_ceres_retrieval(task, args),
        AutoModelForSessionRetrieval,
        _ceres_ranks,
        _ceres_retrieval_summarize,
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
        "--eval-fraction", type=float, default=0.1, help="synthetic sessions held out for eval"
    )
    parser.add_argument("--max-train-samples", type=int, default=None)
    parser.add_argument("--max-eval-samples", type=int, default=None)
    parser.add_argument(
        "--processor-path", default=None, help="reuse a saved processor instead of fitting one"
    )
    parser.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--num-candidates",
        type=int,
        default=100,
        help="CERES retrieval eval: candidate pool size (all eval targets, topped up to this)",
    )
    parser.add_argument(
        "--pretrain-corpus",
        choices=("sessions", "products"),
        default="sessions",
        help="CERES pretraining on sessions, or on each product alone (Product-BERT)",
    )


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
    "ceres": Recipe(
        pretrain=_ceres_pretrain_task(),
        finetune={t: _ceres_retrieval_task(t) for t in ("product_search", "query_search", "entity_linking")},
        datasets=("synthetic", "rees46"),
        default_data_path={"rees46": str(Path("..") / "shared" / "data" / "rees46")},
    ),
}
"""``model_type`` -> :class:`Recipe`; one row per model family."""


__all__ = [
    "CERES_MAX_RELEVANT",
    "RECIPES",
    "CeresPretrainTask",
    "CeresRetrievalTaskCollator",
    "PreparedData",
    "Recipe",
    "Task",
    "add_data_arguments",
    "resolve_data_arguments",
]
