"""MUVCOG speed on one CPU core: graph building (both views, batched) and pretraining throughput.

    python -m benchmarks.muvcog_speed              # the full run (run it alone on the machine)
    python -m benchmarks.muvcog_speed --dry-run    # tiny sizes, checks the script, writes nothing

Workloads, all with ``torch.set_num_threads(1)`` and best of ``--repeats`` timed passes after a warm-up:

- ``graphs/vectorised``: ``MuvcogProcessor`` on sessions with the MUVCOG paper's Table 1 (Clothes) statistics
  (``graph_building.taobao_like_sessions``: 7.2 queries, 2.8 words per keyword query, 14 per product query,
  a product query always with a 512-d image query): encode every session and build both batched views
  (``batch_encoded_views``), ``--batch-size`` sessions per batch. Target (issue 11): 5,000 sessions/s.
- ``graphs/reference``: the per-session builder (``build_views``) + ``Batch.from_data_list`` per view, what the
  vectorised path replaces (404-625 sessions/s before it).
- ``graphs/pretrain_collator``: the pretraining collator on pre-encoded sessions: anchors, positives (one query
  masked) and click codes, both views each.
- ``pretrain/step``: one optimiser step of ``MuvcogForPreTraining`` (paper sizes: 50-d words, 512-d images, 32 per
  view, discriminator [64, 32, 1]; hard negatives) on collated batches; sessions/s, and the share of a step
  that building its batch would take on the training process (``collate / (collate + step)``; with one
  DataLoader worker the build overlaps the step, and the target is that it stays under 10%).

Results go to ``benchmarks/results/muvcog_speed_cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Batch

from session_transformers.graphs.muvcog import build_views
from session_transformers.models.muvcog import MuvcogConfig, MuvcogForPreTraining, MuvcogProcessor
from session_transformers.models.muvcog.recipe import MuvcogPretrainCollator

from ._common import time_calls
from .graph_building import taobao_like_sessions

ROOT = Path(__file__).resolve().parents[1]


def _best(fn, repeats: int) -> float:
    """Fastest of ``repeats`` calls of ``fn()``, seconds (:func:`time_calls`, no warm-up)."""
    return min(time_calls(lambda _: fn(), [None], repeats=repeats, warmup=0).times)


def _with_clicks(sessions: list[dict], seed: int = 0) -> list[dict]:
    """Add 0-3 clicks per session on a catalogue of 5,000 items (hard negatives need click sets)."""
    r = np.random.default_rng(seed)
    out = []
    for s in sessions:
        clicks = [
            {
                "action": "click",
                "timestamp": None,
                "subject": "item",
                "item_id": f"i{k}",
                "query": None,
                "image": None,
            }
            for k in r.integers(0, 5000, r.integers(0, 4))
        ]
        out.append({**s, "events": s["events"] + clicks})
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--num-sessions", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=100, help="graph building batch size")
    p.add_argument("--train-batch-size", type=int, default=128, help="pretraining batch size")
    p.add_argument("--train-steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--vocab-size", type=int, default=50_000)
    p.add_argument("--dry-run", action="store_true", help="tiny sizes; print only")
    args = p.parse_args(argv)
    if args.dry_run:
        args.num_sessions, args.repeats, args.train_steps, args.vocab_size = 60, 1, 2, 2000
        args.train_batch_size = 16
    torch.set_num_threads(1)
    load_at_start = os.getloadavg()[0]
    sessions = _with_clicks(taobao_like_sessions(args.num_sessions, vocab_size=args.vocab_size))
    processor = MuvcogProcessor(
        [str(i) for i in range(args.vocab_size)], np.zeros((args.vocab_size, 50)), image_dim=512
    )
    chunks = [sessions[i : i + args.batch_size] for i in range(0, len(sessions), args.batch_size)]
    n = len(sessions)
    figures: dict = {}

    vectorised = _best(lambda: [processor(c) for c in chunks], args.repeats)
    figures["graphs/vectorised"] = {
        "sessions_per_second": round(n / vectorised, 1),
        "batch_size": args.batch_size,
    }
    lookup = processor._index

    def ids(text):
        return [lookup[w] for w in text.split() if w in lookup]

    def reference():
        for c in chunks:
            views = [build_views(s, ids, image_dim=512) for s in c]
            Batch.from_data_list([v.global_view for v in views])
            Batch.from_data_list([v.local_view for v in views])

    ref = _best(reference, max(1, args.repeats - 2))
    figures["graphs/reference"] = {"sessions_per_second": round(n / ref, 1), "batch_size": args.batch_size}
    figures["graphs/speedup"] = round(ref / vectorised, 1)

    from session_transformers.models.muvcog.processing_muvcog import click_code

    rows = [
        {
            "index": i,
            "encoded": processor.encode(s),
            "clicks": [click_code(c) for c in processor.clicked_items(s)],
        }
        for i, s in enumerate(sessions)
    ]
    collate = MuvcogPretrainCollator(processor)
    batches = [rows[i : i + args.train_batch_size] for i in range(0, len(rows), args.train_batch_size)]
    collate_s = _best(lambda: [collate(b) for b in batches], args.repeats)
    figures["graphs/pretrain_collator"] = {
        "sessions_per_second": round(n / collate_s, 1),
        "batch_size": args.train_batch_size,
        "note": "anchors + positives, both views each, from pre-encoded sessions",
    }

    torch.manual_seed(0)
    # hard negatives from the first step: the paper's step, and the costlier one after the random warm-up
    model = MuvcogForPreTraining(MuvcogConfig(vocab_size=args.vocab_size, hard_negative_warmup_steps=0))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    collated = [collate(b) for b in batches if len(b) == args.train_batch_size] or [collate(batches[0])]

    def step(batch):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    per_step = time_calls(step, collated, repeats=args.train_steps, warmup=1).mean
    per_batch_collate = collate_s / len(batches)
    figures["pretrain/step"] = {
        "sessions_per_second": round(args.train_batch_size / per_step, 1),
        "seconds_per_step": round(per_step, 4),
        "batch_size": args.train_batch_size,
        "graph_share_of_step": round(per_batch_collate / (per_batch_collate + per_step), 3),
    }
    for name, value in figures.items():
        print(f"{name}: {json.dumps(value)}")
    if args.dry_run:
        return figures
    from ._common import write_result

    data = (
        f"{n:,} random MM sessions with MUVCOG Table 1 (Clothes) statistics (benchmarks/graph_building.py "
        f"taobao_like_sessions, vocabulary {args.vocab_size:,}, 512-d images) plus 0-3 clicks each; one thread"
    )
    context = {"torch_threads": 1, "load_average_1min_at_start": round(load_at_start, 2)}
    print(write_result("muvcog_speed_cpu", {"results": figures, **context}, data))
    return figures


if __name__ == "__main__":
    main()
