"""TAGNN++ on Diginetica (SR-GNN protocol), with its Table 3 ablations and two baselines, in one run.

Protocol (``../shared/data/README.md``): train on every prefix of every training session, evaluate HR@20 and
MRR@20 over the full item set on ``test.tsv``. Nothing is measured on a split of the training sessions.

Full run (needs a GPU; paper hyperparameters: hidden 120, 8 heads, batch 50, Adam 1e-4 decayed 0.1 every
3 epochs, L2 1e-6, 15 epochs)::

    python benchmarks/tagnn_pp_diginetica.py --epochs 15

A CPU slice (what fits on a laptop; the figures are then NOT comparable to the paper)::

    python benchmarks/tagnn_pp_diginetica.py --epochs 1 --max-train-samples 50000 --max-eval-samples 10000

Each variant is trained by ``trainers/pretrain.py`` through ``accelerate launch`` (the command is recorded).
Baselines: *popularity* (items ranked by training frequency) and *last item* (the items that most often followed
the session's last item in training, popularity for the rest).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import write_result  # noqa: E402
from session_transformers import metrics  # noqa: E402
from session_transformers.models.tagnn_pp.recipe import diginetica_next_item  # noqa: E402

VARIANTS = {
    "TAGNN++": [],
    "TAGNN++ w/o AGC": ["use_adaptive_gradient_clipping=False"],
    "TAGNN++ w/o PE": ["use_position_embeddings=False"],
    "TAGNN++ w/o Transformer": ["use_transformer=False"],
    "TAGNN++ w/o GNN": ["use_gnn=False"],
}


def _baselines(train, test, k: int = 20) -> dict[str, dict[str, float]]:
    """Popularity and last-item transition baselines, ranked over the full item set."""
    popularity = Counter()
    follows: dict[str, Counter] = defaultdict(Counter)
    for items, target in zip(train["item_ids"], train["target"]):
        popularity[target] += 1
        follows[items[-1]][target] += 1
    for items in train["item_ids"]:  # the first click of each session is never a target
        if len(items) == 1:
            popularity[items[0]] += 1
    top_pop = [i for i, _ in popularity.most_common(k)]
    results = {}
    for name in ("popularity", "last item"):
        ranks = []
        for items, target in zip(test["item_ids"], test["target"]):
            ranked = top_pop
            if name == "last item":
                nxt = [i for i, _ in follows.get(items[-1], Counter()).most_common(k)]
                ranked = nxt + [i for i in top_pop if i not in set(nxt)]
            ranked = ranked[:k]
            ranks.append(ranked.index(target) + 1 if target in ranked else k + 1)
        r = torch.tensor(ranks)
        results[name] = {
            "HR@20": 100 * metrics.hit_rate_from_ranks(r, 20),
            "MRR@20": 100 * metrics.mrr_from_ranks(r, 20),
        }
    return results


def _train_variant(name: str, overrides: list[str], args, out_dir: Path) -> tuple[dict, str]:
    cmd = [
        os.path.relpath(Path(sys.executable).with_name("accelerate"), ROOT),
        "launch",
        "--num_processes",
        "1",
        "--num_machines",
        "1",
        "--dynamo_backend",
        "no",
        "--mixed_precision",
        args.mixed_precision,
        *(["--cpu"] if not torch.cuda.is_available() else []),
        "trainers/pretrain.py",
        "--model",
        "tagnn_pp",
        "--dataset",
        "diginetica",
        "--data-path",
        os.path.relpath(args.data_path, ROOT),
        "--output-dir",
        os.path.relpath(out_dir, ROOT),
        "--batch-size",
        str(args.batch_size),
        "--num-epochs",
        str(args.epochs),
        "--learning-rate",
        str(args.lr),
        "--num-workers",
        str(args.num_workers),
        "--seed",
        str(args.seed),
        "--config",
        f"hidden_size={args.hidden_size}",
        f"num_attention_heads={args.heads}",
        *overrides,
    ]
    if args.max_train_samples:
        cmd += ["--max-train-samples", str(args.max_train_samples)]
    if args.max_eval_samples:
        cmd += ["--max-eval-samples", str(args.max_eval_samples)]
    print(f"== {name}: {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return json.loads((out_dir / "eval_results.json").read_text()), " ".join(cmd)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-path", type=Path, default=ROOT.parent / "shared" / "data" / "diginetica")
    p.add_argument("--output-dir", type=Path, default=ROOT / "runs" / "diginetica")
    p.add_argument("--epochs", type=float, default=15)
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--hidden-size", type=int, default=120)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--max-train-samples", type=int, default=None)
    p.add_argument("--max-eval-samples", type=int, default=None)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--mixed-precision", default="no")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    args = p.parse_args(argv)

    # the very split and cuts the trainers use (SR-GNN protocol)
    train, test, _, _ = diginetica_next_item(args)
    rows = _baselines(train, test)
    commands = {}
    for name in args.variants:
        start = time.perf_counter()
        res, cmd = _train_variant(
            name, VARIANTS[name], args, args.output_dir / name.replace(" ", "_").replace("/", "")
        )
        rows[name] = {
            "HR@20": res["HR@20"],
            "MRR@20": res["MRR@20"],
            "train_seconds": res["train_seconds"],
            "wall_seconds": time.perf_counter() - start,
        }
        commands[name] = cmd
    full = not args.max_train_samples and not args.max_eval_samples and args.epochs >= 15
    data = (
        f"Diginetica (SR-GNN protocol), {len(train)} train samples, {len(test)} test samples "
        f"{'(full)' if full else '(SLICE: not comparable to the paper)'}, {args.epochs} epoch(s)"
    )
    path = write_result(
        "tagnn_pp_diginetica",
        {
            "results": rows,
            "variant_commands": commands,
            "published": {
                "SR-GNN": [50.73, 17.59],
                "TAGNN": [51.31, 18.03],
                "GCE-GNN": [54.22, 19.04],
                "TAGNN++": [56.25, 19.86],
            },
        },
        data=data,
    )
    print(f"{'model':28s} {'HR@20':>8s} {'MRR@20':>8s}")
    for name, r in rows.items():
        print(f"{name:28s} {r['HR@20']:8.2f} {r['MRR@20']:8.2f}")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
