"""The main job, end to end on the embedded synthetic store, offline, on a CPU.

    python trainers/quickstart.py [--output-dir runs/quickstart] [--models ceres tagnn_pp]

1. Generates the synthetic store and prints its statistics.
2. For each model: pretrains it with its own objective through ``accelerate launch trainers/pretrain.py``
   (CERES: graph-conditioned masked LM; TAGNN++: next-item prediction) and saves model and processor.
3. Reloads them with ``AutoModel`` and ``AutoProcessor`` (plus the task head's Auto class).
4. Fine-tunes the saved checkpoint with ``transformers.Trainer`` (``trainers/finetune.py``): CERES on product
   search, TAGNN++ on next-item prediction.
5. Prints the held-out metrics: MAP@K / Recall@K (CERES), HR@20 / MRR@20 (TAGNN++).

Sizes are CPU scale (7 min 41 s on an idle 2-core machine, install excluded); the figures show the
pipeline working, not the papers' numbers (see ``benchmarks/`` for those).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# model -> (pretraining flags, fine-tuning flags, metrics to print)
JOBS: dict[str, tuple[list[str], list[str], tuple[str, ...]]] = {
    "ceres": (
        [
            "--num-sessions",
            "3000",
            "--max-steps",
            "150",
            "--batch-size",
            "16",
            "--learning-rate",
            "5e-4",
            "--config",
            "hidden_size=64",
            "num_hidden_layers=2",
            "num_attention_heads=2",
            "intermediate_size=128",
            "num_cross_attention_layers=1",
            "retrieval_projection_size=64",
        ],
        [
            "--task",
            "product_search",
            "--num-sessions",
            "3000",
            "--max-steps",
            "150",
            "--batch-size",
            "16",
            "--learning-rate",
            "5e-4",
        ],
        ("MAP@1", "MAP@32", "Recall@1", "Recall@32", "Recall@64"),
    ),
    "tagnn_pp": (
        ["--num-sessions", "20000", "--num-epochs", "1", "--batch-size", "100", "--learning-rate", "1e-3"],
        ["--task", "next_item", "--num-sessions", "20000", "--max-steps", "300", "--batch-size", "100"],
        ("HR@20", "MRR@20"),
    ),
}


def _run(cmd: list[str]) -> None:
    print("$ " + " ".join(os.path.relpath(c, ROOT) if os.path.isabs(c) else c for c in cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _stats() -> None:
    from session_transformers.data.synthetic import SyntheticStore, SyntheticStoreConfig, format_stats

    print(format_stats(SyntheticStore(SyntheticStoreConfig()).stats(5000)))


def _reload(model_type: str, path: Path) -> None:
    import torch
    from transformers import AutoModel, AutoProcessor

    from session_transformers.recipes import RECIPES

    base = AutoModel.from_pretrained(path, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(path)
    head_auto = next(iter(RECIPES[model_type].finetune.values())).auto_class
    head = head_auto.from_pretrained(path, dtype=torch.float32).eval()
    print(
        f"reloaded {type(base).__name__}, {type(head).__name__} ({sum(p.numel() for p in head.parameters()):,} "
        f"parameters) and {type(processor).__name__} from {os.path.relpath(path, ROOT)}"
    )
    if model_type == "tagnn_pp":
        session = processor.item_vocab[:3]
        top = head.recommend([session], top_k=5, processor=processor)[0]
        print(f"recommend({session}) -> " + ", ".join(f"{i} ({s:.2f})" for i, s in top))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--output-dir", type=Path, default=ROOT / "runs" / "quickstart")
    p.add_argument("--models", nargs="+", default=list(JOBS), choices=list(JOBS))
    args = p.parse_args(argv)
    out = args.output_dir.resolve()
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    launch = [
        accelerate,
        "launch",
        "--cpu",
        "--num_processes",
        "1",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--num_cpu_threads_per_process",
        str(os.cpu_count() or 1),
    ]

    print("== 1. the synthetic store")
    _stats()
    results = {}
    for model_type in args.models:
        pre_flags, ft_flags, shown = JOBS[model_type]
        pre_dir, ft_dir = out / model_type / "pretrain", out / model_type / "finetune"
        print(f"== 2. pretrain {model_type} (accelerate)")
        _run(
            [*launch, "trainers/pretrain.py", "--model", model_type, *pre_flags, "--output-dir", str(pre_dir)]
        )
        print(f"== 3. reload {model_type} with the Auto classes")
        _reload(model_type, pre_dir)
        print(f"== 4. fine-tune {model_type} with transformers.Trainer")
        _run(
            [
                sys.executable,
                "trainers/finetune.py",
                "--model",
                model_type,
                *ft_flags,
                "--init-from",
                str(pre_dir),
                "--use-cpu",
                "--output-dir",
                str(ft_dir),
                "--save-steps",
                "1000000",
            ]
        )
        metrics = json.loads((ft_dir / "eval_results.json").read_text())
        results[model_type] = {k: metrics["test"][f"test_{k}"] for k in shown}  # the test split, scored once
    print("== 5. held-out synthetic sessions (test split)")
    for model_type, metrics in results.items():
        print(f"  {model_type:9s} " + "  ".join(f"{k} {v:6.2f}" for k, v in metrics.items()))


if __name__ == "__main__":
    main()
