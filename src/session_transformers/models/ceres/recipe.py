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
the figures are then the mean over the batches kept. Eval masks are fixed: eval rows carry ``evaluate`` and
are masked by a CeresMaskingCollator with a ``seed`` (each batch's masks are a function of the seed and its
session ids), so two evaluations of the same weights give the same loss, and evaluating draws nothing from the
global RNG that the training masks come from. ``PreparedData.eval_collate_fn`` is that eval collator.

Fine-tuning (product_search, query_search, entity_linking; see models/ceres/tasks.py for the task builders):
training batches rank the batch's targets (in-batch negatives, as in the paper). Evaluation ranks a FIXED
candidate pool shared by every eval example, chosen by ``--eval-pool``:

- ``paper`` (default), the CERES paper's protocol (Section 4.1):

  - product search: every purchased product of the eval set plus the first 10 products the search engine
    returned for each search of those sessions (hard negatives). The synthetic store's sessions get the result
    lists of their searches from the store's own search engine (:func:`synthetic_search_results`: re-running
    its deterministic retrieval gives exactly the lists the shopper browsed). REES46 has no search results: the
    pool falls back to the purchased products topped up to ``--num-candidates`` with catalogue products drawn
    with ``--seed``, and the run description says so;
  - query search: all last queries of the eval set (the paper's pool; no search engine is involved);
  - entity linking: every possible product attribute ("60K possible product attributes" in the paper): the
    entities of every catalogue product (brand, category leaf, named attributes) plus every entity of the
    training and eval labels (e.g. the synthetic store's visual ``pattern``, found in no text field), those the
    tokenizer has an ``[ATTRTYPE]`` token for;

- ``random``: all distinct targets of the eval set topped up to ``--num-candidates`` (default 100) with
  candidates drawn (seeded) from the task's universe (the catalogue for products; the training targets for
  queries and entities).

The eval batches carry the pool once tokenised (``candidate_pool``, a CeresCandidatePool); the model embeds it
once per evaluation and reuses it for every batch (CeresForSessionRetrieval.embed_candidate_pool). Each
example's ranks of its relevant candidates are padded with NaN to CERES_MAX_RELEVANT columns, so Trainer can
concatenate them across batches. Metrics (K = 1, 32, 64, ties pessimistic, in percent): ``MAP@K``
(metrics.map_at_k), ``Recall@K``, the paper's: the share of sessions whose relevant items are all in the top K
(metrics.session_recall_at_k), and ``ItemRecall@K``, the share of relevant items in the top K
(metrics.recall_at_k). With one relevant candidate per session (product and query search) the two recalls are
equal. :func:`evaluate_retrieval` runs this same evaluation outside the trainers.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from transformers import AutoConfig

from ... import metrics
from ...data.schema import QUERY_SUBJECTS
from ...trainer_utils import PreparedData, Recipe, Task
from . import tasks
from .configuration_ceres import CeresConfig
from .modeling_ceres import CeresCandidatePool
from .processing_ceres import (
    CeresMaskingCollator,
    CeresProcessor,
    _as_catalogue,
    attribute_token,
    candidate_key,
    catalogue_attribute_names,
    iter_corpus,
)

CERES_MAX_RELEVANT = 16
"""Width of the per-example rank rows of the CERES retrieval tasks (most relevant candidates per example)."""
CERES_KS: tuple[int, ...] = (1, 32, 64)
EVAL_POOLS: tuple[str, ...] = ("paper", "random")
"""``--eval-pool`` choices (see the module docstring)."""
PAPER_SEARCH_RESULTS = 10
"""Search-engine results per search that join the paper's product-search pool ("the first 10 products")."""
_CATALOGUE_FIELDS = ("item_id", "title", "description", "category", "brand", "attributes")
_CERES_SOURCES: dict[tuple, tuple] = {}


def text_session(session: dict, search_results: list[list[str]] | None = None) -> dict:
    """A session reduced to what CERES reads (image vectors dropped: CERES is text-only), with the result lists
    its searches got from the search engine (``search_results``, one list per search event) when known."""
    events = [{**ev, "image": None} for ev in session["events"]]
    out = {"session_id": str(session["session_id"]), "events": events}
    if session.get("labels"):
        out["labels"] = session["labels"]
    if search_results is not None:
        out["search_results"] = search_results
    return out


def synthetic_search_results(store, session: dict) -> list[list[str]]:
    """The first :data:`PAPER_SEARCH_RESULTS` product ids the synthetic store's search engine returned for each
    search event of a raw ``session`` (with its image vectors), in event order.

    Session records do not store result lists, but the store's retrieval is deterministic: ``store.search`` on
    a keyword or product query's words and ``store.search_image`` on an image query's vector return exactly the
    list the shopper browsed when the session was generated.
    """
    out = []
    for ev in session["events"]:
        if ev["action"] != "search":
            continue
        if ev["subject"] in QUERY_SUBJECTS and ev.get("query"):
            found = store.search(ev["query"].split())
        elif ev.get("image") is not None:
            found = store.search_image(np.asarray(ev["image"], dtype=np.float32))
        else:
            continue
        out.append([store.item_ids[k] for k in list(found)[:PAPER_SEARCH_RESULTS]])
    return out


def ceres_source(args: argparse.Namespace) -> tuple[list[dict], list[dict], dict[str, dict], str]:
    """``(train_sessions, eval_sessions, catalogue, description)``; the last ``eval_fraction`` sessions are held
    out. Synthetic sessions carry their ``search_results`` (:func:`synthetic_search_results`); REES46 ones have
    none. Cached per process (benchmarks call the trainers' ``main`` many times); callers must not mutate."""
    key = (args.dataset, args.data_path, args.store_preset, args.seed, args.num_sessions, args.eval_fraction)
    if key in _CERES_SOURCES:
        return _CERES_SOURCES[key]
    if args.dataset == "synthetic":
        from ...data.synthetic import SyntheticStore, SyntheticStoreConfig

        base = SyntheticStoreConfig.tiny() if args.store_preset == "tiny" else SyntheticStoreConfig()
        cfg = dataclasses.replace(base, seed=args.seed, num_sessions=args.num_sessions or base.num_sessions)
        store = SyntheticStore(cfg)
        sessions = [
            text_session(s, synthetic_search_results(store, s))
            for s in store.iter_sessions(0, cfg.num_sessions)
        ]
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


def _ceres_rows(sessions: list[dict], evaluate: bool = False) -> Dataset:
    rows = [{"session_id": s["session_id"], "events": s["events"]} for s in sessions]
    return Dataset.from_list([{**r, "evaluate": True} for r in rows] if evaluate else rows)


class CeresPretrainCollator:
    """Pretraining rows -> masked batches: training rows through ``train`` (masks from the global RNG, which
    Accelerate checkpoints), rows with ``evaluate`` set through ``evaluation`` (fixed masks: a
    CeresMaskingCollator with a ``seed``), so one ``collate_fn`` serves both loaders."""

    def __init__(self, train: CeresMaskingCollator, evaluation: CeresMaskingCollator):
        self.train, self.evaluation = train, evaluation

    def __call__(self, rows: list[dict]):
        return (self.evaluation if rows and rows[0].get("evaluate") else self.train)(rows)


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
    eval_collate = CeresMaskingCollator(processor, catalogue, config, seed=args.seed)
    collate = CeresPretrainCollator(CeresMaskingCollator(processor, catalogue, config), eval_collate)
    return PreparedData(
        processor,
        _ceres_rows(train),
        _ceres_rows(evaluation, evaluate=True),
        collate,
        config,
        description,
        init_weights=_bert_initializer(args),
        eval_collate_fn=eval_collate,
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
    candidates are the fixed eval ``pool`` (the same for every batch), given as ``candidate_pool`` (a
    :class:`CeresCandidatePool` tokenised once, that the model embeds once per evaluation), and ``labels``
    ``(B, len(pool))``.
    """

    def __init__(self, processor, catalogue: dict[str, dict], pool: list[dict], chunk_size: int = 256):
        self.processor, self.catalogue, self.pool = processor, catalogue, pool
        self.chunk_size = chunk_size
        self._key = candidate_key
        self._index = {candidate_key(c): i for i, c in enumerate(pool)}
        self._candidate_pool: CeresCandidatePool | None = None

    @property
    def candidate_pool(self) -> CeresCandidatePool:
        """The pool tokenised once (on first use), what every eval batch carries."""
        if self._candidate_pool is None:
            inputs = self.processor.encode_candidates(self.pool, self.catalogue)
            self._candidate_pool = CeresCandidatePool.from_inputs(inputs, chunk_size=self.chunk_size)
        return self._candidate_pool

    def __call__(self, rows: list[dict]) -> dict[str, Any]:
        sessions = [{"session_id": r["session_id"], "events": r["events"]} for r in rows]
        targets = [[{k: v for k, v in t.items() if v is not None} for t in r["targets"]] for r in rows]
        if not rows[0].get("evaluate"):
            return dict(self.processor(sessions, self.catalogue, targets=targets))
        labels = torch.zeros(len(rows), len(self.pool))
        for b, specs in enumerate(targets):
            for spec in specs:
                column = self._index.get(self._key(spec))
                if column is None:
                    raise ValueError(
                        f"target {spec!r} of session {sessions[b]['session_id']!r} is not in the eval pool"
                    )
                labels[b, column] = 1.0
        return {
            **self.processor(sessions, self.catalogue),
            "candidate_pool": self.candidate_pool,
            "labels": labels,
        }


def _known_entity(processor, spec: dict) -> bool:
    """Whether the tokenizer has the ``[ATTRTYPE]`` token of an entity's attribute."""
    try:
        return processor._token_id(attribute_token(spec["attribute"])) is not None
    except ValueError:  # a name with no letters or digits
        return False


def _eval_pool(
    task: str,
    kind: str,
    evaluation: list[dict],
    train: list[dict],
    eval_sessions: list[dict],
    catalogue: dict[str, dict],
    processor,
    args: argparse.Namespace,
) -> tuple[list[dict], str]:
    """The fixed eval pool of ``--eval-pool kind`` and its description (see the module docstring).

    ``evaluation`` and ``train`` are the task's examples (``train`` before any ``--max-train-samples`` cut, so the
    pool does not depend on it); ``eval_sessions`` the held-out sessions they come from.
    """
    if kind not in EVAL_POOLS:
        raise ValueError(f"--eval-pool must be one of {list(EVAL_POOLS)}, got {kind!r}")
    targets = tasks.candidate_pool(evaluation)
    n_targets = len(targets)
    num_candidates = getattr(args, "num_candidates", 100)

    def topped_up(universe: list[dict]) -> list[dict]:
        in_pool = {candidate_key(p) for p in targets}
        extra = [c for c in universe if candidate_key(c) not in in_pool]
        random.Random(args.seed).shuffle(extra)
        return targets + extra[: max(0, num_candidates - n_targets)]

    if kind == "random":
        pool = topped_up(_ceres_universe(task, train, catalogue))
        return pool, (
            f"eval pool (random): {len(pool)} candidates ({n_targets} distinct eval targets + "
            f"{len(pool) - n_targets} sampled with seed {args.seed})"
        )
    if task == "query_search":
        return targets, f"eval pool (the paper's): all {n_targets} distinct last queries of the eval sessions"
    if task == "entity_linking":
        universe = [e for i in catalogue for e in tasks.product_entities(i, catalogue)]
        universe = [
            e for e in universe + [t for ex in train for t in ex["targets"]] if _known_entity(processor, e)
        ]
        pool = tasks.candidate_pool(evaluation, universe)
        return pool, (
            f"eval pool (the paper's: every possible product attribute): {len(pool)} entities ({n_targets} of "
            f"the eval labels + {len(pool) - n_targets} more of the catalogue's products and the training labels)"
        )
    by_id = {s["session_id"]: s for s in eval_sessions}
    sessions = [by_id[ex["session_id"]] for ex in evaluation]
    if not any("search_results" in s for s in sessions):
        pool = topped_up(_ceres_universe(task, train, catalogue))
        return pool, (
            f"eval pool: {args.dataset} sessions carry no search-engine results, so the paper's pool (purchased "
            f"products + the search engine's first {PAPER_SEARCH_RESULTS} results of each search) falls back to "
            f"the {n_targets} purchased products of the eval sessions + {len(pool) - n_targets} catalogue products "
            f"sampled with seed {args.seed}, {len(pool)} candidates (--num-candidates {num_candidates})"
        )
    searches = [results for s in sessions for results in s.get("search_results", [])]
    shown = [{"item_id": i} for results in searches for i in results[:PAPER_SEARCH_RESULTS]]
    pool = tasks.candidate_pool(evaluation, shown)
    return pool, (
        f"eval pool (the paper's): {len(pool)} products ({n_targets} purchased in the eval sessions + "
        f"{len(pool) - n_targets} more among the search engine's first {PAPER_SEARCH_RESULTS} results of their "
        f"{len(searches)} searches)"
    )


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
    all_train = train  # before any cut, so the pool ignores --max-train-samples
    if args.max_train_samples:
        train = train[: args.max_train_samples]
    if args.max_eval_samples:
        evaluation = evaluation[: args.max_eval_samples]
    widest = max(len(ex["targets"]) for ex in train + evaluation)
    if widest > CERES_MAX_RELEVANT:
        raise ValueError(f"an example has {widest} relevant candidates, more than {CERES_MAX_RELEVANT}")
    kind = getattr(args, "eval_pool", "paper")
    pool, pool_description = _eval_pool(
        task, kind, evaluation, all_train, eval_sessions, catalogue, processor, args
    )
    description += f"; {task}: {len(train)} train / {len(evaluation)} eval examples; {pool_description}"
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
    """``MAP@K``, ``Recall@K`` (the paper's: share of sessions with all relevant candidates in the top K) and
    ``ItemRecall@K`` (share of relevant candidates in the top K), in percent; ``num_samples``, ``pool_size``."""
    ranks = gathered["ranks"].float()
    out = {"num_samples": float(ranks.shape[0]), "pool_size": float(gathered["pool_size"].float().mean())}
    for k in CERES_KS:
        out[f"MAP@{k}"] = 100.0 * float(metrics.map_at_k(ranks=ranks, k=k))
        out[f"Recall@{k}"] = 100.0 * float(metrics.session_recall_at_k(ranks=ranks, k=k))
        out[f"ItemRecall@{k}"] = 100.0 * float(metrics.recall_at_k(ranks=ranks, k=k))
    return out


@torch.no_grad()
def evaluate_retrieval(
    model,
    processor: CeresProcessor,
    examples: list[dict],
    catalogue=None,
    candidates: list[dict] | None = None,
    batch_size: int = 64,
) -> dict[str, float]:
    """Evaluate a CeresForSessionRetrieval on task examples the way fine-tuning does (the same collator, the same
    per-example ranks and the same summary): every example is ranked against one fixed pool, embedded once.

    Args:
        examples: task examples (:mod:`.tasks`); ``targets`` lists each one's relevant candidates.
        candidates: the pool; defaults to the distinct targets of ``examples`` (:func:`tasks.candidate_pool`).

    Returns:
        ``MAP@K``, ``Recall@K`` (the paper's), ``ItemRecall@K`` for K in :data:`CERES_KS`, in percent, and
        ``num_samples``, ``pool_size``.
    """
    pool = list(candidates) if candidates is not None else tasks.candidate_pool(examples)
    collate = CeresRetrievalTaskCollator(processor, _as_catalogue(catalogue), pool)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    outs = []
    for start in range(0, len(examples), batch_size):
        rows = [
            {
                "session_id": ex["session_id"],
                "events": ex["events"],
                "targets": ex["targets"],
                "evaluate": True,
            }
            for ex in examples[start : start + batch_size]
        ]
        batch = collate(rows)
        labels = batch.pop("labels")
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        outs.append({k: v.cpu() for k, v in _ceres_ranks(model(**batch).logits, labels).items()})
    model.train(was_training)
    return _ceres_retrieval_summarize({k: torch.cat([o[k] for o in outs]) for k in outs[0]})


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
    "EVAL_POOLS",
    "PAPER_SEARCH_RESULTS",
    "RECIPE",
    "CeresPretrainCollator",
    "CeresPretrainTask",
    "CeresRetrievalTaskCollator",
    "ceres_source",
    "evaluate_retrieval",
    "label_attribute_names",
    "synthetic_search_results",
    "text_session",
]
