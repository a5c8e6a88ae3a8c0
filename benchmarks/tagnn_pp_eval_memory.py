"""Peak memory while TAGNN++ scores the full Diginetica test set (60,858 cases over all 43,097 items).

    python -m benchmarks.tagnn_pp_eval_memory                      # -> benchmarks/results/tagnn_pp_eval_memory.json

The paper config (hidden 120, 8 heads), untrained weights (memory does not depend on them), the test cases in
file order through the processor's collator at ``--eval-batch-size``, each batch reduced at once to the rank of
its target (what both trainers keep). Current and peak RSS of the process after loading, after building the
model, and every ``--every`` cases: a flat curve shows that memory does not grow with the test set; the
readout's chunking bounds a batch's score work at ``batch x positions x score_chunk_size`` floats.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from session_transformers import metrics
from session_transformers.data.loaders import load_next_item_dataset, next_item_catalogue_ids
from session_transformers.models.tagnn_pp import (
    TagnnPPConfig,
    TagnnPPForNextItemPrediction,
    TagnnPPProcessor,
)

from ._common import current_rss_mib, peak_rss_mib, write_result

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-path", type=Path, default=ROOT.parent / "shared" / "data" / "diginetica")
    p.add_argument("--eval-batch-size", type=int, default=500)
    p.add_argument("--every", type=int, default=10_000)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rss = {"start": round(current_rss_mib(), 1)}
    test = load_next_item_dataset(args.data_path, split="test")
    processor = TagnnPPProcessor.from_sessions([list(next_item_catalogue_ids(args.data_path))])
    rss["after_loading_test_set"] = round(current_rss_mib(), 1)
    config = TagnnPPConfig(num_items=processor.num_items, hidden_size=120, num_attention_heads=8)
    model = TagnnPPForNextItemPrediction(config).eval()
    rss["after_building_model"] = round(current_rss_mib(), 1)
    loader = DataLoader(test, batch_size=args.eval_batch_size, collate_fn=processor.collate)
    curve, seen, next_mark, hits = [], 0, args.every, 0
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in loader:
            labels = batch.pop("labels")
            ranks = metrics.rank_of_target(model(**batch).logits, labels)
            hits += int((ranks < 20).sum())
            seen += labels.numel()
            if seen >= next_mark or seen == len(test):
                curve.append(
                    {
                        "cases": seen,
                        "rss_mib": round(current_rss_mib(), 1),
                        "peak_mib": round(peak_rss_mib(), 1),
                    }
                )
                print(curve[-1], flush=True)
                next_mark += args.every
    figures = {
        "cases": seen,
        "items": processor.num_items - 1,
        "eval_batch_size": args.eval_batch_size,
        "score_chunk_size": config.score_chunk_size,
        "rss_mib": rss,
        "curve": curve,
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "seconds": round(time.perf_counter() - start, 1),
        "seconds_note": "wall time on a shared machine (see the load average): not a speed figure",
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "untrained_hr20_sanity": round(100 * hits / max(seen, 1), 3),
    }
    print(
        write_result(
            "tagnn_pp_eval_memory", figures, data=f"Diginetica test.tsv ({seen} cases), full catalogue"
        )
    )


if __name__ == "__main__":
    main()
