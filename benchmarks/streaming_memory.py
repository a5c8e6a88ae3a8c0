"""Streaming memory: peak RSS while N synthetic sessions go through TAGNN++'s streaming training input pipeline.

    # 1M sessions in 64 Parquet shards, kept in runs/ for a rerun (writing them takes most of the time)
    python benchmarks/streaming_memory.py --num-sessions 1000000 --num-shards 64 --corpus-dir runs/streaming-corpus-1m
    python benchmarks/streaming_memory.py --num-sessions 20000 --num-shards 8     # a short run, temporary corpus

1. **Corpus**: ``--num-sessions`` sessions of the default ``SyntheticStoreConfig`` (seed ``--seed``) and its
   catalogue, written as ``--num-shards`` Parquet shards ``sessions-XXXXX-of-NNNNN.parquet`` with the synthetic
   CLI's naming and atomic writer (the labels files are not written: the pipeline does not read them). With
   ``--corpus-dir`` an existing corpus of that many sessions is reused, else it is written there and kept;
   without it the corpus goes to a temporary folder that is deleted.
2. **Pipeline**, exactly what ``trainers/pretrain.py --model tagnn_pp --dataset sessions --data-path DIR
   --streaming`` runs: the recipe's ``prepare`` (held-out files loaded in memory, the catalogue as vocabulary,
   the training files as an ``IterableDataset`` expanded to next-item samples by ``map(batched=True)``), then
   the engine's ``split_dataset_by_node`` (rank 0 of ``--world-size``), shuffle buffer (``--shuffle-buffer``) and
   DataLoader with the TAGNN++ collator (``--batch-size``, ``--num-workers``), for one epoch; no model.
3. **Memory**: current and peak RSS of this process (the corpus is written by a child process, so its store does
   not count) after ``prepare`` and every ``--every`` sessions (100k),
   with the 1-minute load average (the machine may be shared). Sessions are counted at the loader's output: each
   session with at least two item events (``sessions_with_samples``; the others give no sample) gives exactly one
   sample whose prefix is a single item (a row of the batch's ``attention_mask`` summing to 1), so the count lags
   the reader by at most the shuffle buffer. A flat RSS curve shows that memory does not grow with the corpus.

Results go to ``benchmarks/results/streaming_memory.json`` (``--results-dir`` elsewhere); run
``python benchmarks/make_results_table.py`` afterwards to refresh ``RESULTS.md``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import current_rss_mib, peak_rss_mib, write_result  # noqa: E402
from session_transformers.data import streaming  # noqa: E402
from session_transformers.data.io import write_records  # noqa: E402
from session_transformers.data.schema import CATALOGUE_FEATURES, SESSION_FEATURES  # noqa: E402
from session_transformers.data.synthetic import SyntheticStore, SyntheticStoreConfig  # noqa: E402
from session_transformers.recipes import resolve_data_arguments, training_parser  # noqa: E402


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
        # in a child process, so that the store it builds does not count in this process's peak RSS
        start = time.perf_counter()
        child = multiprocessing.get_context("fork").Process(
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


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-sessions", type=int, default=1_000_000)
    parser.add_argument("--num-shards", type=int, default=64, help="Parquet shards (the last 2 are held out)")
    parser.add_argument("--corpus-dir", type=Path, default=None, help="reuse or keep the corpus here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=int, default=100_000, help="record RSS every N sessions")
    parser.add_argument("--batch-size", type=int, default=50, help="TAGNN++'s paper batch size")
    parser.add_argument("--shuffle-buffer", type=int, default=10_000)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--world-size", type=int, default=1, help="stream rank 0's part of N processes")
    parser.add_argument("--results-dir", type=Path, default=None, help="default: benchmarks/results")
    args = parser.parse_args(argv)
    if args.num_shards < 3 or args.num_shards > args.num_sessions:
        parser.error("--num-shards must be >= 3 (2 are held out) and at most --num-sessions")
    load_start = _load1()
    tmp = None
    if args.corpus_dir is None:
        tmp = Path(tempfile.mkdtemp(prefix="streaming-memory-"))
    folder = args.corpus_dir or tmp
    try:
        print(f"corpus: {args.num_sessions} sessions in {args.num_shards} shards at {folder}", flush=True)
        corpus = _corpus(args, folder)
        run = measure(args, folder)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    figures = {
        "sessions": args.num_sessions,
        "peak_rss_mib": run.pop("peak_rss_mib"),
        "rss_after_prepare_mib": run.pop("rss_after_prepare_mib"),
        "rss_growth_while_streaming_mib": run.pop("rss_growth_while_streaming_mib"),
        "samples_per_s": run.pop("samples_per_s"),
        "load_average_1m": {"start": load_start, "end": _load1()},
        "settings": {
            "batch_size": args.batch_size,
            "shuffle_buffer": args.shuffle_buffer,
            "num_workers": args.num_workers,
            "world_size": args.world_size,
        },
        "corpus": corpus,
        "stream": {k: v for k, v in run.items() if k not in ("rss_checkpoints", "data")},
        "rss_checkpoints": run["rss_checkpoints"],
    }
    data = (
        f"synthetic store, default config, seed {args.seed}: {args.num_sessions} sessions in {corpus['session_files']} "
        f"Parquet shards; {run['data'].replace(str(folder), '<corpus>')}"
    )
    path = write_result("streaming_memory", figures, data=data, results_dir=args.results_dir)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
