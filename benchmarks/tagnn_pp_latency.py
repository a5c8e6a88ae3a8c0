"""TAGNN++ ``recommend`` latency for one session on one CPU thread: exact pruned top-k against full scoring.

    python -m benchmarks.tagnn_pp_latency                                   # random-init paper-config model
    python -m benchmarks.tagnn_pp_latency --model-path runs/diginetica-1epoch/best   # trained weights too

One call = the processor on one session of Diginetica test item IDs, the encoder, and the top 20 of the full
43,097-item catalogue. Two ways of ranking, timed interleaved on the same sessions (so drifts of the machine hit
both alike):

- ``pruned``: what ``recommend`` does (``TargetAwareReadout.top_k``): bounds from one of the readout's two
  position-by-catalogue products, the target-aware attention only for items that can reach the top 20;
- ``full``: scores for the whole catalogue (``model(**batch).logits``), then ``topk``: what ``recommend`` did before.

Both return the same items (checked on every session). Reported: p50/p95/p99 per way, and the share of the
catalogue the attention ran on. The issue's target: p99 < 20 ms. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

import torch

from session_transformers.data.loaders import load_next_item_dataset, next_item_catalogue_ids
from session_transformers.models.tagnn_pp import (
    TagnnPPConfig,
    TagnnPPForNextItemPrediction,
    TagnnPPProcessor,
)

from ._common import time_calls, write_result

ROOT = Path(__file__).resolve().parents[1]


@torch.no_grad()
def full_top_k(model, processor, session: list[str], k: int) -> list[str]:
    """Rank by scoring every catalogue item (the reference)."""
    batch = processor([session])
    logits = model(**{n: batch[n] for n in processor.model_input_names}).logits[:, : processor.num_items]
    logits[:, model.config.pad_token_id] = float("-inf")
    return processor.decode(logits.topk(k, dim=1).indices.tolist())[0]


def percentiles(values: list[float]) -> dict[str, float]:
    v = sorted(values)
    at = lambda q: 1000 * v[int(q * (len(v) - 1))]  # noqa: E731
    return {
        "p50_ms": round(1000 * statistics.median(v), 2),
        "p95_ms": round(at(0.95), 2),
        "p99_ms": round(at(0.99), 2),
    }


@torch.no_grad()
def attention_share(model, processor, session: list[str], k: int) -> float:
    """Share of the catalogue the target-aware attention ran on for this session (outside the timed calls)."""
    batch = processor([session])
    out = model.tagnn_pp(**{n: batch[n] for n in processor.model_input_names})
    items = model.tagnn_pp.item_embeddings.weight
    exclude = model.unrankable_items(processor.num_items)
    *_, candidates = model.readout.top_k(
        out.sequence_hidden, out.last_hidden, out.global_hidden, out.attention_mask, items, k, exclude, True
    )
    return candidates.numel() / (processor.num_items - 1)


def time_model(name: str, model, processor, sessions: list[list[str]], k: int) -> dict:
    model.eval()
    got, want = [], []
    timed = {"warmup": 5, "repeats": len(sessions) - 5}
    pruned = time_calls(
        lambda s: got.append([item for item, _ in model.recommend([s], top_k=k, processor=processor)[0]]),
        sessions,
        **timed,
    ).times
    full = time_calls(lambda s: want.append(full_top_k(model, processor, s, k)), sessions, **timed).times
    mismatches = sum(a != b for a, b in zip(got, want))
    shares = [attention_share(model, processor, s, k) for s in sessions[5:]]
    row = {
        "pruned (recommend)": percentiles(pruned),
        "full scoring + topk": percentiles(full),
        "sessions_timed": len(pruned),
        "attention_share_of_catalogue_mean": round(statistics.mean(shares), 4),
        "attention_share_of_catalogue_p99": round(sorted(shares)[int(0.99 * (len(shares) - 1))], 4),
        "top_k_mismatches": mismatches,
    }
    print(name, row, flush=True)
    return row


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-path", type=Path, default=ROOT.parent / "shared" / "data" / "diginetica")
    p.add_argument(
        "--model-path", type=Path, default=None, help="trained TagnnPPForNextItemPrediction folder"
    )
    p.add_argument("--sessions", type=int, default=1005)
    p.add_argument("--top-k", type=int, default=20)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    load_at_start = os.getloadavg()[0]
    test = load_next_item_dataset(args.data_path, split="test")
    sessions = [list(s) for s in test.select(range(min(args.sessions, len(test))))["item_ids"]]
    rows = {}
    if args.model_path is not None:
        processor = TagnnPPProcessor.from_pretrained(args.model_path.parent / "processor")
        model = TagnnPPForNextItemPrediction.from_pretrained(args.model_path)
        rows[f"trained ({args.model_path.name})"] = time_model(
            "trained", model, processor, sessions, args.top_k
        )
    else:
        processor = TagnnPPProcessor.from_sessions([list(next_item_catalogue_ids(args.data_path))])
    torch.manual_seed(0)
    config = TagnnPPConfig(num_items=processor.num_items)  # paper config: hidden 120, 8 heads
    model = TagnnPPForNextItemPrediction(config)
    rows["random init"] = time_model("random init", model, processor, sessions, args.top_k)
    figures = {
        "results": rows,
        "target_p99_ms": 20,
        "torch_threads": 1,
        "top_k": args.top_k,
        "load_average_1min_at_start": round(load_at_start, 2),
    }
    data = (
        f"the first {len(sessions)} Diginetica test prefixes (SR-GNN protocol), one session per call, "
        f"full catalogue of {processor.num_items - 1} items; paper config (hidden 120, 8 heads)"
    )
    print(write_result("tagnn_pp_latency_cpu", figures, data))


if __name__ == "__main__":
    main()
