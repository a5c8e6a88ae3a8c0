"""CERES's training recipe: graph-conditioned masked-LM pretraining and the three retrieval tasks.

Data: the synthetic store (default) or REES46 sessions (products only, so no query search), reduced to text
(image vectors dropped: CERES is text-only), split by session into train / validation / test as the TAGNN++
recipe does (:func:`ceres_source`): the last ``--eval-fraction`` of the sessions is the test split, scored
once at the end; ``--validation-fraction`` of the rest (the latest ones) is the validation split, for periodic
evaluation and ``--select-best``. Synthetic sessions keep the store's order; REES46 sessions are ordered by
their start time first, so the test sessions are the latest. ``--max-eval-samples`` cuts both evaluation
splits.

Home Depot (``--dataset homedepot``, :func:`homedepot_terms`): real search terms and the product titles judged for
them, split by term by its loader (60 / 20 / 20 %, seed :data:`HOMEDEPOT_SPLIT_SEED`). Pretraining sessions are a
term's search followed by views of its judged products (:func:`homedepot_session`); fine-tuning is product search
only: a training row is a term with its products graded >= 2, of which each batch takes one (drawn per batch,
the others of the batch are negatives, labels mark every positive of the term); a validation or test term (one
with a product graded >= 2.5) ranks the whole catalogue of 54,667 titles (``--eval-pool paper``; ``random``: the
split's judged products topped up to ``--num-candidates``) with graded targets (:func:`homedepot_eval_examples`):
MAP@K and Recall@K count products graded >= 2.5, NDCG@10 uses the gain grade - 1 of every judged product, as
``benchmarks/product_search_homedepot.py`` does on the same test terms; its figures are close to these, not equal:
it also scores NDCG@10 on the terms with no product graded >= 2.5, which this recipe leaves out, and counts ties
half where this recipe counts them against the model.

Training protocol: the paper's (Section 4.2, :data:`PRETRAIN_PROTOCOL` for pretraining and
:data:`FINETUNE_PROTOCOL` for every retrieval task), the trainers' defaults; ``--model ceres --help`` shows
them. CERES's own flags (``--num-candidates``, ``--eval-pool``, ``--pretrain-corpus``,
``--item-encoder-from``) are added to both trainers' parsers by this recipe (:func:`add_ceres_arguments`).

Pretraining (``--model ceres``): a WordPiece CeresProcessor is fitted on the catalogue text and the queries of
the training sessions (or loaded from ``--processor-path``; or, with ``--item-encoder-from PATH``, the BERT
checkpoint's tokenizer plus the CERES special tokens, its encoder sizes and its weights); batches are
sessions, encoded by the processor and masked by CeresMaskingCollator; the loss is the model's MLM +
graph-conditioned MLM loss. ``--pretrain-corpus products`` trains on one-product "sessions" (every catalogue
product alone): with ``gmlm_loss_weight=0`` and ``use_gnn=False`` that is plain MLM on product text (the
paper's Product-BERT baseline).

Evaluation of pretraining: the masked-LM loss. Its per-example output is **one element per batch** (the
batch's summed token cross-entropy and its masked-token count), so ``summarize`` gives the token-weighted mean
over the split (validation, and test at the end). Under several processes ``gather_for_metrics`` may trim the
last, padded batch's values; the figures are then the mean over the batches kept. Eval masks are fixed:
validation and test rows carry ``evaluate`` and are masked by a CeresMaskingCollator with a ``seed`` (each
batch's masks are a function of the seed and its session ids), so two evaluations of the same weights give the
same loss. Training masks are seeded too (another seed, folded with the epoch: ``CeresPretrainCollator``), so a
resumed run masks exactly as the uninterrupted one, and neither draws from the global RNG (dropout's).
``PreparedData.eval_collate_fn`` is that eval collator. The validation ``loss`` selects the checkpoint
(``--select-best loss``, lower is better).

Fine-tuning (product_search, query_search, entity_linking; see models/ceres/tasks.py for the task builders):
training batches rank the batch's targets (in-batch negatives, as in the paper). Evaluation ranks a FIXED
candidate pool shared by every example of one split, built separately for the validation and for the test
split from that split's own sessions (below, "the eval set" is the split being evaluated), chosen by
``--eval-pool``:

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

Validation and test rows name their pool (``evaluate``: ``"validation"`` or ``"test"``); the eval batches
carry that pool once tokenised (``candidate_pool``, a CeresCandidatePool); the model embeds it once per
evaluation and reuses it for every batch (CeresForSessionRetrieval.embed_candidate_pool). Each example's ranks
of its relevant candidates are padded with NaN to CERES_MAX_RELEVANT columns, so Trainer can concatenate them
across batches. Metrics (K = 1, 32, 64, ties pessimistic, in percent): ``MAP@K`` (metrics.map_at_k),
``Recall@K``, the paper's: the share of sessions whose relevant items are all in the top K
(metrics.session_recall_at_k), and ``ItemRecall@K``, the share of relevant items in the top K
(metrics.recall_at_k). With one relevant candidate per session (product and query search) the two recalls are
equal. ``NDCG@10`` and ``MRR@10`` (percent) come with them: binary for binary targets, graded for Home Depot's.
Validation ``MAP@1`` selects the checkpoint (the paper picks its fine-tuning learning rate by it).
:func:`evaluate_retrieval` runs this same evaluation outside the trainers.
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from datasets import Dataset
from transformers import AutoConfig

from ... import metrics
from ...data.schema import QUERY_SUBJECTS
from ...processing_utils import SeededCollatorMixin
from ...protocol import TrainingProtocol
from ...trainer_utils import (
    PreparedData,
    QuickstartJob,
    Recipe,
    Task,
    bert_initializer,
    first_n,
    split_sizes,
    synthetic_store,
    validation_limit,
)
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
HOMEDEPOT_POSITIVE_GRADE = 2.0
"""Home Depot product search: a training term's products graded at least this are its positives (a training pair is
the term and one of them, as in ``benchmarks/product_search_homedepot.py``)."""
HOMEDEPOT_SPLIT_SEED = 0
"""The seed of the Home Depot term split (:func:`~session_transformers.data.load_homedepot`, 60 / 20 / 20 %): fixed,
so that every run (whatever its ``--seed``) and the benchmark evaluate on the same test terms."""
_CATALOGUE_FIELDS = ("item_id", "title", "description", "category", "brand", "attributes")
_CERES_SOURCES: dict[tuple, CeresSplits] = {}
_HOMEDEPOT_TERMS: dict[str, HomeDepotTerms] = {}


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


class CeresSplits(NamedTuple):
    """What :func:`ceres_source` returns: text sessions split by session, the catalogue and a description."""

    train: list[dict]
    validation: list[dict]
    """Periodic evaluation and ``--select-best``; empty with ``--validation-fraction 0``."""
    test: list[dict]
    """Scored once, at the end."""
    catalogue: dict[str, dict]
    description: str


class HomeDepotTerms(NamedTuple):
    """What :func:`homedepot_terms` returns: Home Depot's search terms split by term, and the catalogue."""

    train: list[dict]
    """Rows of :func:`~session_transformers.data.load_homedepot`: ``session_id``, ``events`` (the one search),
    ``search_term``, ``item_ids`` (its judged products, in file order) and ``relevance`` (their grades)."""
    validation: list[dict]
    test: list[dict]
    catalogue: dict[str, dict]
    """Every product of the file, ``item_id -> {"item_id", "title"}`` (the data has no other field)."""
    description: str


def homedepot_terms(data_path: str) -> HomeDepotTerms:
    """Home Depot's search terms split by term (:func:`~session_transformers.data.load_homedepot` with its 60 / 20 /
    20 % split and :data:`HOMEDEPOT_SPLIT_SEED`), and the catalogue of all its products, each read by CERES as its
    title alone (the loader's ``["unknown"]`` category is not text about the product). Cached per process."""
    if data_path in _HOMEDEPOT_TERMS:
        return _HOMEDEPOT_TERMS[data_path]
    from ...data.loaders import load_homedepot

    splits = load_homedepot(data_path, seed=HOMEDEPOT_SPLIT_SEED)
    rows = {name: [dict(r) for r in getattr(splits, name)] for name in ("train", "validation", "test")}
    catalogue = {
        i: {"item_id": i, "title": t}
        for i, t in zip(splits.catalogue["item_id"], splits.catalogue["title"], strict=True)
    }
    out = HomeDepotTerms(
        rows["train"],
        rows["validation"],
        rows["test"],
        catalogue,
        f"Home Depot search relevance {data_path} ({splits.statistics['rows']} judged (term, product) pairs, "
        f"{len(catalogue)} products, {splits.statistics['search_terms']} search terms), split by search term "
        f"(seed {HOMEDEPOT_SPLIT_SEED}): {len(rows['train'])} training / {len(rows['validation'])} validation / "
        f"{len(rows['test'])} test terms",
    )
    _HOMEDEPOT_TERMS[data_path] = out
    return out


def homedepot_session(row: Mapping[str, Any]) -> dict:
    """A Home Depot term as a search session for pretraining: the search, then a view of each product judged for it
    (in file order), as ``benchmarks/product_search_homedepot.py`` builds its pretraining sessions."""
    views = [
        {"action": "view", "timestamp": None, "subject": "item", "item_id": i, "query": None, "image": None}
        for i in row["item_ids"]
    ]
    return {"session_id": row["session_id"], "events": [*row["events"], *views]}


def _by_start_time(sessions: list[dict]) -> tuple[list[dict], str]:
    """Sessions ordered by their first event's time (ties keep file order), so the held-out splits are the latest
    sessions; file order when some event has no timestamp."""
    if all(ev.get("timestamp") is not None for s in sessions for ev in s["events"]):
        ordered = sorted(sessions, key=lambda s: min(ev["timestamp"] for ev in s["events"]))
        return ordered, "sessions ordered by start time"
    return sessions, "sessions in file order (some events have no timestamp)"


def ceres_source(args: argparse.Namespace) -> CeresSplits:
    """Train / validation / test text sessions, the catalogue and a description.

    Sessions without a product or query are dropped; of the rest, the last ``args.eval_fraction`` are the test
    split and ``args.validation_fraction`` of the remaining ones (the latest) the validation split
    (:func:`split_sizes`). Synthetic sessions keep the store's order and carry their ``search_results``
    (:func:`synthetic_search_results`); REES46 ones are ordered by start time (:func:`_by_start_time`) and have
    none. Home Depot's split is its loader's, by search term (:func:`homedepot_terms`; the fractions flags do not
    apply), each term a session of its search and views of its judged products (:func:`homedepot_session`).
    Cached per process (benchmarks call the trainers' ``main`` many times); callers must not mutate.
    """
    validation_fraction = args.validation_fraction
    key = (
        args.dataset,
        args.data_path,
        args.store_preset,
        args.seed,
        args.num_sessions,
        args.eval_fraction,
        validation_fraction,
    )
    if key in _CERES_SOURCES:
        return _CERES_SOURCES[key]
    if args.dataset == "homedepot":
        terms = homedepot_terms(args.data_path)
        out = CeresSplits(
            *([homedepot_session(r) for r in part] for part in (terms.train, terms.validation, terms.test)),
            terms.catalogue,
            f"{terms.description}; a session per term: the search, then a view of each product judged for it",
        )
        _CERES_SOURCES[key] = out
        return out
    if args.dataset == "synthetic":
        store = synthetic_store(args)
        cfg = store.config
        sessions = [
            text_session(s, synthetic_search_results(store, s))
            for s in store.iter_sessions(0, cfg.num_sessions)
        ]
        records = store.catalogue
        what = f"synthetic store (seed {args.seed}, {cfg.num_sessions} sessions, {cfg.num_items} products)"
        order = "sessions in the store's order"
    elif args.dataset == "rees46":
        from ...data.loaders import load_rees46

        session_ds, catalogue_ds = load_rees46(args.data_path)
        sessions, order = _by_start_time([text_session(s) for s in session_ds])
        records = list(catalogue_ds)
        what = f"REES46 events {args.data_path} ({len(sessions)} sessions, {len(records)} products)"
    else:
        raise ValueError(f"CERES has no data source {args.dataset!r}")
    catalogue = {rec["item_id"]: {k: rec.get(k) for k in _CATALOGUE_FIELDS} for rec in records}
    sessions = [s for s in sessions if tasks._has_text_item(s["events"])]
    n_val, n_test = split_sizes(len(sessions), args.eval_fraction, validation_fraction)
    n_train = len(sessions) - n_val - n_test
    out = CeresSplits(
        sessions[:n_train],
        sessions[n_train : n_train + n_val],
        sessions[n_train + n_val :],
        catalogue,
        f"{what}; {len(sessions)} text sessions ({order}): the last {n_test} the test split, the {n_val} before "
        f"them the validation split, {n_train} for training",
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
    if args.item_encoder_from:
        return CeresProcessor.from_bert_tokenizer(args.item_encoder_from, attribute_names=names)
    return CeresProcessor.train_tokenizer(iter_corpus(train, catalogue), attribute_names=names)


def _ceres_config(args: argparse.Namespace, processor) -> CeresConfig:
    overrides = {
        "max_session_items": processor.max_session_items,
        "vocab_size": len(processor.tokenizer),
        "pad_token_id": processor.tokenizer.pad_token_id,
        **args.config_overrides,
    }
    if args.item_encoder_from:
        return CeresConfig.from_bert_config(AutoConfig.from_pretrained(args.item_encoder_from), **overrides)
    return CeresConfig(**overrides)


def _bert_initializer(args: argparse.Namespace):
    """``PreparedData.init_weights`` for ``--item-encoder-from``: load the BERT weights into the item encoder."""
    return bert_initializer(args.item_encoder_from, "load_item_encoder_from_bert", "item encoder")


def _ceres_rows(sessions: list[dict], evaluate: bool = False) -> Dataset:
    rows = [{"session_id": s["session_id"], "events": s["events"]} for s in sessions]
    return Dataset.from_list([{**r, "evaluate": True} for r in rows] if evaluate else rows)


class CeresPretrainCollator:
    """Pretraining rows -> masked batches: training rows through ``train`` (a seeded CeresMaskingCollator whose
    masks are a function of the seed, the epoch and the batch's sessions, so that a resumed run masks exactly as
    the uninterrupted one), rows with ``evaluate`` set through ``evaluation`` (fixed masks: a seeded collator that
    stays at epoch 0), so one ``collate_fn`` serves both loaders. ``set_epoch`` reaches only the training one."""

    def __init__(self, train: CeresMaskingCollator, evaluation: CeresMaskingCollator):
        self.train, self.evaluation = train, evaluation

    def set_epoch(self, epoch: int) -> None:
        self.train.set_epoch(epoch)

    def __call__(self, rows: list[dict]):
        return (self.evaluation if rows and rows[0].get("evaluate") else self.train)(rows)


def _prepare_ceres_pretrain(args: argparse.Namespace) -> PreparedData:
    train, validation, test, catalogue, description = ceres_source(args)
    processor = _ceres_processor(args, train, catalogue)
    config = _ceres_config(args, processor)
    if args.pretrain_corpus == "products":
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
    train = first_n(train, args.max_train_samples)
    validation, test = first_n(validation, validation_limit(args)), first_n(test, args.max_eval_samples)
    eval_collate = CeresMaskingCollator(processor, catalogue, config, seed=args.seed)
    # training masks: seeded apart from the evaluation masks (another seed), per epoch and batch
    train_collate = CeresMaskingCollator(processor, catalogue, config, seed=args.seed + 1)
    collate = CeresPretrainCollator(train_collate, eval_collate)
    test_rows = _ceres_rows(test, evaluate=True)
    return PreparedData(
        processor,
        _ceres_rows(train),
        _ceres_rows(validation, evaluate=True) if validation else None,
        collate,
        config,
        description,
        init_weights=_bert_initializer(args),
        test_dataset=test_rows,
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


class CeresRetrievalTaskCollator(SeededCollatorMixin):
    """Rows ``{"session_id", "events", "targets"[, "evaluate"]}`` -> CeresForSessionRetrieval inputs.

    Training rows: candidates are the batch's targets (in-batch negatives). With ``sample_targets`` a training row's
    ``targets`` are all its positives, and the row brings ONE of them to the batch, drawn from a generator seeded
    by ``seed``, the epoch (``set_epoch``) and the batch's session ids; ``labels`` then mark every candidate that
    is a positive of the row (drawn for it or for another row), so that no positive is pushed down as a negative.

    Rows with ``evaluate`` set to a name of ``pools`` (``"validation"``, ``"test"``): the candidates are that
    split's fixed pool (the same for every batch of the split), given as ``candidate_pool`` (a
    :class:`CeresCandidatePool` tokenised once, that the model embeds once per evaluation), and ``labels``
    ``(B, len(pool))``: each target's ``gain`` (graded relevance, Home Depot: 1 or more = relevant, between 0 and 1
    partly relevant; see :func:`homedepot_eval_examples`), 1 for a target without one, 0 for the rest of the pool.
    One batch holds rows of one split.
    """

    def __init__(
        self,
        processor,
        catalogue: dict[str, dict],
        pools: Mapping[str, list[dict]],
        chunk_size: int = 256,
        sample_targets: bool = False,
        seed: int | None = None,
    ):
        self.processor, self.catalogue, self.pools = processor, catalogue, dict(pools)
        self.chunk_size = chunk_size
        if sample_targets and seed is None:
            raise ValueError("sample_targets draws from a seeded generator: pass seed")
        self.sample_targets = sample_targets
        self._init_randomness(None, seed)
        self._key = candidate_key
        self._index = {
            name: {candidate_key(c): i for i, c in enumerate(pool)} for name, pool in self.pools.items()
        }
        self._candidate_pools: dict[str, CeresCandidatePool] = {}

    def candidate_pool(self, name: str) -> CeresCandidatePool:
        """The pool ``name`` tokenised once (on first use), what every eval batch of that split carries."""
        if name not in self.pools:
            raise ValueError(f"no eval pool {name!r}; the pools are {list(self.pools)}")
        if name not in self._candidate_pools:
            inputs = self.processor.encode_candidates(self.pools[name], self.catalogue)
            self._candidate_pools[name] = CeresCandidatePool.from_inputs(inputs, chunk_size=self.chunk_size)
        return self._candidate_pools[name]

    def __call__(self, rows: list[dict]) -> dict[str, Any]:
        sessions = [{"session_id": r["session_id"], "events": r["events"]} for r in rows]
        targets = [[{k: v for k, v in t.items() if v is not None} for t in r["targets"]] for r in rows]
        name = rows[0].get("evaluate")
        if not name:
            if self.sample_targets:
                return self._one_target_per_row(sessions, targets)
            return dict(self.processor(sessions, self.catalogue, targets=targets))
        if any(r.get("evaluate") != name for r in rows):
            raise ValueError("an eval batch mixes rows of several splits (pools)")
        candidate_pool = self.candidate_pool(name)
        index = self._index[name]
        labels = torch.zeros(len(rows), len(self.pools[name]))
        for b, specs in enumerate(targets):
            for spec in specs:
                column = index.get(self._key(spec))
                if column is None:
                    raise ValueError(
                        f"target {spec!r} of session {sessions[b]['session_id']!r} is not in the eval pool "
                        f"({name})"
                    )
                labels[b, column] = float(spec.get("gain", 1.0))
        return {
            **self.processor(sessions, self.catalogue),
            "candidate_pool": candidate_pool,
            "labels": labels,
        }

    def _one_target_per_row(self, sessions: list[dict], targets: list[list[dict]]) -> dict[str, Any]:
        generator = self._batch_generator(s["session_id"] for s in sessions)
        drawn = [specs[int(torch.randint(len(specs), (1,), generator=generator))] for specs in targets]
        batch = dict(self.processor(sessions, self.catalogue, targets=drawn))
        columns = list(dict.fromkeys(self._key(spec) for spec in drawn))  # the processor's candidate order
        positives = [{self._key(spec) for spec in specs} for specs in targets]
        batch["labels"] = torch.tensor([[float(c in own) for c in columns] for own in positives])
        return batch


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

    ``evaluation`` are the examples of the split being evaluated (validation or test; each split gets its own
    pool) and ``eval_sessions`` the sessions they come from; ``train`` the task's training examples (before any
    ``--max-train-samples`` cut, so the pool does not depend on it).
    """
    if kind not in EVAL_POOLS:
        raise ValueError(f"--eval-pool must be one of {list(EVAL_POOLS)}, got {kind!r}")
    targets = tasks.candidate_pool(evaluation)
    n_targets = len(targets)
    num_candidates = args.num_candidates

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


def _eval_rows(examples: list[dict], split: str) -> Dataset:
    """Evaluation rows of one split; ``evaluate`` names the split's pool in the collator."""
    return Dataset.from_list(
        [{**{k: ex[k] for k in ("session_id", "events", "targets")}, "evaluate": split} for ex in examples]
    )


def homedepot_training_examples(rows: list[dict], min_grade: float = HOMEDEPOT_POSITIVE_GRADE) -> list[dict]:
    """Product-search training rows of Home Depot terms: the term's one-search session and, as ``targets``, its
    products graded at least ``min_grade`` (terms with none are left out). The training collator
    (``CeresRetrievalTaskCollator(sample_targets=True)``) brings one of them per row to each batch."""
    out = []
    for r in rows:
        positives = [i for i, g in zip(r["item_ids"], r["relevance"], strict=True) if g >= min_grade]
        if positives:
            out.append(
                {
                    "session_id": r["session_id"],
                    "events": r["events"],
                    "targets": [{"item_id": i} for i in positives],
                }
            )
    return out


def homedepot_eval_examples(rows: list[dict]) -> list[dict]:
    """Product-search evaluation rows of Home Depot terms with graded targets: every product judged above grade 1,
    with ``gain`` = (grade - 1) / (2.5 - 1). A gain of 1 or more (grade >= 2.5,
    :data:`~session_transformers.data.HOMEDEPOT_RELEVANT_GRADE`) marks a relevant product (MAP@K, Recall@K,
    MRR@10 and the loss); NDCG@10 uses every gain (the data's graded NDCG with gain grade - 1: NDCG is unchanged
    by the scale). Terms with no relevant product are left out (MAP@K and Recall@K need one)."""
    from ...data.loaders import HOMEDEPOT_RELEVANT_GRADE

    scale = HOMEDEPOT_RELEVANT_GRADE - 1.0
    out = []
    for r in rows:
        if max(r["relevance"]) < HOMEDEPOT_RELEVANT_GRADE:
            continue
        targets = [
            {"item_id": i, "gain": (g - 1.0) / scale}
            for i, g in zip(r["item_ids"], r["relevance"], strict=True)
            if g > 1.0
        ]
        out.append({"session_id": r["session_id"], "events": r["events"], "targets": targets})
    return out


def _homedepot_pool(
    args: argparse.Namespace, rows: list[dict], catalogue: dict[str, dict]
) -> tuple[list[dict], str]:
    """The eval pool of one Home Depot split: the whole catalogue (``--eval-pool paper``, the data's protocol), or
    every product judged for the split's terms topped up to ``--num-candidates`` with catalogue products drawn
    with ``--seed`` (``random``)."""
    if args.eval_pool not in EVAL_POOLS:
        raise ValueError(f"--eval-pool must be one of {list(EVAL_POOLS)}, got {args.eval_pool!r}")
    if args.eval_pool == "paper":
        return [{"item_id": i} for i in catalogue], (
            f"eval pool: the whole catalogue, {len(catalogue)} products (every term ranks every title)"
        )
    judged = list(dict.fromkeys(i for r in rows for i in r["item_ids"]))
    known = set(judged)
    extra = [i for i in catalogue if i not in known]
    random.Random(args.seed).shuffle(extra)
    pool = judged + extra[: max(0, args.num_candidates - len(judged))]
    return [{"item_id": i} for i in pool], (
        f"eval pool (random): {len(pool)} products ({len(judged)} judged for the split's terms + "
        f"{len(pool) - len(judged)} catalogue products sampled with seed {args.seed})"
    )


def _prepare_homedepot_retrieval(task: str, args: argparse.Namespace) -> PreparedData:
    """Product search on Home Depot's search terms (:func:`homedepot_terms`): train on (term, product graded >= 2)
    pairs with in-batch negatives, rank each validation / test term's pool (the whole catalogue by default) with
    graded relevance (:func:`homedepot_eval_examples`)."""
    if task != "product_search":
        raise ValueError(
            f"Home Depot has search terms and the products judged for them: CERES trains product_search on it, "
            f"not {task}"
        )
    terms = homedepot_terms(args.data_path)
    catalogue = terms.catalogue
    sessions = [{"session_id": r["session_id"], "events": r["events"]} for r in terms.train]
    processor = _ceres_processor(args, sessions, catalogue)
    config = _ceres_config(args, processor)
    train = first_n(homedepot_training_examples(terms.train), args.max_train_samples)
    evaluation, pools, notes = {}, {}, []
    for split, rows in (("validation", terms.validation), ("test", terms.test)):
        examples = homedepot_eval_examples(rows)
        kept = {ex["session_id"] for ex in examples}
        limit = validation_limit(args) if split == "validation" else args.max_eval_samples
        evaluation[split] = first_n(examples, limit)
        pools[split], what = _homedepot_pool(args, [r for r in rows if r["session_id"] in kept], catalogue)
        notes.append(
            f"{split}: {len(evaluation[split])} terms ({len(rows) - len(examples)} of {len(rows)} left out: no "
            f"product graded >= 2.5), {what}"
        )
    if not train or not all(evaluation.values()):
        raise ValueError(
            f"{args.data_path} gives {len(train)} training / {len(evaluation['validation'])} validation / "
            f"{len(evaluation['test'])} test product-search terms"
        )
    description = (
        f"{terms.description}; product search: {len(train)} training terms with a product graded >= "
        f"{HOMEDEPOT_POSITIVE_GRADE:g} (a training pair: the term and one of them, drawn afresh per batch; the "
        f"batch's other products are its negatives); " + "; ".join(notes) + "; relevant = graded >= 2.5 "
        "(MAP@K, Recall@K, MRR@10), NDCG@10 with gain grade - 1"
    )
    collate = CeresRetrievalTaskCollator(processor, catalogue, pools, sample_targets=True, seed=args.seed)
    return PreparedData(
        processor,
        Dataset.from_list([{k: ex[k] for k in ("session_id", "events", "targets")} for ex in train]),
        _eval_rows(evaluation["validation"], "validation"),
        collate,
        config,
        description,
        init_weights=_bert_initializer(args),
        test_dataset=_eval_rows(evaluation["test"], "test"),
    )


def _prepare_ceres_retrieval(task: str, args: argparse.Namespace) -> PreparedData:
    if args.dataset == "homedepot":
        return _prepare_homedepot_retrieval(task, args)
    train_sessions, validation_sessions, test_sessions, catalogue, description = ceres_source(args)
    processor = _ceres_processor(args, train_sessions, catalogue)
    config = _ceres_config(args, processor)
    sessions = {"validation": validation_sessions, "test": test_sessions}
    sessions = {split: part for split, part in sessions.items() if part}  # no validation split: test only
    parts = {
        split: _ceres_examples(task, part, catalogue)
        for split, part in {"train": train_sessions, **sessions}.items()
    }
    if task == "entity_linking":
        # entities whose attribute the tokenizer has no [ATTRTYPE] token for are dropped
        def known_only(examples: list[dict]) -> list[dict]:
            out = []
            for ex in examples:
                targets = [t for t in ex["targets"] if processor._marker(t["attribute"]) is not None]
                if targets:
                    out.append({**ex, "targets": targets})
            return out

        processor.on_unknown_attribute, saved = "skip", processor.on_unknown_attribute
        try:
            parts = {split: known_only(part) for split, part in parts.items()}
        finally:
            processor.on_unknown_attribute = saved
    if not all(parts.values()):
        counts = " / ".join(f"{len(part)} {split}" for split, part in parts.items())
        raise ValueError(
            f"{args.dataset} gives {counts} {task} examples"
            + (" (its sessions have no queries)" if task == "query_search" else "")
        )
    all_train = parts["train"]  # before any cut, so the pools ignore --max-train-samples
    train = first_n(all_train, args.max_train_samples)
    evaluation = {
        split: first_n(
            parts[split], validation_limit(args) if split == "validation" else args.max_eval_samples
        )
        for split in sessions
    }
    widest = max(len(ex["targets"]) for part in (train, *evaluation.values()) for ex in part)
    if widest > CERES_MAX_RELEVANT:
        raise ValueError(f"an example has {widest} relevant candidates, more than {CERES_MAX_RELEVANT}")
    # One fixed pool per evaluation split, from that split's own examples and sessions.
    pools, pool_descriptions = {}, []
    for split, examples in evaluation.items():
        pools[split], what = _eval_pool(
            task, args.eval_pool, examples, all_train, sessions[split], catalogue, processor, args
        )
        pool_descriptions.append(f"{split} {what}")
    counts = " / ".join(f"{len(part)} {split}" for split, part in {"train": train, **evaluation}.items())
    description += f"; {task}: {counts} examples; " + "; ".join(pool_descriptions)
    train_ds = Dataset.from_list([{k: ex[k] for k in ("session_id", "events", "targets")} for ex in train])
    test_ds = _eval_rows(evaluation["test"], "test")
    collate = CeresRetrievalTaskCollator(processor, catalogue, pools)
    return PreparedData(
        processor,
        train_ds,
        _eval_rows(evaluation["validation"], "validation") if "validation" in evaluation else None,
        collate,
        config,
        description,
        init_weights=_bert_initializer(args),
        test_dataset=test_ds,
    )


def _ceres_ranks(logits: Any, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Ranks (1 = best) of each example's relevant candidates among its candidates, ``(B, CERES_MAX_RELEVANT)``
    padded with NaN, the size of the pool each example was ranked in, and each example's ``NDCG@10`` and
    ``MRR@10`` (``(B,)``, NaN where it has nothing to find). ``labels`` ``(B, C)``: 1 (or more) relevant, 0 other
    candidate, -1 (optional) not a candidate of this example; a value between 0 and 1 is a partly relevant
    candidate (graded relevance, Home Depot): not relevant for the ranks, MAP@K, Recall@K and MRR@10, its value
    the NDCG gain (a relevant candidate's gain is its label)."""
    logits = logits[0] if isinstance(logits, tuple | list) else logits
    labels = labels.to(logits.device)
    scores = (
        logits if logits.dtype == torch.float64 else logits.float()
    )  # baselines' tie-breaking needs float64
    exclude = labels < 0
    any_excluded = bool(exclude.any())
    ranks = metrics.ranks_from_scores(
        scores,
        labels >= 1,
        exclude=exclude if any_excluded else None,
        max_relevant=CERES_MAX_RELEVANT,
    )
    return {
        "ranks": ranks,
        "pool_size": (~exclude).sum(1).float(),
        **_graded_per_example(scores.masked_fill(exclude, -math.inf) if any_excluded else scores, labels),
    }


def _graded_per_example(scores: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-example ``ndcg@10`` and ``mrr@10`` (:func:`metrics.graded_ranking_metrics`, gains = the positive labels,
    relevant = a label of 1 or more); the ranks of the labelled candidates as :func:`metrics.judged_ranks` gives
    them (ties with other candidates pessimistic, as the ranks of :func:`_ceres_ranks`)."""
    gained = labels > 0
    width = max(1, int(gained.sum(1).max()))
    judged = torch.full((labels.shape[0], width), -1, dtype=torch.long, device=labels.device)
    gains = torch.zeros(judged.shape, device=labels.device)
    row, column = torch.nonzero(gained, as_tuple=True)
    slot = torch.cumsum(gained.long(), 1)[row, column] - 1
    judged[row, slot], gains[row, slot] = column, labels[row, column].float()
    ranks = metrics.judged_ranks(scores, judged, ties="pessimistic")
    out = metrics.graded_ranking_metrics(
        ranks, gains, ndcg_ks=(10,), mrr_ks=(10,), recall_ks=(), relevant_grade=1.0, min_grade=0.0
    )
    return {"ndcg@10": out["NDCG@10"], "mrr@10": out["MRR@10"]}


def _ceres_retrieval_summarize(gathered: dict[str, torch.Tensor]) -> dict[str, float]:
    """``MAP@K``, ``Recall@K`` (the paper's: share of sessions with all relevant candidates in the top K) and
    ``ItemRecall@K`` (share of relevant candidates in the top K), in percent; ``NDCG@10`` and ``MRR@10`` in
    percent (the mean over the examples that have something to find) when the per-example figures are there;
    ``num_samples``, ``pool_size``."""
    ranks = gathered["ranks"].float()
    # the mean pool size in float64: a float32 mean of 1,949 pools of 54,667 reads 54666.996
    out = {"num_samples": float(ranks.shape[0]), "pool_size": float(gathered["pool_size"].double().mean())}
    for k in CERES_KS:
        out[f"MAP@{k}"] = 100.0 * float(metrics.map_at_k(ranks=ranks, k=k))
        out[f"Recall@{k}"] = 100.0 * float(metrics.session_recall_at_k(ranks=ranks, k=k))
        out[f"ItemRecall@{k}"] = 100.0 * float(metrics.recall_at_k(ranks=ranks, k=k))
    for key, name in (("ndcg@10", "NDCG@10"), ("mrr@10", "MRR@10")):
        if key in gathered:
            out[name] = 100.0 * float(gathered[key].float().nanmean())
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
    collate = CeresRetrievalTaskCollator(processor, _as_catalogue(catalogue), {"eval": pool})
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
                "evaluate": "eval",
            }
            for ex in examples[start : start + batch_size]
        ]
        batch = collate(rows)
        labels = batch.pop("labels")
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        outs.append({k: v.cpu() for k, v in _ceres_ranks(model(**batch).logits, labels).items()})
    model.train(was_training)
    return _ceres_retrieval_summarize({k: torch.cat([o[k] for o in outs]) for k in outs[0]})


def candidate_text(spec: Mapping[str, Any], catalogue: Mapping[str, Mapping[str, Any]]) -> str:
    """A retrieval candidate's words, for text baselines (BM25): a product's title, description, brand, category
    path and attribute values; a query's text; an entity's value."""
    if spec.get("item_id") is not None:
        rec = catalogue.get(spec["item_id"]) or {}
        words = [rec.get("title"), rec.get("description"), rec.get("brand"), *(rec.get("category") or [])]
        words += [a.get("value") for a in rec.get("attributes") or []]
        return " ".join(w for w in words if w)
    if spec.get("query") is not None:
        return spec["query"]
    return str(spec.get("value") or "")


def session_text(events: list[Mapping[str, Any]], catalogue: Mapping[str, Mapping[str, Any]]) -> str:
    """A session's own words, the query of text baselines (BM25): its queries, in order; a session without one
    (REES46 sessions have none), the titles of its products."""
    queries = [ev["query"] for ev in events if ev["subject"] in QUERY_SUBJECTS and ev.get("query")]
    if queries:
        return " ".join(queries)
    titles = [
        (catalogue.get(ev.get("item_id")) or {}).get("title") for ev in events if ev["subject"] == "item"
    ]
    return " ".join(t for t in titles if t)


def retrieval_baselines(
    data: PreparedData, seed: int = 0, chunk_size: int = 256
) -> dict[str, dict[str, float]]:
    """``Task.baseline`` of the retrieval tasks: rankings of the test split's fixed pool by rules that need no
    training of the model, scored with the task's own ranks and summary (same metric names).

    - ``random``: candidates in a random (seeded) order;
    - ``popularity``: candidates by how often they are a target in the training split;
    - ``BM25``: candidates by the BM25 score (:class:`~session_transformers.baselines.BM25Index`, English stop
      words) of their text (:func:`candidate_text`: a product's title, description, brand, category and
      attributes; a query; an entity's value) for the session's own words as the query (:func:`session_text`:
      its queries, else its products' titles). What a search engine that matches words does; on the synthetic
      store's product search it is the baseline to beat, since the store's shoppers buy among the products its
      word-matching search showed them.

    Ties (equal counts, equal BM25 scores, e.g. a candidate sharing no word with the session) are in random
    (seeded) order. Test rows are ranked ``chunk_size`` at a time (a pool of a whole catalogue, Home Depot's
    54,667 products, is scored for a chunk of rows only); graded targets (``gain``) are scored as the model's are.
    """
    from collections import Counter

    from ...baselines import BM25Index

    test = data.test_dataset
    collate = data.collate_fn
    name = test[0]["evaluate"]
    pool, index = collate.pools[name], collate._index[name]

    def key(spec: dict) -> tuple:
        return candidate_key({k: v for k, v in spec.items() if v is not None})

    counts = Counter(key(t) for targets in data.train_dataset["targets"] for t in targets)
    popularity = torch.tensor([float(counts[candidate_key(c)]) for c in pool])
    bm25 = BM25Index([candidate_text(c, collate.catalogue) for c in pool])
    generator = torch.Generator().manual_seed(seed)
    per_example: dict[str, list[dict[str, torch.Tensor]]] = {"random": [], "popularity": [], "BM25": []}
    all_targets, all_events = test["targets"], test["events"]
    for start in range(
        0, len(test), chunk_size
    ):  # a whole catalogue's scores are held for a chunk of rows only
        rows = range(start, min(start + chunk_size, len(test)))
        labels = torch.zeros(len(rows), len(pool))
        for b, n in enumerate(rows):
            for t in all_targets[n]:
                labels[b, index[key(t)]] = float(t.get("gain") if t.get("gain") is not None else 1.0)
        noise = torch.rand(labels.shape, generator=generator)
        scores = bm25.scores([session_text(all_events[n], collate.catalogue) for n in rows])
        # scores -> their order (an integer per distinct value), so that the noise breaks ties and nothing else
        bm25_order = torch.from_numpy(
            np.unique(scores, return_inverse=True)[1].reshape(scores.shape)
        ).double()
        for baseline, ranked in (
            ("random", noise),
            ("popularity", popularity[None] + 0.5 * noise),
            ("BM25", bm25_order + 0.5 * noise),
        ):
            per_example[baseline].append(_ceres_ranks(ranked.double(), labels))
    return {
        baseline: _ceres_retrieval_summarize({k: torch.cat([part[k] for part in parts]) for k in parts[0]})
        for baseline, parts in per_example.items()
    }


def _ceres_pretrain_task() -> Task:
    from transformers import AutoModelForPreTraining

    return CeresPretrainTask(
        _prepare_ceres_pretrain, AutoModelForPreTraining, _ceres_mlm_per_batch, _ceres_mlm_summarize
    )


PRETRAIN_PROTOCOL = TrainingProtocol(
    optimizer="adamw",
    learning_rate=3e-5,
    weight_decay=0.01,
    lr_scheduler_type="linear",
    warmup_ratio=0.01,
    min_learning_rate=1e-5,
    batch_size=512,
    num_epochs=1.0,
    max_grad_norm=1.0,
    select_best="loss",
    greater_is_better=False,
    source="CERES paper, Sec. 4.2, pretraining: Adam, peak lr 3e-5, linear warm-up over 1% of the steps, then "
    "linear decay to 1e-5; batch 512 sessions, the global batch of the paper's 16-GPU run (under N processes "
    "pass --batch-size 512/N); 300,000 steps, about a third of a pass over its 468M sessions (here one pass; "
    "--max-steps 300000 for the paper's length). Not in the paper: decoupled weight decay 0.01 and gradient "
    "clipping at 1.0, the defaults of Megatron-LM, which the paper built on; the checkpoint with the lowest "
    "validation loss is kept",
)
"""CERES pretraining (the paper's Section 4.2): "trained for 300,000 steps with a batch size of 512 sessions. The
parameters are updated with Adam, with peak learning rate as 3e-5, 1% steps for linear warm-up, and linear
learning rate decay after warm-up until the learning rate reaches the minimum 1e-5", on 16 GPUs (so 512 is the
global batch). Weight decay and clipping are not stated: Megatron-LM's defaults (``--weight-decay 0.01``,
``--clip-grad 1.0``, Adam betas 0.9/0.999; its Adam decouples the decay, as AdamW). ``num_epochs=1`` stands in for
the 300,000 steps: the protocol counts passes, and the paper's third of a pass reflects its 468M-session corpus,
not a length that carries over to a smaller one."""

FINETUNE_PROTOCOL = PRETRAIN_PROTOCOL.replace(
    learning_rate=5e-5,
    batch_size=64,
    num_epochs=10.0,
    select_best="MAP@1",
    greater_is_better=True,
    source="CERES paper, Sec. 4.2, fine-tuning: 10 epochs; peak lr chosen from [1e-4, 1e-5, 5e-5, 5e-6] to "
    "maximise validation MAP@1 (the paper does not say which won; here 5e-5), the checkpoint with the best "
    "validation MAP@1 kept; the rest of the optimiser as in pretraining (Adam, 1% linear warm-up, linear decay "
    "to 1e-5: with --learning-rate 1e-5 or 5e-6 also lower --min-learning-rate, e.g. to 0). Not in the paper: "
    "batch 64 sessions (in-batch negatives), weight decay 0.01 and clipping at 1.0 (Megatron-LM's defaults, as "
    "in pretraining)",
)
"""CERES fine-tuning on each retrieval task (the paper's Section 4.2): "we finetune them for 10 epochs with a
maximal learning rate chosen from [1e-4, 1e-5, 5e-5, 5e-6] to maximize MAP@1 on the validation set. The rest of
the configuration of optimizers is the same as in pretraining." The paper's splits are 30,000 training, 3,000
validation and 5,000 test sessions per task. The batch size is not stated: 64 is this recipe's choice."""


def add_ceres_arguments(parser) -> None:
    """CERES's own flags, on both trainers' parsers (``Recipe.add_arguments``)."""
    parser.add_argument(
        "--num-candidates",
        type=int,
        default=100,
        help="retrieval eval: candidate pool size (all eval targets, topped up to this) with --eval-pool random, "
        "and for REES46 product search (no search results) with --eval-pool paper",
    )
    parser.add_argument(
        "--eval-pool",
        choices=EVAL_POOLS,
        default="paper",
        help="retrieval eval pool, one per split (validation, test) from its own sessions: the paper's (product "
        "search: purchased products + the search engine's first 10 results per search; query search: all last "
        "queries; entity linking: every product attribute) or the eval targets topped up with random "
        "candidates to --num-candidates",
    )
    parser.add_argument(
        "--pretrain-corpus",
        choices=("sessions", "products"),
        default="sessions",
        help="pretraining on sessions, or on each product alone (Product-BERT)",
    )
    parser.add_argument(
        "--item-encoder-from",
        default=None,
        metavar="PATH",
        help="a BERT-family checkpoint folder on disk; its tokenizer (plus the CERES special tokens), its encoder "
        "sizes and its weights initialise the item encoder (ignored with --init-from)",
    )


def _ceres_retrieval_task(task: str) -> Task:
    from ...auto import AutoModelForSessionRetrieval

    return Task(
        lambda args: _prepare_ceres_retrieval(task, args),
        AutoModelForSessionRetrieval,
        _ceres_ranks,
        _ceres_retrieval_summarize,
        protocol=FINETUNE_PROTOCOL,
        baseline=retrieval_baselines,
    )


_QUICKSTART_SIZES = (
    "--config",
    "hidden_size=32",
    "num_hidden_layers=1",
    "num_attention_heads=2",
    "intermediate_size=64",
    "num_cross_attention_layers=1",
    "retrieval_projection_size=32",
)
_FULL_SIZES = (
    "--config",
    "hidden_size=64",
    "num_hidden_layers=2",
    "num_attention_heads=2",
    "intermediate_size=128",
    "num_cross_attention_layers=1",
    "retrieval_projection_size=64",
)
QUICKSTART = QuickstartJob(
    pretrain_stages=(
        (
            "--num-sessions",
            "3000",
            "--max-steps",
            "60",
            "--batch-size",
            "16",
            "--learning-rate",
            "1e-3",
            "--max-eval-samples",
            "64",
            *_QUICKSTART_SIZES,
        ),
    ),
    finetune_task="product_search",
    finetune_args=(
        "--num-sessions",
        "3000",
        "--max-steps",
        "300",
        "--batch-size",
        "16",
        "--learning-rate",
        "1e-3",
        "--eval-steps",
        "100",
    ),
    metrics=("MAP@1", "MAP@32", "Recall@32", "Recall@64"),
    full_pretrain_stages=(
        (
            "--num-sessions",
            "3000",
            "--max-steps",
            "150",
            "--batch-size",
            "16",
            "--learning-rate",
            "5e-4",
            *_FULL_SIZES,
        ),
    ),
    full_finetune_args=(
        "--num-sessions",
        "3000",
        "--max-steps",
        "150",
        "--batch-size",
        "16",
        "--learning-rate",
        "5e-4",
    ),
)
"""CERES in the main job (``trainers/quickstart.py``): a small CERES (1 item-encoder layer of 32) pretrained 60
steps with masked LM + graph-conditioned masked LM on the synthetic store, then fine-tuned 300 steps on product
search with ``Trainer`` (validation MAP@1 every 100 steps selects the weights). Per step this size costs about
half of the earlier 2 x 64 one (``--full``: 150 + 150 steps). On the paper's hard-negative pool (1,010 products,
99 test sessions) it scores test MAP@32 34.03 / Recall@64 80.81: far above ranking by popularity (6.19 / 26.26),
below BM25 of the session's own queries (44.87 / 94.95; ``retrieval_baselines``). With the paper's marker-token
pooling (``--config sentence_pooling=first``) it scored 1.76 / 19.19 (``CeresConfig.sentence_pooling``)."""

RECIPE = Recipe(
    pretrain=_ceres_pretrain_task(),
    finetune={t: _ceres_retrieval_task(t) for t in ("product_search", "query_search", "entity_linking")},
    datasets=("synthetic", "rees46", "homedepot"),
    default_data_path={
        "rees46": str(Path("..") / "shared" / "data" / "rees46"),
        "homedepot": str(Path("..") / "shared" / "data" / "homedepot"),
    },
    protocol=PRETRAIN_PROTOCOL,
    add_arguments=add_ceres_arguments,
    quickstart=QUICKSTART,
)
"""``trainers/pretrain.py --model ceres`` and ``trainers/finetune.py --model ceres --task <task>``."""

__all__ = [
    "CERES_KS",
    "CERES_MAX_RELEVANT",
    "EVAL_POOLS",
    "FINETUNE_PROTOCOL",
    "HOMEDEPOT_POSITIVE_GRADE",
    "HOMEDEPOT_SPLIT_SEED",
    "PAPER_SEARCH_RESULTS",
    "PRETRAIN_PROTOCOL",
    "QUICKSTART",
    "RECIPE",
    "CeresPretrainCollator",
    "CeresPretrainTask",
    "CeresRetrievalTaskCollator",
    "CeresSplits",
    "HomeDepotTerms",
    "add_ceres_arguments",
    "candidate_text",
    "ceres_source",
    "evaluate_retrieval",
    "homedepot_eval_examples",
    "homedepot_session",
    "homedepot_terms",
    "homedepot_training_examples",
    "label_attribute_names",
    "retrieval_baselines",
    "session_text",
    "split_sizes",
    "synthetic_search_results",
    "text_session",
]
