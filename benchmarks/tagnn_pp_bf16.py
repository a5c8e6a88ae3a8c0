"""TAGNN++ training step in fp32 and under bf16 autocast, side by side on the same batches, interleaved.

    python -m benchmarks.tagnn_pp_bf16                 # alone on the machine: it is a timing

A step is forward, backward and an Adam step of :class:`TagnnPPForNextItemPrediction` at the paper's Diginetica
config (hidden 120, 8 heads, the full 43,097-item catalogue), on random batches of 50 training prefixes. Each round
runs one batch in fp32 and the same batch under ``torch.autocast(device, dtype=torch.bfloat16)`` (what
``--mixed-precision bf16`` does in both trainers), alternating which goes first, on two copies of one initial
model; the figures are medians over ``--steps`` rounds after ``--warmup``. The CPU's native bf16 support
(``amx_bf16`` / ``avx512_bf16``) is in the result's ``machine``: without it bf16 is emulated and slower.
"""

from __future__ import annotations

import argparse
import copy
import statistics
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from session_transformers.data.loaders import load_next_item_splits
from session_transformers.models.tagnn_pp import (
    TagnnPPConfig,
    TagnnPPForNextItemPrediction,
    TagnnPPProcessor,
)

from ._common import time_calls, write_result

ROOT = Path(__file__).resolve().parents[1]


def step(model, optimizer, batch, device, bf16: bool) -> tuple[float, float]:
    """One optimiser step (:func:`time_calls`); returns ``(seconds, loss)``."""
    losses = []

    def train_step(b) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model(**b).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss))

    return time_calls(train_step, [batch], repeats=1, warmup=0).mean, losses[-1]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-path", type=Path, default=ROOT.parent / "shared" / "data" / "diginetica")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--hidden-size", type=int, default=120)
    p.add_argument("--num-heads", type=int, default=8)
    p.add_argument("--name", default=None, help="result name (default tagnn_pp_bf16_<device>)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    splits = load_next_item_splits(args.data_path, validation_fraction=0.0)
    processor = TagnnPPProcessor.from_sessions([splits.catalogue_ids])
    config = TagnnPPConfig(
        num_items=processor.num_items, hidden_size=args.hidden_size, num_attention_heads=args.num_heads
    )
    torch.manual_seed(0)
    models = {"fp32": TagnnPPForNextItemPrediction(config).to(device)}
    models["bf16"] = copy.deepcopy(models["fp32"])
    optimizers = {k: torch.optim.Adam(m.parameters(), lr=1e-3, weight_decay=1e-5) for k, m in models.items()}
    loader = DataLoader(
        splits.train,
        batch_size=args.batch_size,
        shuffle=True,
        collate_fn=processor.collate,
        generator=torch.Generator().manual_seed(0),
    )
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    losses: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for n, batch in enumerate(loader):
        if n == args.warmup + args.steps:
            break
        batch = {k: v.to(device) for k, v in batch.items()}
        order = ("fp32", "bf16") if n % 2 == 0 else ("bf16", "fp32")
        for kind in order:
            seconds, loss = step(models[kind], optimizers[kind], batch, device, kind == "bf16")
            if n >= args.warmup:
                times[kind].append(seconds)
                losses[kind].append(loss)
    fp32, bf16 = (statistics.median(times[k]) for k in ("fp32", "bf16"))
    figures = {
        "fp32_ms_per_step_median": round(1000 * fp32, 1),
        "bf16_ms_per_step_median": round(1000 * bf16, 1),
        "bf16_speedup": round(fp32 / bf16, 3),
        "mean_loss_over_timed_steps": {k: round(statistics.fmean(v), 4) for k, v in losses.items()},
        "steps_timed": args.steps,
        "batch_size": args.batch_size,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "torch_threads": torch.get_num_threads(),
        "config": f"hidden {args.hidden_size}, {args.num_heads} heads, {processor.num_items - 1} items",
    }
    print(figures)
    data = (
        f"Diginetica training prefixes (SR-GNN protocol), random batches of {args.batch_size}, full catalogue"
    )
    print(write_result(args.name or f"tagnn_pp_bf16_{device.type}", figures, data))


if __name__ == "__main__":
    main()
