"""TAGNN++'s training recipe: next-item prediction on the synthetic store, on plain session lines in the SR-GNN
two-file format (``--dataset session_lines``: a shop's own ``train_sessions.txt`` + ``test.tsv``; ``diginetica`` is
the same format at its default path), or on a folder of session files in the package schema with a catalogue
(``--dataset sessions``, streamed with ``--streaming`` by ``trainers/pretrain.py``).

Pretraining and fine-tuning are the same task here (TAGNN++ is trained end to end on next-item prediction);
evaluation ranks the whole catalogue and reports HR@K and MRR@K (K = 10, 20), ties pessimistic.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from datasets import Dataset, IterableDataset

from ... import metrics
from ...data.loaders import NextItemSplits
from ...data.schema import session_item_ids
from ...protocol import TrainingProtocol
from ...trainer_utils import (
    PreparedData,
    QuickstartJob,
    Recipe,
    Task,
    limit_splits,
    split_in_order,
    synthetic_store,
)


def synthetic_next_item(args: argparse.Namespace) -> NextItemSplits:
    """Next-item samples of the synthetic store: train / validation / test by session (every prefix of each)."""
    from ...data.loaders import next_item_samples

    store = synthetic_store(args)
    cfg = store.config
    seqs = [session_item_ids(s) for s in store.iter_sessions(0, cfg.num_sessions)]
    # Sessions, not prefixes, are split, so no session has prefixes on both sides.
    train_seqs, val_seqs, test_seqs = split_in_order(seqs, args.eval_fraction, args.validation_fraction)
    train = next_item_samples(train_seqs)
    validation = next_item_samples(val_seqs) if val_seqs else None
    test = next_item_samples(test_seqs)
    stats = {
        "train_sessions": len(train_seqs),
        "validation_sessions": len(val_seqs),
        "test_sessions": len(test_seqs),
    }
    return NextItemSplits(train, validation, test, list(store.item_ids), stats)


def diginetica_next_item(args: argparse.Namespace) -> NextItemSplits:
    """The SR-GNN protocol: training prefixes (validation held out by session), ``test.tsv``, full catalogue;
    ``--top-items K`` reduces it to the K most frequent training items."""
    from ...data.loaders import load_next_item_splits

    return load_next_item_splits(
        args.data_path,
        validation_fraction=args.validation_fraction,
        top_items=getattr(args, "top_items", None),
    )


def sessions_next_item(args: argparse.Namespace) -> NextItemSplits:
    """Next-item samples of a folder of session files in the package schema (e.g. the synthetic store written with
    ``python -m session_transformers.data.synthetic --out DIR --num-shards N``).

    Validation and test are held-out files, loaded in memory: the last file is test, the one before it
    validation; with 2 files the validation split is the last ``--validation-fraction`` of the first file's
    sessions, with 1 file both are its last sessions, as in the synthetic source
    (:func:`~session_transformers.data.streaming.split_corpus`). The training split is the other files: streamed
    (a ``datasets.IterableDataset``, one shard per file, expanded to every prefix with its next item as it is read)
    with ``--streaming``, else loaded in memory with the same samples in the same order. Every item of every
    session must be in the folder's ``catalogue.parquet`` / ``.jsonl`` (one ``{"item_id": ...}`` record per item
    is enough for TAGNN++; an item missing from it raises ``InvalidRecordError`` naming the file, the row and the
    event, before training); the vocabulary is the catalogue's items that occur in the training split (one pass
    over the item IDs of the training files, also when streaming). ``catalogue_ids`` is empty without a catalogue:
    ``--processor-path`` then gives the vocabulary.
    """
    from ...data import streaming

    if not args.data_path:
        raise ValueError(
            "--dataset sessions needs --data-path DIR, a folder of session files and its catalogue"
        )
    corpus = streaming.split_corpus(
        args.data_path, validation_fraction=args.validation_fraction, eval_fraction=args.eval_fraction
    )
    if getattr(args, "streaming", False):
        train = streaming.stream_next_item_samples(streaming.stream_sessions(corpus.train))
    else:
        train = streaming.next_item_dataset(corpus.train)
    validation = streaming.next_item_dataset(corpus.validation) if corpus.validation else None
    test = streaming.next_item_dataset(corpus.test)
    catalogue = corpus.catalogue_path()
    if catalogue is None and not args.processor_path:
        raise FileNotFoundError(
            f"{args.data_path}: no catalogue.parquet or catalogue.jsonl for the item vocabulary (one record per "
            'item; {"item_id": ...} is all TAGNN++ reads): add one, or give --processor-path'
        )
    ids: list[str] = []
    not_trained = 0
    if catalogue is not None:
        # every session item must be in the catalogue (a clear error naming the file, row and event, read before
        # training); the vocabulary is the catalogue's items that the training split holds: an item the model
        # never trained on is not a candidate (a held-out target outside it is a miss, num_unknown_targets)
        catalogue_ids = streaming.catalogue_item_ids(catalogue)
        known = frozenset(catalogue_ids)
        trained = streaming.catalogued_item_ids(corpus.train, known)
        streaming.catalogued_item_ids([*corpus.validation, *corpus.test], known)
        ids = [i for i in catalogue_ids if i in trained]
        not_trained = len(catalogue_ids) - len(ids)
    stats = {"session_files": len(corpus.files), "train_pieces": len(corpus.train)}
    if corpus.train_sessions is not None:
        stats["train_sessions"] = corpus.train_sessions
    if not isinstance(train, IterableDataset):
        stats["train_samples"] = len(train)
    stats.update(
        validation_sessions=len(set(validation["session_id"])) if validation is not None else 0,
        validation_samples=len(validation) if validation is not None else 0,
        test_sessions=len(set(test["session_id"])),
        test_samples=len(test),
    )
    if catalogue is not None:
        stats["catalogue_items_not_in_training"] = not_trained
    return NextItemSplits(train, validation, test, ids, {"rule": corpus.rule, **stats})


def _prepare_tagnn_pp(args: argparse.Namespace) -> PreparedData:
    from . import TagnnPPConfig, TagnnPPProcessor

    if getattr(args, "streaming", False):
        if args.dataset != "sessions":
            raise ValueError(
                f"--streaming streams --dataset sessions (a folder of session files), not {args.dataset!r}: "
                "write the synthetic store with python -m session_transformers.data.synthetic --out DIR "
                "--num-shards N and train with --dataset sessions --data-path DIR"
            )
        if not hasattr(args, "shuffle_buffer"):  # the streaming engine's flag: trainers/pretrain.py only
            raise ValueError("--streaming is supported by trainers/pretrain.py only")
    source = {
        "synthetic": synthetic_next_item,
        "diginetica": diginetica_next_item,
        "session_lines": diginetica_next_item,  # the same two-file format, for a shop's own sessions
        "sessions": sessions_next_item,
    }[args.dataset]
    splits = source(args)
    train, validation, test = limit_splits(args, splits.train, splits.validation, splits.test)
    if args.processor_path:
        processor = TagnnPPProcessor.from_pretrained(args.processor_path)
    else:
        # The vocabulary is the catalogue of the source: the items of its training data (the synthetic store: its
        # product list); the protocol ranks every one of them.
        processor = TagnnPPProcessor.from_sessions([splits.catalogue_ids])
    config = TagnnPPConfig(num_items=processor.num_items, **args.config_overrides)
    catalogue_size = len(splits.catalogue_ids or processor.item_vocab)
    # a training case whose prefix holds no item of the vocabulary teaches nothing: left out and counted; such an
    # evaluation case stays, as a miss (the collator gives it label -100), like a target outside the vocabulary
    # (both counted in num_unknown_targets), so that every case of a split is in its denominator
    vocab = _vocab(processor)
    train, dropped_train = _encodable(train, vocab)
    if dropped_train:
        splits.statistics["train_cases_without_known_item_dropped"] = dropped_train
    for split, ds in (("validation", validation), ("test", test)):
        if not isinstance(ds, Dataset) or len(ds) == 0:
            continue
        table = ds.select_columns(["item_ids", "target"]).with_format("arrow")[:]
        any_known = _any_known(table["item_ids"], vocab)
        if n := int((~any_known).sum()):
            splits.statistics[f"{split}_cases_without_known_item_counted_as_misses"] = n
        # what the split's num_unknown_targets will report: unknown target, or no known prefix item, or both
        target_known = pc.is_in(table["target"], value_set=vocab).to_numpy(zero_copy_only=False)
        if n := int((~(any_known & target_known)).sum()):
            splits.statistics[f"{split}_cases_scored_as_misses"] = n
    if isinstance(train, Dataset) and (cut := _longer_than(train, processor.max_length)):
        splits.statistics["train_prefixes_cut_to_max_length"] = cut
    if args.dataset == "synthetic":
        what = f"synthetic store (seed {args.seed})"
    elif args.dataset == "sessions":
        mode = "streamed" if isinstance(train, IterableDataset) else "in memory"
        what = (
            f"{args.data_path} (session files, training split {mode}; {splits.statistics['rule']}; vocabulary: the "
            "catalogue's items of the training split)"
        )
    else:
        reduced = f", reduced to its {args.top_items} most frequent training items" if args.top_items else ""
        what = (
            f"{args.data_path} (SR-GNN protocol{reduced}; validation: {args.validation_fraction:g} of the training "
            "file's sessions, held out by session; test: test.tsv as given; vocabulary: the training file's items)"
        )
    stats = ", ".join(f"{k} {v}" for k, v in splits.statistics.items() if k != "rule")
    return PreparedData(
        processor,
        train,
        validation,
        processor.collate,
        config,
        f"{what}; {stats}; catalogue of {catalogue_size} items",
        test_dataset=test,
        example_lengths=functools.partial(_prefix_lengths, max_length=processor.max_length),
    )


def _vocab(processor) -> pa.Array:
    return pa.array(processor.item_vocab, type=pa.string())


def _any_known(column: pa.ChunkedArray, vocab: pa.Array) -> np.ndarray:
    """Per row of a list column of item IDs: does it hold an item of ``vocab`` (:func:`_vocab`)?"""
    known = pc.is_in(pc.list_flatten(column), value_set=vocab).to_numpy(zero_copy_only=False)
    any_known = np.zeros(len(column), dtype=bool)
    np.logical_or.at(any_known, pc.list_parent_indices(column).to_numpy(), known)
    return any_known


def _encodable(ds, vocab: pa.Array) -> tuple[Any, int]:
    """``ds`` without the cases whose prefix holds no item of ``vocab`` (:func:`_vocab`), and how many were left
    out (a stream, or ``None``, as it is)."""
    if not isinstance(ds, Dataset) or len(ds) == 0:
        return ds, 0
    any_known = _any_known(ds.select_columns(["item_ids"]).with_format("arrow")[:]["item_ids"], vocab)
    if any_known.all():
        return ds, 0
    return ds.select(np.flatnonzero(any_known)), int((~any_known).sum())


def _longer_than(ds, max_length: int) -> int:
    """Training prefixes longer than ``max_length`` (the processor keeps their most recent items)."""
    column = ds.select_columns(["item_ids"]).with_format("arrow")[:]["item_ids"]
    return int(pc.sum(pc.greater(pc.list_value_length(column), max_length)).as_py() or 0)


def _prefix_lengths(ds, max_length: int) -> list[int] | None:
    """Items per prefix of a split (as the processor truncates them): ``PreparedData.example_lengths``; ``None``
    for a stream (its examples are not known up front)."""
    if not isinstance(ds, Dataset):
        return None
    column = ds.select_columns(["item_ids"]).with_format("arrow")[:]["item_ids"]  # the selected rows only
    lengths = pc.list_value_length(column)
    return pc.min_element_wise(lengths, max_length).to_pylist()


def _next_item_ranks(logits: Any, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    logits = logits[0] if isinstance(logits, tuple) else logits
    return {"rank": metrics.rank_of_target(logits, labels)}


def _next_item_summarize(
    gathered: dict[str, torch.Tensor], ks: tuple[int, ...] = (10, 20)
) -> dict[str, float]:
    ranks = gathered["rank"]
    # targets outside the vocabulary (label -100) rank inf: misses, counted here
    out: dict[str, float] = {
        "num_samples": float(ranks.numel()),
        "num_unknown_targets": float(torch.isinf(ranks).sum()),
    }
    for k in ks:
        out[f"HR@{k}"] = 100.0 * metrics.hit_rate_from_ranks(ranks, k)
        out[f"MRR@{k}"] = 100.0 * metrics.mrr_from_ranks(ranks, k)
    return out


def next_item_baseline(data: PreparedData) -> dict[str, dict[str, float]]:
    """``Task.baseline``: the popularity and last-item baselines (:mod:`session_transformers.baselines`) on the
    test split, counted on the training split, with the names of
    :func:`_next_item_summarize`; ``{}`` for a streamed training split (its counts would need a second pass)."""
    from ...baselines import next_item_baselines

    test = data.test_dataset
    if not isinstance(data.train_dataset, Dataset) or not isinstance(test, Dataset):
        return {}
    return next_item_baselines(data.train_dataset, test, ks=(10, 20))


def _next_item_task() -> Task:
    from ...auto import AutoModelForNextItemPrediction

    return Task(
        _prepare_tagnn_pp,
        AutoModelForNextItemPrediction,
        _next_item_ranks,
        _next_item_summarize,
        baseline=next_item_baseline,
    )


PAPER_PROTOCOL = TrainingProtocol(
    optimizer="adam",
    learning_rate=1e-4,
    weight_decay=1e-6,
    lr_scheduler_type="step",
    lr_decay_epochs=3.0,
    lr_decay_rate=0.1,
    batch_size=50,
    num_epochs=15.0,
    max_grad_norm=None,
    select_best="HR@20",
    source="TAGNN++ paper, Sec. 4: Adam 1e-4 (betas 0.9/0.999), L2 1e-6, x0.1 every 3 epochs, batch 50, "
    "15 epochs, 10% of training sessions for validation",
)
"""TAGNN++'s protocol (the paper's Section 4). The authors' released code trains with Adam 1e-3 and L2 1e-5
instead; ``--learning-rate 1e-3 --weight-decay 1e-5`` reproduces that."""


def _add_arguments(parser) -> None:
    parser.add_argument(
        "--top-items",
        type=int,
        default=None,
        metavar="K",
        help="Diginetica-format data: keep only the K most frequent training items (a CPU-sized benchmark)",
    )
    parser.add_argument(
        "--streaming",
        action="store_true",
        help="--dataset sessions: stream the training files (a datasets.IterableDataset, never in memory) instead "
        "of loading them; trainers/pretrain.py only, with --max-steps",
    )


QUICKSTART = QuickstartJob(
    pretrain_stages=(
        (
            "--num-sessions",
            "10000",
            "--num-epochs",
            "1",
            "--batch-size",
            "100",
            "--learning-rate",
            "1e-3",
            "--max-validation-samples",
            "1000",
        ),
    ),
    finetune_task="next_item",
    finetune_args=("--num-sessions", "10000", "--max-steps", "100", "--batch-size", "100"),
    metrics=("HR@20", "MRR@20"),
    full_pretrain_stages=(
        ("--num-sessions", "20000", "--num-epochs", "1", "--batch-size", "100", "--learning-rate", "1e-3"),
    ),
    full_finetune_args=("--num-sessions", "20000", "--max-steps", "300", "--batch-size", "100"),
)
"""TAGNN++ in the main job (``trainers/quickstart.py``): next-item prediction on the synthetic store (its 4,000
products), pretrained one epoch (about 225 steps; the authors' code's Adam 1e-3), then fine-tuned 100 steps on
the same task with ``Trainer`` (the paper's Adam 1e-4). The loss flattens after about 200 steps of 100 (the
earlier 451-step version's log), so the job stops there; ``--full`` runs that version (20,000 sessions, then 300
fine-tuning steps). Training is most of its time (profiled: the target-aware readout over the whole catalogue
and its backward pass)."""

RECIPE = Recipe(
    pretrain=_next_item_task(),
    finetune={"next_item": _next_item_task()},
    datasets=("synthetic", "session_lines", "sessions", "diginetica"),
    default_data_path={"diginetica": str(Path("..") / "shared" / "data" / "diginetica")},
    protocol=PAPER_PROTOCOL,
    add_arguments=_add_arguments,
    quickstart=QUICKSTART,
)
"""``trainers/pretrain.py --model tagnn_pp`` and ``trainers/finetune.py --model tagnn_pp --task next_item``."""

__all__ = [
    "PAPER_PROTOCOL",
    "QUICKSTART",
    "RECIPE",
    "next_item_baseline",
    "diginetica_next_item",
    "sessions_next_item",
    "synthetic_next_item",
]
