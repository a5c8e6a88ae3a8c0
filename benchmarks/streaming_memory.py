"""Streaming memory: peak RSS while N synthetic sessions stream through a family's input pipeline (no model).

    # 1M sessions in 64 Parquet shards, kept in runs/ for a rerun (writing them takes most of the time)
    python -m benchmarks.streaming_memory --num-sessions 1000000 --num-shards 64 --corpus-dir runs/streaming-corpus-1m
    python -m benchmarks.streaming_memory --num-sessions 20000 --num-shards 8     # a short run, temporary corpus
    # the other processors over the same corpus (one process per family: each has its own peak RSS)
    nice -n 10 python -m benchmarks.streaming_memory --processor ceres --num-sessions 1000000 --num-shards 64 \
        --corpus-dir runs/streaming-corpus-1m
    python -m benchmarks.streaming_memory --processor all --corpus-dir DIR ...   # every family, one child process each

1. **Corpus**: ``--num-sessions`` sessions of the default ``SyntheticStoreConfig`` (seed ``--seed``) and its
   catalogue, written as ``--num-shards`` Parquet shards ``sessions-XXXXX-of-NNNNN.parquet`` with the synthetic
   CLI's naming and atomic writer (the labels files are not written: the pipeline does not read them). With
   ``--corpus-dir`` an existing corpus of that many sessions is reused, else it is written there and kept;
   without it the corpus goes to a temporary folder that is deleted.
2. **Pipeline** (``--processor``):

   * ``tagnn_pp`` (default), exactly what ``trainers/pretrain.py --model tagnn_pp --dataset sessions --data-path
     DIR --streaming`` runs: the recipe's ``prepare`` (held-out files loaded in memory, the catalogue as
     vocabulary, the training files as an ``IterableDataset`` expanded to next-item samples by
     ``map(batched=True)``), then the engine's ``split_dataset_by_node`` (rank 0 of ``--world-size``), shuffle
     buffer (``--shuffle-buffer``) and DataLoader with the TAGNN++ collator, for one epoch; no model.
   * ``ceres``, ``ubm``, ``muvcog``, ``product_byol``: the family's processor is fitted on the first
     ``--fit-sessions`` sessions and the catalogue (WordPiece / Unigram tokenizers of ``--vocab-size``
     pieces; MUVCOG's word vectors with one skip-gram epoch), then **every** session of the corpus (all its files)
     is streamed by :func:`~session_transformers.data.streaming.stream_sessions` (``datasets``'
     ``IterableDataset``, one shard per file) through the same ``shuffled_split`` and DataLoader into the
     family's pretraining collator: CERES ``CeresMaskingCollator`` (processor + masking), UBM
     ``UbmStage2Collator`` (the stage-2 views of sessions), MUVCOG ``MuvcogPretrainCollator`` (both graph views
     of each session and of its one-query-masked positive), Product BYOL
     ``ProductByolProcessor.pair_dataset(stream, streaming=True)`` (pairs made lazily by a batched ``map``) and
     ``processor.collate`` (tokenised pair batches). Sessions a family cannot take (CERES, UBM: no text
     interaction; MUVCOG: no query) are counted as ``skipped`` and left out of their batch, as the recipes do.

3. **Memory**: current and peak RSS of this process (the corpus is written by a child process, so its store does
   not count) after ``prepare`` / setup and every ``--every`` sessions (100k), with the 1-minute load average (the
   machine may be shared). TAGNN++ counts sessions at the loader's output: each session with at least two item
   events (``sessions_with_samples``; the others give no sample) gives exactly one sample whose prefix is a
   single item (a row of the batch's ``attention_mask`` summing to 1), so the count lags the reader by at most the
   shuffle buffer. The other families count the sessions of each collated batch (kept and skipped); Product BYOL
   counts sessions where its pairing ``map`` reads them (its batches are pairs). A flat RSS curve shows that
   memory does not grow with the corpus.

Results go to ``benchmarks/results/streaming_memory.json`` (TAGNN++) and ``streaming_memory_<family>.json``
(``--results-dir`` elsewhere); run ``python -m benchmarks.make_results_table`` afterwards to refresh ``RESULTS.md``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from itertools import islice
from pathlib import Path

from session_transformers.data import streaming
from session_transformers.data.io import iter_records, write_records
from session_transformers.data.schema import (
    CATALOGUE_FEATURES,
    QUERY_SUBJECTS,
    SESSION_FEATURES,
)
from session_transformers.data.synthetic import SyntheticStore, SyntheticStoreConfig
from session_transformers.recipes import resolve_data_arguments, training_parser

from ._common import current_rss_mib, peak_rss_mib, write_result

ROOT = Path(__file__).resolve().parents[1]

TIMING_NOTE = (
    "a memory benchmark: sessions_per_s and the seconds in stream / rss_checkpoints may be taken on a shared "
    "machine (see load_average_1m): not speed figures"
)


def _load1() -> float:
    return round(os.getloadavg()[0], 2)


def write_corpus(folder: Path, num_sessions: int, num_shards: int, seed: int) -> None:
    """The catalogue and ``num_shards`` session shards of the default store."""
    start = time.perf_counter()
    store = SyntheticStore(SyntheticStoreConfig(seed=seed, num_sessions=num_sessions))
    keys = list(CATALOGUE_FEATURES)
    write_records(
        ({k: r[k] for k in keys} for r in store.catalogue), folder / "catalogue.parquet", CATALOGUE_FEATURES
    )
    for i, (a, b) in enumerate(streaming.shard_bounds(num_sessions, num_shards)):
        sessions = ({"session_id": s["session_id"], "events": s["events"]} for s in store.iter_sessions(a, b))
        write_records(
            sessions, folder / streaming.shard_name("sessions", i, num_shards, "parquet"), SESSION_FEATURES
        )
        print(
            f"  wrote shard {i + 1}/{num_shards} ({b} sessions) at {time.perf_counter() - start:.0f}s",
            flush=True,
        )


def _corpus(args, folder: Path) -> dict:
    if any(folder.glob("sessions*")):
        files = streaming.session_files(folder)
        n = sum(streaming.num_records(f) for f in files)
        if n != args.num_sessions:
            raise SystemExit(
                f"{folder} holds {n} sessions, not --num-sessions {args.num_sessions}: remove it"
            )
        info = {"written": False}
    else:
        folder.mkdir(parents=True, exist_ok=True)
        # in a child process, so that the store it builds does not count in this process's peak RSS (spawned: a
        # forked child of a process that has run multi-threaded OpenMP deadlocks in its first parallel region)
        start = time.perf_counter()
        child = multiprocessing.get_context("spawn").Process(
            target=write_corpus, args=(folder, args.num_sessions, args.num_shards, args.seed)
        )
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"writing the corpus failed (exit code {child.exitcode})")
        info = {"written": True, "write_seconds": round(time.perf_counter() - start, 1)}
    files = streaming.session_files(folder)
    info.update(
        session_files=len(files),
        sessions=args.num_sessions,
        parquet_mib=round(sum(f.stat().st_size for f in files) / 2**20, 1),
    )
    return info


def measure(args, folder: Path) -> dict:
    """Run the pipeline over the corpus once; RSS checkpoints every ``args.every`` sessions."""
    argv = ["--model", "tagnn_pp", "--dataset", "sessions", "--data-path", str(folder), "--streaming"]
    parser, recipe, _ = training_parser("streaming memory", argv)
    targs = resolve_data_arguments(parser, parser.parse_args(argv), recipe)
    targs.shuffle_buffer = args.shuffle_buffer  # the engine's flag (trainers/pretrain.py)
    rss_start = current_rss_mib()
    start = time.perf_counter()
    data = recipe.pretrain.prepare(targs)
    prepare_s = time.perf_counter() - start
    rss_prepared = current_rss_mib()
    print(f"prepared in {prepare_s:.1f}s, RSS {rss_prepared:.0f} MiB: {data.description}", flush=True)
    stream = streaming.shuffled_split(
        data.train_dataset, rank=0, world_size=args.world_size, seed=0, buffer_size=args.shuffle_buffer
    )
    stream.set_epoch(0)
    loader = streaming.stream_loader(
        stream, data.collate_fn, batch_size=args.batch_size, num_workers=args.num_workers
    )
    checkpoints: list[dict] = []
    sessions = samples = batches = 0
    next_mark = args.every
    start, cpu = time.perf_counter(), time.process_time()

    def _mark() -> None:
        checkpoints.append(
            {
                "sessions": sessions,
                "samples": samples,
                "seconds": round(time.perf_counter() - start, 1),
                "rss_mib": round(current_rss_mib(), 1),
                "peak_rss_mib": round(peak_rss_mib(), 1),
                "load_1m": _load1(),
            }
        )
        print(f"  {checkpoints[-1]}", flush=True)

    for batch in loader:
        batches += 1
        samples += len(batch["labels"])
        sessions += int((batch["attention_mask"].sum(1) == 1).sum())
        if sessions >= next_mark:
            _mark()
            next_mark += args.every
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    _mark()
    return {
        "prepare_seconds": round(prepare_s, 1),
        "rss_start_mib": round(rss_start, 1),
        "rss_after_prepare_mib": round(rss_prepared, 1),
        "sessions_with_samples": sessions,
        "samples": samples,
        "batches": batches,
        "seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "samples_per_s": round(samples / wall, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "rss_growth_while_streaming_mib": round(checkpoints[-1]["rss_mib"] - checkpoints[0]["rss_mib"], 1),
        "data": data.description,
        "rss_checkpoints": checkpoints,
    }


# -- the other families: processor fitted on a prefix, every session streamed through its collator ------------

FAMILIES = ("tagnn_pp", "ceres", "ubm", "muvcog", "product_byol")
"""The families this benchmark has a pipeline for (TAGNN++: its trainer's own; the others: :func:`_build`). Not read
from the family descriptors: each pipeline is this file's code; ``tests/test_families.py`` checks that it names every
family of the package."""


def _pretraining_batch(family: str) -> int:
    """The family's pretraining batch (``TrainingProtocol.batch_size`` of its recipe's last pretraining stage: the
    stage whose collator the benchmark streams into, UBM's stage 2): sessions, or pairs for Product BYOL."""
    from session_transformers.recipes import RECIPES

    recipe = RECIPES[family]
    return recipe.stage_protocol(recipe.pretraining_stages()[-1]).batch_size


BATCH_SIZES = {family: _pretraining_batch(family) for family in FAMILIES}
"""Each recipe's pretraining batch (TrainingProtocol.batch_size): sessions, or pairs for Product BYOL."""


def _catalogue(folder: Path) -> tuple[dict[str, dict], int]:
    """``item_id -> record`` without image vectors (the text families never read them), and the image size."""
    path = streaming.catalogue_path(folder, prefer=".parquet")
    if path is None:
        raise SystemExit(f"{folder}: no catalogue file")
    records, image_dim = {}, 0
    for rec in iter_records(path):
        image_dim = image_dim or len(rec.get("image") or [])
        records[rec["item_id"]] = {k: v for k, v in rec.items() if k != "image"}
    return records, image_dim


def _prefix(files: list[Path], n: int) -> list[dict]:
    """The first ``n`` sessions of the corpus (the fitting sample)."""
    return list(islice(streaming.iter_sessions([(str(f), 0, None) for f in files]), n))


def _pieces(files: list[Path], limit: int | None) -> list[streaming.Piece]:
    """Every file whole, or (``--max-sessions``) the pieces of the corpus's first ``limit`` sessions."""
    pieces: list[streaming.Piece] = []
    for f in files:
        if limit is None:
            pieces.append((str(f), 0, None))
            continue
        n = min(limit, streaming.num_records(f))
        pieces.append((str(f), 0, n))
        limit -= n
        if limit == 0:
            break
    return pieces


def _text_session(session: dict) -> bool:
    """CERES and UBM read text: a session with neither an item nor a text query is skipped (the recipes' rule)."""
    return any(ev["subject"] == "item" or ev["subject"] in QUERY_SUBJECTS for ev in session["events"])


class _Counted:
    """A collator over session rows that leaves out the sessions its family cannot take and says how many rows it
    read: ``{"batch", "sessions", "skipped"}``, so the counts reach the main process from any DataLoader worker."""

    def __init__(self, collate: Callable, accepts: Callable[[dict], bool], size: Callable[[dict], int]):
        self.collate, self.accepts, self.size = collate, accepts, size

    def __call__(self, rows: list[dict]) -> dict:
        kept = [r for r in rows if self.accepts(r)]
        batch = self.collate(kept) if kept else None
        collated = self.size(batch) if batch is not None else 0
        return {"batch": batch, "sessions": len(rows), "skipped": len(rows) - collated, "rows": collated}


def _build(family: str, args, prefix: list[dict], catalogue: dict, image_dim: int):
    """``(collate over session rows or None, description)``; for Product BYOL also its processor."""
    if family == "ceres":
        from session_transformers.models.ceres.processing_ceres import (
            CeresMaskingCollator,
            CeresProcessor,
            iter_corpus,
        )
        from session_transformers.processing_utils import catalogue_attribute_names

        processor = CeresProcessor.train_tokenizer(
            iter_corpus(prefix, catalogue),
            vocab_size=args.vocab_size,
            attribute_names=catalogue_attribute_names(catalogue),
        )
        collate = CeresMaskingCollator(processor, catalogue, seed=1)
        what = f"CeresProcessor (WordPiece, {len(processor.tokenizer)} tokens) + CeresMaskingCollator"
        return (
            _Counted(collate, _text_session, lambda b: len(b["item_session_index"].unique())),
            what,
            processor,
        )
    if family == "ubm":
        from session_transformers.models.ubm.collating_ubm import UbmStage2Collator
        from session_transformers.models.ubm.processing_ubm import UbmProcessor, iter_corpus
        from session_transformers.processing_utils import catalogue_attribute_names

        processor = UbmProcessor.train_tokenizer(
            iter_corpus(prefix, catalogue),
            vocab_size=args.vocab_size,
            attribute_names=catalogue_attribute_names(catalogue),
        )
        collate = UbmStage2Collator(processor, catalogue, seed=1)
        what = f"UbmProcessor (WordPiece, {len(processor.tokenizer)} tokens) + UbmStage2Collator"
        return _Counted(collate, _text_session, lambda b: len(b["interaction_mask"])), what, processor
    if family == "muvcog":
        from session_transformers.models.muvcog.processing_muvcog import (
            MuvcogProcessor,
            click_code,
            iter_corpus,
        )
        from session_transformers.models.muvcog.recipe import MuvcogPretrainCollator

        processor = MuvcogProcessor.from_corpus(
            iter_corpus(prefix, catalogue), seed=0, epochs=args.word2vec_epochs, image_dim=image_dim or 512
        )
        pretrain = MuvcogPretrainCollator(processor, seed=1)

        def encoded(session: dict):
            try:
                return processor.encode(session)
            except ValueError:  # no query with a known word or an image: the recipe leaves it out
                return None

        def collate(sessions: list[dict]) -> dict:
            rows = [
                {
                    "index": click_code(s["session_id"]),
                    "encoded": e,
                    "clicks": [click_code(c) for c in processor.clicked_items(s)],
                }
                for s, e in ((s, encoded(s)) for s in sessions)
                if e is not None
            ]
            return pretrain(rows) if rows else None

        what = f"MuvcogProcessor ({processor.vocab_size} words, image_dim {processor.image_dim}) + MuvcogPretrainCollator"
        # sessions without a query are known only once encoded: the batch's size says how many were kept
        return _Counted(collate, lambda s: True, lambda b: len(b["num_queries"])), what, processor
    if family == "product_byol":
        from session_transformers.models.product_byol.processing_product_byol import ProductByolProcessor

        seen = (
            catalogue[ev["item_id"]]["title"]
            for s in prefix
            for ev in s["events"]
            if ev["subject"] == "item" and (catalogue.get(ev["item_id"]) or {}).get("title")
        )
        processor = ProductByolProcessor.train(
            seen, vocab_size=args.vocab_size, catalogue=catalogue, category_level=-1
        )
        what = (
            f"ProductByolProcessor (Unigram, {processor.vocab_size} pieces, {processor.num_categories} categories): "
            "pair_dataset(session stream, streaming=True) + processor.collate"
        )
        return None, what, processor
    raise ValueError(f"unknown family {family!r}")


def measure_family(args, folder: Path, family: str) -> dict:
    """Fit ``family``'s processor on a prefix, then stream every session through its collator once."""
    rss_start = current_rss_mib()
    start = time.perf_counter()
    files = streaming.session_files(folder)
    catalogue, image_dim = _catalogue(folder)
    prefix = _prefix(files, args.fit_sessions)
    collate, what, processor = _build(family, args, prefix, catalogue, image_dim)
    del prefix
    sessions_stream = streaming.stream_sessions(_pieces(files, args.max_sessions))
    read = {"sessions": 0}
    if family == "product_byol":

        def count(
            batch: dict,
        ) -> dict:  # the reader's count: pair batches do not say which session they came from
            read["sessions"] += len(batch["session_id"])
            return batch

        counted = sessions_stream.map(count, batched=True, batch_size=256, features=SESSION_FEATURES)
        rows = processor.pair_dataset(counted, catalogue, streaming=True)
        collate_fn = processor.collate
    else:
        rows, collate_fn = sessions_stream, collate
    setup_s = time.perf_counter() - start
    rss_setup = current_rss_mib()
    print(f"{family}: set up in {setup_s:.1f}s, RSS {rss_setup:.0f} MiB: {what}", flush=True)
    stream = streaming.shuffled_split(
        rows, rank=0, world_size=args.world_size, seed=0, buffer_size=args.shuffle_buffer
    )
    stream.set_epoch(0)
    loader = streaming.stream_loader(
        stream, collate_fn, batch_size=args.batch_size, num_workers=args.num_workers
    )
    checkpoints: list[dict] = []
    sessions = skipped = out_rows = batches = 0
    next_mark = args.every
    start, cpu = time.perf_counter(), time.process_time()

    def _mark() -> None:
        checkpoints.append(
            {
                "sessions": sessions,
                "seconds": round(time.perf_counter() - start, 1),
                "rss_mib": round(current_rss_mib(), 1),
                "peak_rss_mib": round(peak_rss_mib(), 1),
                "load_1m": _load1(),
            }
        )
        print(f"  {checkpoints[-1]}", flush=True)

    for out in loader:
        batches += 1
        if family == "product_byol":
            sessions = read["sessions"]
            out_rows += len(out["input_ids"])
        else:
            sessions += out["sessions"]
            skipped += out["skipped"]
            out_rows += out["rows"]
        if sessions >= next_mark:
            _mark()
            next_mark += args.every * (1 + (sessions - next_mark) // args.every)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    if family == "product_byol":
        sessions = read["sessions"]
    if not checkpoints or checkpoints[-1]["sessions"] != sessions:
        _mark()
    kind = "pairs" if family == "product_byol" else "sessions_collated"
    stream_figures = {
        "setup_seconds": round(setup_s, 1),
        "rss_start_mib": round(rss_start, 1),
        "sessions_read": sessions,
        kind: out_rows,
        "batches": batches,
        "seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
    }
    if family != "product_byol":
        stream_figures["sessions_skipped"] = skipped
    return {
        "rss_after_setup_mib": round(rss_setup, 1),
        "sessions_per_s": round(sessions / wall, 1) if wall > 0 else None,
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "rss_growth_while_streaming_mib": round(checkpoints[-1]["rss_mib"] - checkpoints[0]["rss_mib"], 1),
        "rss_range_while_streaming_mib": round(
            max(c["rss_mib"] for c in checkpoints) - min(c["rss_mib"] for c in checkpoints), 1
        ),
        "processor": what,
        "stream": stream_figures,
        "rss_checkpoints": checkpoints,
    }


def _settings(args) -> dict:
    return {
        "batch_size": args.batch_size,
        "shuffle_buffer": args.shuffle_buffer,
        "num_workers": args.num_workers,
        "world_size": args.world_size,
    }


def _run_tagnn_pp(args, folder: Path, corpus: dict, load_start: float) -> Path:
    run = measure(args, folder)
    figures = {
        "sessions": args.num_sessions,
        "peak_rss_mib": run.pop("peak_rss_mib"),
        "rss_after_prepare_mib": run.pop("rss_after_prepare_mib"),
        "rss_growth_while_streaming_mib": run.pop("rss_growth_while_streaming_mib"),
        "samples_per_s": run.pop("samples_per_s"),
        "load_average_1m": {"start": load_start, "end": _load1()},
        "settings": _settings(args),
        "corpus": corpus,
        "stream": {k: v for k, v in run.items() if k not in ("rss_checkpoints", "data")},
        "rss_checkpoints": run["rss_checkpoints"],
    }
    data = (
        f"synthetic store, default config, seed {args.seed}: {args.num_sessions} sessions in {corpus['session_files']} "
        f"Parquet shards; {run['data'].replace(str(folder), '<corpus>')}"
    )
    return write_result("streaming_memory", figures, data=data, results_dir=args.results_dir)


def _run_family(args, folder: Path, corpus: dict, load_start: float, family: str) -> Path:
    run = measure_family(args, folder, family)
    figures = {
        "processor": family,
        "sessions": args.num_sessions,
        "peak_rss_mib": run["peak_rss_mib"],
        "rss_after_setup_mib": run["rss_after_setup_mib"],
        "rss_growth_while_streaming_mib": run["rss_growth_while_streaming_mib"],
        "rss_range_while_streaming_mib": run["rss_range_while_streaming_mib"],
        "sessions_per_s": run["sessions_per_s"],
        "timing_note": TIMING_NOTE,
        "load_average_1m": {"start": load_start, "end": _load1()},
        "settings": {
            **_settings(args),
            "fit_sessions": args.fit_sessions,
            "max_sessions": args.max_sessions,
            **(
                {"word2vec_epochs": args.word2vec_epochs}
                if family == "muvcog"
                else {"vocab_size": args.vocab_size}
            ),
        },
        "corpus": corpus,
        "stream": run["stream"],
        "rss_checkpoints": run["rss_checkpoints"],
    }
    streamed = (
        "every file streamed" if args.max_sessions is None else f"its first {args.max_sessions} streamed"
    )
    data = (
        f"synthetic store, default config, seed {args.seed}: {args.num_sessions} sessions in {corpus['session_files']} "
        f"Parquet shards ({streamed}) and its catalogue; {run['processor']}, fitted on the first "
        f"{args.fit_sessions} sessions and the catalogue"
    )
    return write_result(f"streaming_memory_{family}", figures, data=data, results_dir=args.results_dir)


def _children(argv: list[str]) -> list[Path]:
    """``--processor all``: one child process per family (a process's peak RSS only grows), in order."""
    base, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--processor":
            skip = True
        elif not a.startswith("--processor="):
            base.append(a)
    paths = []
    for family in FAMILIES:
        cmd = [sys.executable, "-m", "benchmarks.streaming_memory", *base, "--processor", family]
        print(f"== {family}: {' '.join(cmd)}", flush=True)
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        sys.stdout.write(proc.stdout)
        if proc.returncode != 0:
            raise SystemExit(f"{family} failed (exit code {proc.returncode}):\n{proc.stderr[-3000:]}")
        paths.append(Path(proc.stdout.strip().splitlines()[-1].removeprefix("wrote ")))
    return paths


def main(argv: list[str] | None = None) -> Path | list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--processor",
        choices=(*FAMILIES, "all"),
        default="tagnn_pp",
        help="the family whose pipeline is streamed (all: each in its own process)",
    )
    parser.add_argument("--num-sessions", type=int, default=1_000_000)
    parser.add_argument("--num-shards", type=int, default=64, help="Parquet shards (the last 2 are held out)")
    parser.add_argument("--corpus-dir", type=Path, default=None, help="reuse or keep the corpus here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=int, default=100_000, help="record RSS every N sessions")
    parser.add_argument(
        "--batch-size", type=int, default=None, help=f"default: the recipe's pretraining batch {BATCH_SIZES}"
    )
    parser.add_argument("--shuffle-buffer", type=int, default=10_000)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--world-size", type=int, default=1, help="stream rank 0's part of N processes")
    parser.add_argument("--fit-sessions", type=int, default=5000, help="sessions the processor is fitted on")
    parser.add_argument(
        "--max-sessions",
        type=int,
        default=None,
        help="stream only the corpus's first N sessions (a partial run; not TAGNN++)",
    )
    parser.add_argument("--vocab-size", type=int, default=4000, help="tokenizer pieces (CERES, UBM, BYOL)")
    parser.add_argument(
        "--word2vec-epochs",
        type=int,
        default=1,
        help="MUVCOG's skip-gram epochs (0: the fitted vocabulary with its random initial vectors; the collator "
        "never reads the vectors)",
    )
    parser.add_argument("--results-dir", type=Path, default=None, help="default: benchmarks/results")
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(raw)
    if args.num_shards < 3 or args.num_shards > args.num_sessions:
        parser.error("--num-shards must be >= 3 (2 are held out) and at most --num-sessions")
    if args.max_sessions is not None and (args.processor == "tagnn_pp" or args.max_sessions < 1):
        parser.error("--max-sessions (>= 1) applies to the other processors, not to tagnn_pp")
    if args.processor in ("product_byol", "all") and args.num_workers:
        parser.error("--processor product_byol counts sessions where they are read: use --num-workers 0")
    if args.processor == "all":  # one child process per family, all on the corpus of --corpus-dir
        if args.corpus_dir is None:
            parser.error("--processor all needs --corpus-dir (the corpus every family streams, kept there)")
        print(
            f"corpus: {args.num_sessions} sessions in {args.num_shards} shards at {args.corpus_dir}",
            flush=True,
        )
        _corpus(args, args.corpus_dir)
        return _children(raw)
    if args.batch_size is None:
        args.batch_size = BATCH_SIZES[args.processor]
    load_start = _load1()
    tmp = None
    if args.corpus_dir is None:
        tmp = Path(tempfile.mkdtemp(prefix="streaming-memory-"))
    folder = args.corpus_dir or tmp
    try:
        print(f"corpus: {args.num_sessions} sessions in {args.num_shards} shards at {folder}", flush=True)
        corpus = _corpus(args, folder)
        if args.processor == "tagnn_pp":
            path = _run_tagnn_pp(args, folder, corpus, load_start)
        else:
            path = _run_family(args, folder, corpus, load_start, args.processor)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {path}", flush=True)
    return path


if __name__ == "__main__":
    main()
