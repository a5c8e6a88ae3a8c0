"""Product BYOL speed on CPU: pretraining pairs/s, and title embedding throughput (titles/s) at batch 256 and one
title at a time, the paper's selling point (target: >= 5,000 titles/s on 2 cores at batch 256).

    python -m benchmarks.product_byol_speed [--model-size paper] [--threads 2] [--data-path ../shared/data/instacart]
    python -m benchmarks.product_byol_speed --dry-run     # a tiny check that the script runs (no figures kept)

Run it alone on an idle machine: timings under contention are wrong. Titles are real Instacart product names
(or synthetic titles when the folder is absent); the processor (normalisation + Unigram tokenizer) is trained on
them. Throughput is reported twice: end to end (raw titles -> normalisation -> tokenizer -> model, what
``encode_titles`` does) and model only (pre-tokenised batches). Pretraining steps are full BYOL steps (online and
target forward passes of both products, backward, SGD with momentum and weight decay, EMA update), at
``--pretrain-batch`` pairs per step.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.benchmark import Measurement

from session_transformers.models.product_byol import (
    ProductByolConfig,
    ProductByolForPreTraining,
    ProductByolProcessor,
)
from session_transformers.optim import byol_momentum

from ._common import time_calls, write_result

ROOT = Path(__file__).resolve().parents[1]

SIZES = {
    "paper": {},
    "tiny": dict(embedding_size=64, num_filters=32, projection_hidden_size=256, projection_size=64),
}


def _titles(data_path: Path, n: int) -> tuple[list[str], str]:
    if (data_path / "products.csv").exists():
        from session_transformers.data.loaders import load_instacart_catalogue

        titles = load_instacart_catalogue(data_path)["title"]
        return titles[:n], f"Instacart product names ({data_path})"
    from session_transformers.data.synthetic import SyntheticStore, SyntheticStoreConfig

    titles = [r["title"] for r in SyntheticStore(SyntheticStoreConfig()).catalogue]
    return (titles * (n // len(titles) + 1))[:n], "synthetic store titles"


def _rate(fn, items_per_call: int, min_seconds: float, min_calls: int) -> tuple[float, int]:
    """Items per second of ``fn()`` over at least ``min_calls`` calls and ``min_seconds`` of them (after one warm-up
    call), and the number of calls timed (:func:`time_calls`, in rounds of ``min_calls``)."""
    measured = time_calls(lambda _: fn(), [None], repeats=min_calls, warmup=1)
    while sum(measured.times) < min_seconds:
        (measured,) = Measurement.merge(
            [measured, time_calls(lambda _: fn(), [None], repeats=min_calls, warmup=0)]
        )
    return items_per_call / measured.mean, len(measured.times)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model-size", choices=tuple(SIZES), default="paper")
    p.add_argument("--vocab-size", type=int, default=30_000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data-path", default=str(ROOT.parent / "shared" / "data" / "instacart"))
    p.add_argument("--num-titles", type=int, default=20_000)
    p.add_argument("--pretrain-batch", type=int, default=256)
    p.add_argument("--seconds", type=float, default=10.0, help="minimum measuring time of each figure")
    p.add_argument(
        "--dry-run", action="store_true", help="tiny sizes, a few calls, result in a temporary folder"
    )
    p.add_argument("--results-dir", default=None)
    a = p.parse_args(argv)
    if a.dry_run:
        a.model_size, a.num_titles, a.pretrain_batch, a.seconds, a.vocab_size = "tiny", 600, 16, 0.0, 500
    torch.set_num_threads(a.threads)
    load_at_start = os.getloadavg()[0]  # the load at write includes this run's own threads
    calls = 2 if a.dry_run else 5
    titles, what = _titles(Path(a.data_path), a.num_titles)
    proc = ProductByolProcessor.train(titles, vocab_size=a.vocab_size)
    cfg = ProductByolConfig(vocab_size=proc.vocab_size, num_categories=20, **SIZES[a.model_size])
    torch.manual_seed(0)
    model = ProductByolForPreTraining(cfg)
    base = model.product_byol.eval()
    figures: dict = {
        "model_size": a.model_size,
        "parameters_encoder": sum(p.numel() for p in base.parameters()),
    }

    # embedding throughput
    batches = [titles[i : i + 256] for i in range(0, len(titles), 256)]
    it = iter(range(10**9))
    with torch.inference_mode():
        rate, n = _rate(
            lambda: base.encode_titles(batches[next(it) % len(batches)], processor=proc),
            256,
            a.seconds,
            calls,
        )
        figures["titles_per_s_batch256_end_to_end"] = rate
        encoded = [dict(proc(b)) for b in batches[:20]]
        rate, _ = _rate(lambda: base(**encoded[next(it) % len(encoded)]), 256, a.seconds, calls)
        figures["titles_per_s_batch256_model_only"] = rate
        rate, n1 = _rate(
            lambda: base.encode_titles([titles[next(it) % len(titles)]], processor=proc), 1, a.seconds, calls
        )
        figures["titles_per_s_one_at_a_time"] = rate
        figures["ms_per_title_one_at_a_time"] = 1000.0 / rate
        # the whole list in one call (batch_size 256): encode_titles groups the titles by length first
        one_call = time_calls(
            lambda ts: base.encode_titles(ts, processor=proc, batch_size=256), [titles], repeats=1, warmup=0
        )
        figures["titles_per_s_one_call_all_titles_batch256"] = len(titles) / one_call.mean
    # the target (>= 5,000 titles/s at batch 256, 2 cores): per batch of 256 arbitrary titles, and for a list of
    # titles passed in one call (how encode_titles is meant to be used: it groups the list's titles by length)
    figures["target_5000_titles_per_s_batch256"] = bool(figures["titles_per_s_batch256_end_to_end"] >= 5000)
    figures["target_5000_titles_per_s_one_call_batch256"] = bool(
        figures["titles_per_s_one_call_all_titles_batch256"] >= 5000
    )

    # pretraining pairs/s
    model.train()
    opt = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.45 * a.pretrain_batch / 256, momentum=0.9,
        weight_decay=1e-5,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    pair_batches = []
    for _ in range(8):
        i, j = rng.integers(0, len(titles), (2, a.pretrain_batch))
        rows = [
            {
                "title": titles[x],
                "pair_title": titles[y],
                "category": int(x % 20),
                "pair_category": int(y % 20),
            }
            for x, y in zip(i, j)
        ]
        pair_batches.append(proc.collate(rows))
    step = [0]

    def train_step():
        batch = pair_batches[step[0] % len(pair_batches)]
        model(**batch).loss.backward()
        opt.step()
        opt.zero_grad()
        step[0] += 1
        model.update_target(byol_momentum(step[0], 10**6, cfg.tau_base))

    rate, _ = _rate(train_step, a.pretrain_batch, a.seconds, calls)
    figures["pretrain_pairs_per_s"] = rate
    figures["pretrain_batch"] = a.pretrain_batch
    figures["threads"] = a.threads
    figures["load_average_1min_at_start"] = round(load_at_start, 2)
    for k, v in figures.items():
        print(f"{k}: {v:.1f}" if isinstance(v, float) else f"{k}: {v}")
    data = f"{what}, {len(titles)} titles; vocabulary {proc.vocab_size}; {a.threads} torch threads"
    results_dir = tempfile.mkdtemp(prefix="product_byol_speed_") if a.dry_run else a.results_dir
    print(write_result("product_byol_speed_cpu", figures, data, results_dir=results_dir))
    return figures


if __name__ == "__main__":
    main()
