"""CERES's data: the sessions of each data set as text, their splits, and the shared preparation steps.

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

"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
from datasets import Dataset
from transformers import AutoConfig

from ...data.schema import QUERY_SUBJECTS
from ...trainer_utils import (
    bert_initializer,
    source_key,
    split_in_order,
    synthetic_store,
)
from . import tasks
from .configuration_ceres import CeresConfig
from .processing_ceres import (
    CeresProcessor,
    catalogue_attribute_names,
    iter_corpus,
)

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
    key = source_key(args)
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
    train, validation, test = split_in_order(sessions, args.eval_fraction, args.validation_fraction)
    out = CeresSplits(
        train,
        validation,
        test,
        catalogue,
        f"{what}; {len(sessions)} text sessions ({order}): the last {len(test)} the test split, the "
        f"{len(validation)} before them the validation split, {len(train)} for training",
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


__all__ = [
    "HOMEDEPOT_POSITIVE_GRADE",
    "HOMEDEPOT_SPLIT_SEED",
    "PAPER_SEARCH_RESULTS",
    "CeresSplits",
    "HomeDepotTerms",
    "ceres_source",
    "homedepot_eval_examples",
    "homedepot_session",
    "homedepot_terms",
    "homedepot_training_examples",
    "label_attribute_names",
    "synthetic_search_results",
    "text_session",
]
