"""TAGNN++ training and inference speed: samples/s per batch size, epoch time, peak memory, data-prep share.

    python -m benchmarks.tagnn_pp_speed                       # on the GPU if there is one, else the CPU
    python -m benchmarks.tagnn_pp_speed --batch-sizes 50 500 2000 --steps 200 --num-workers 8 --bf16
    python -m benchmarks.tagnn_pp_speed --eval-only --eval-batch-size 200 --name tagnn_pp_eval_order_cpu

Data: Diginetica training prefixes (``../shared/data/diginetica``; the synthetic store if absent), paper config
(hidden 120, 8 heads). For each batch size it times ``--steps`` optimiser steps after ``--warmup`` steps, through a
real ``DataLoader`` with the processor's collate function: total time, time spent waiting for the next batch
(data preparation the GPU could not overlap), peak memory, and the projected time of one epoch (719,470
samples). It also times evaluation over the test cases, in dataset order and longest first (the trainers' order),
checking that the two rank the cases alike, and the CPU latency of ``recommend`` for one session.

Reference (the authors' implementation, one H100, from the issue): 0.054 s per batch of 50 (~920 samples/s, 779 s
per Diginetica epoch, 3.4 GB peak), test-set evaluation in 21 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from session_transformers.models.tagnn_pp import (
    TagnnPPConfig,
    TagnnPPForNextItemPrediction,
    TagnnPPProcessor,
)
from session_transformers.models.tagnn_pp.recipe import _next_item_summarize, _prefix_lengths

from ._common import time_calls, write_result

ROOT = Path(__file__).resolve().parents[1]

EPOCH_SAMPLES = 719_470


def _data(args):
    path = args.data_path
    if (path / "train_sessions.txt").exists():
        from session_transformers.data.loaders import load_next_item_dataset, next_item_catalogue_ids

        train = load_next_item_dataset(path, split="train")
        test = load_next_item_dataset(path, split="test")
        ids = list(next_item_catalogue_ids(path))
        return (
            train,
            test,
            ids,
            f"Diginetica ({path.name}): {len(train)} train prefixes, {len(test)} test cases",
        )
    from argparse import Namespace

    from session_transformers.models.tagnn_pp.recipe import synthetic_next_item

    splits = synthetic_next_item(
        Namespace(
            seed=0,
            num_sessions=args.num_sessions,
            eval_fraction=0.1,
            validation_fraction=0.1,
            store_preset="default",
        )
    )
    desc = (
        f"synthetic store (seed 0, {args.num_sessions:,} sessions): {len(splits.train)} train prefixes, "
        f"{len(splits.test)} test"
    )
    return splits.train, splits.test, splits.catalogue_ids, desc


def _peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_training(model, processor, train, batch_size, args, device, lengths=None) -> dict:
    """``lengths`` given: length-grouped batches (``--group-by-length``), as the trainers draw them."""
    from session_transformers.trainer_utils import LengthGroupedEpochSampler

    sampler = LengthGroupedEpochSampler(batch_size, lengths, seed=0) if lengths is not None else None
    loader = DataLoader(
        train,
        batch_size=batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        collate_fn=processor.collate,
        num_workers=args.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=args.num_workers > 0,
        drop_last=True,
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-6)
    model.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    it = iter(loader)
    wait = 0.0
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            sync()
            start, wait = time.perf_counter(), 0.0
        t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        wait += time.perf_counter() - t0
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    sync()
    elapsed = time.perf_counter() - start
    sps = args.steps * batch_size / elapsed
    return {
        "samples_per_s": sps,
        "seconds_per_batch": elapsed / args.steps,
        "epoch_seconds_projected": EPOCH_SAMPLES / sps,
        "data_wait_share": wait / elapsed,
        "peak_memory_mib": _peak_memory_mib(device),
    }


@torch.no_grad()
def time_evaluation(model, processor, test, args, device) -> dict:
    """Scores every test case twice: in dataset order (the trainers' order before 2026-12-07) and longest first
    (theirs since: ``LengthOrderedSampler``, so that a batch is padded to about its own length). Records both times,
    HR@20 / MRR@20 in both orders and the cases ranked differently (other batch shapes round differently, which
    moves a case only where item scores lie within rounding of each other, as in an untrained model)."""
    from session_transformers import metrics
    from session_transformers.trainer_utils import LengthOrderedSampler

    model.eval()
    orders = {
        "dataset order": None,
        "longest first": LengthOrderedSampler(_prefix_lengths(test, processor.max_length)),
    }
    seconds, ranks = {}, {}
    for name, sampler in orders.items():
        loader = DataLoader(
            test,
            batch_size=args.eval_batch_size,
            sampler=sampler,
            collate_fn=processor.collate,
            num_workers=args.num_workers,
        )
        start, out = time.perf_counter(), []
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            labels = batch.pop("labels")
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
                logits = model(**batch).logits
            out.append(metrics.rank_of_target(logits.float(), labels).cpu())
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds[name] = time.perf_counter() - start
        ranks[name] = torch.cat(out)
        print(f"evaluation, {name}: {seconds[name]:.1f} s", flush=True)
    in_order = ranks["dataset order"][orders["longest first"].order]
    at_20 = {name: _next_item_summarize({"rank": r}, ks=(20,)) for name, r in ranks.items()}
    return {
        # of the model as it stands (as initialised with --eval-only), as the trainers summarise them
        "eval_metrics_by_order": {name: {k: m[k] for k in ("HR@20", "MRR@20")} for name, m in at_20.items()},
        "eval_seconds": seconds["longest first"],  # as the trainers evaluate
        "eval_seconds_by_order": seconds,
        "eval_speedup_longest_first": seconds["dataset order"] / seconds["longest first"],
        "eval_cases_with_another_rank_longest_first": int((in_order != ranks["longest first"]).sum()),
        "eval_samples": len(in_order),
        "eval_batch_size": args.eval_batch_size,
    }


def time_recommend(config, processor, sessions, args) -> dict:
    model = TagnnPPForNextItemPrediction(config).eval()
    torch.set_num_threads(1)
    timed = sessions[: args.latency_sessions]
    measured = time_calls(
        lambda s: model.recommend([s], top_k=20, processor=processor), timed, repeats=len(timed) - 5, warmup=5
    )
    lat = sorted(measured.times)
    return {
        "recommend_sessions_timed": len(lat),
        "recommend_cpu_1thread_ms_p50": 1000 * statistics.median(lat),
        "recommend_cpu_1thread_ms_p95": 1000 * lat[int(0.95 * (len(lat) - 1))],
        "recommend_cpu_1thread_ms_p99": 1000 * lat[int(0.99 * (len(lat) - 1))],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-path", type=Path, default=ROOT.parent / "shared" / "data" / "diginetica")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[50, 500])
    p.add_argument(
        "--num-sessions",
        type=int,
        default=20_000,
        help="synthetic store size when --data-path has no Diginetica",
    )
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--eval-batch-size", type=int, default=500)
    p.add_argument("--max-eval-samples", type=int, default=None)
    p.add_argument("--latency-sessions", type=int, default=105)
    p.add_argument("--bf16", action="store_true")
    p.add_argument(
        "--sampling",
        nargs="+",
        choices=("random", "grouped"),
        default=["random", "grouped"],
        help="random batches (the paper) and/or length-grouped ones (--group-by-length in the trainers); time at "
        "least 100 steps for grouped batches: a mega-batch of 50 batches runs from its longest to its shortest",
    )
    p.add_argument(
        "--eval-only",
        action="store_true",
        help="time only the evaluation (both orders) and recommend, with the model as initialised",
    )
    p.add_argument("--name", default=None, help="result name (default tagnn_pp_speed_<device>)")
    p.add_argument(
        "--results-dir", default=None, help="where to write the result (default benchmarks/results)"
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the model (dynamic shapes)")
    p.add_argument(
        "--compile-backend",
        default="inductor",
        help="torch.compile backend (aot_eager: trace only, for dry runs)",
    )
    p.add_argument("--hidden-size", type=int, default=120, help="paper config: 120")
    p.add_argument("--num-heads", type=int, default=8, help="paper config: 8")
    args = p.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    load_at_start = os.getloadavg()[0]  # other processes on the machine inflate CPU timings

    train, test, ids, desc = _data(args)
    if args.max_eval_samples:
        test = test.select(range(min(args.max_eval_samples, len(test))))
    processor = TagnnPPProcessor.from_sessions([ids])
    config = TagnnPPConfig(
        num_items=processor.num_items, hidden_size=args.hidden_size, num_attention_heads=args.num_heads
    )
    rows = {}
    lengths = _prefix_lengths(train, processor.max_length)
    torch.manual_seed(0)
    model = TagnnPPForNextItemPrediction(config).to(device)
    for bs in [] if args.eval_only else args.batch_sizes:
        for sampling in args.sampling:
            torch.manual_seed(0)
            model = TagnnPPForNextItemPrediction(config).to(device)
            if args.compile:
                model = torch.compile(model, dynamic=True, backend=args.compile_backend)
            name = f"train batch {bs}" + (
                " (length-grouped)" if sampling == "grouped" else " (random batches)"
            )
            rows[name] = time_training(
                model, processor, train, bs, args, device, lengths if sampling == "grouped" else None
            )
            print(name, rows[name], flush=True)
    figures = {
        "results": rows,
        "load_average_1min_at_start": round(load_at_start, 2),
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "bf16": args.bf16,
        "num_workers": args.num_workers,
        "torch_threads": torch.get_num_threads(),
    }
    figures.update(time_evaluation(model, processor, test, args, device))
    if args.latency_sessions > 5:
        figures.update(time_recommend(config, processor, list(test["item_ids"]), args))
    figures["compiled"] = args.compile_backend if args.compile else False
    figures["config"] = f"hidden {args.hidden_size}, {args.num_heads} heads"
    name = args.name or f"tagnn_pp_speed_{device.type}"
    print(figures)
    print(write_result(name, figures, data=desc, results_dir=args.results_dir))


if __name__ == "__main__":
    main()
