"""MUVCOG's data: the synthetic store's sessions, their splits, the processor and the encoded rows.

Data: the synthetic store (the only source here with keyword, product and image queries: no real data set in
``../shared/data`` has MUVCOG's inputs). The store's "search similar" rates are raised by default
(``--product-query-rate``/``--image-query-rate`` 0.6) so that multi-modal sessions are common, and sessions
with fewer than ``--min-queries`` queries (2, as the paper drops single-query sessions) are dropped;
``--multimodal-only`` keeps only sessions with an image query (the paper's MM sessions). Sessions are split in
store order: the last ``--eval-fraction`` the test split (scored once), ``--validation-fraction`` of the rest the
validation split. ``--text-only`` drops image queries from every session (MUVCOG-T and the "no IQ" rows of
Table 3).

Processor: word vectors (50-d) trained with a seeded skip-gram on the training sessions' queries and the
catalogue titles (``--word2vec-epochs``), or read from ``--word-vectors FILE`` (word2vec text format), or the
processor of ``--processor-path``/``--init-from``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch.utils.data import Dataset

from ...trainer_utils import (
    limit_splits,
    source_key,
    split_in_order,
    synthetic_store,
)
from .configuration_muvcog import MuvcogConfig
from .processing_muvcog import MuvcogProcessor, iter_corpus

MUVCOG_K = 10
_SOURCES: dict[tuple, MuvcogSplits] = {}


class Rows(Dataset):
    """A list of prepared examples (pre-encoded sessions), indexable by the loaders and ``Trainer``."""

    def __init__(self, rows: list[dict]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]


class MuvcogSplits(NamedTuple):
    train: list[dict]
    validation: list[dict]
    test: list[dict]
    catalogue: dict[str, dict]
    description: str

    def examples(
        self, args: argparse.Namespace, make: Callable[[list[dict]], list[dict]]
    ) -> tuple[list[dict], list[dict], list[dict]]:
        """``make(sessions)`` of the train, validation and test sessions, cut by the sample flags."""
        return limit_splits(args, make(self.train), make(self.validation), make(self.test))


def _num_queries(session: Mapping[str, Any]) -> int:
    stamps, n = set(), 0
    for ev in session["events"]:
        if ev["subject"] != "item":
            key = ev.get("timestamp")
            n += key is None or key not in stamps
            stamps.add(key)
    return n


def muvcog_source(args: argparse.Namespace) -> MuvcogSplits:
    """Synthetic-store sessions for MUVCOG, split train / validation / test (cached per process)."""
    key = source_key(
        args, args.image_query_rate, args.product_query_rate, args.min_queries, args.multimodal_only
    )
    if key in _SOURCES:
        return _SOURCES[key]
    if args.dataset != "synthetic":
        raise ValueError(
            f"MUVCOG has no data source {args.dataset!r}: its inputs exist only in the synthetic store"
        )
    store = synthetic_store(
        args, image_query_rate=args.image_query_rate, product_query_rate=args.product_query_rate
    )
    cfg = store.config
    sessions = [
        s
        for s in store.iter_sessions(0, cfg.num_sessions)
        if _num_queries(s) >= args.min_queries
        and (not args.multimodal_only or any(ev["subject"] == "image_query" for ev in s["events"]))
    ]
    train, validation, test = split_in_order(sessions, args.eval_fraction, args.validation_fraction)
    with_image = sum(any(ev["subject"] == "image_query" for ev in s["events"]) for s in sessions)
    out = MuvcogSplits(
        train,
        validation,
        test,
        {rec["item_id"]: rec for rec in store.catalogue},
        f"synthetic store (seed {args.seed}, {cfg.num_sessions} sessions, {cfg.num_items} products, query "
        f"reformulation {cfg.query_reformulation}, image/product query rates {args.image_query_rate}/{args.product_query_rate}); {len(sessions)} sessions with >= "
        f"{args.min_queries} queries{' and an image query' if args.multimodal_only else ''} ({with_image} with "
        f"an image query): {len(train)} train / {len(validation)} validation / {len(test)} test",
    )
    _SOURCES[key] = out
    return out


def muvcog_processor(args: argparse.Namespace, splits: MuvcogSplits) -> MuvcogProcessor:
    """The checkpoint's processor, one over ``--word-vectors``, or word vectors trained on the training corpus."""
    image_dim = len(next(iter(splits.catalogue.values()))["image"])
    if args.processor_path:
        processor = MuvcogProcessor.from_pretrained(args.processor_path)
    elif args.word_vectors:
        processor = MuvcogProcessor.from_word_vectors_file(args.word_vectors, image_dim=image_dim)
    else:
        processor = MuvcogProcessor.from_corpus(
            iter_corpus(splits.train, splits.catalogue),
            seed=args.seed,
            epochs=args.word2vec_epochs,
            image_dim=image_dim,
        )
    if args.text_only:
        processor.text_only = True
    return processor


def _config(args: argparse.Namespace, processor: MuvcogProcessor) -> MuvcogConfig:
    values = {
        "vocab_size": processor.vocab_size,
        "word_dim": processor.word_dim,
        "image_dim": processor.image_dim,
        "num_items": len(processor.item_vocab),
    }
    return MuvcogConfig(**{**values, **args.config_overrides})


def _word_vector_init(processor: MuvcogProcessor) -> Callable[[Any], None]:
    def init_weights(model) -> None:
        encoder = model if not hasattr(model, "muvcog") else model.muvcog
        encoder.load_word_vectors(processor.word_vectors)

    return init_weights


def _encoded(processor: MuvcogProcessor, session: Mapping[str, Any], index: int):
    try:
        return processor.encode(session, index)
    except ValueError:
        return None  # no known word left (MUVCOG-T: an image-only prefix)


# --------------------------------------------------------------------------------------------------------------
# Pretraining
# --------------------------------------------------------------------------------------------------------------


def _click_ids(clicks: Sequence[Sequence[int]]) -> torch.Tensor:
    width = max(1, max((len(c) for c in clicks), default=1))
    out = torch.full((len(clicks), width), -1, dtype=torch.long)
    for i, c in enumerate(clicks):
        if c:
            out[i, : len(c)] = torch.tensor(c, dtype=torch.long)
    return out


__all__ = ["MUVCOG_K", "MuvcogSplits", "Rows", "muvcog_processor", "muvcog_source"]
