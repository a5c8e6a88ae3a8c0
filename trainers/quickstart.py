"""The main job, end to end on the embedded synthetic store, offline, on a CPU.

    python trainers/quickstart.py [--output-dir runs/quickstart] [--epochs 1]

1. Generates the synthetic store and prints its statistics.
2. Pretrains TAGNN++ with ``accelerate launch trainers/pretrain.py`` and saves model and processor.
3. Reloads them with ``AutoModel`` / ``AutoModelForNextItemPrediction`` / ``AutoProcessor`` and recommends for a
   held-out session, in the user's own item IDs.
4. Fine-tunes the saved checkpoint with ``transformers.Trainer`` (``trainers/finetune.py``).
5. Prints HR@20 / MRR@20 of both stages on the held-out sessions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str]) -> None:
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _stats(num_sessions: int) -> None:
    from session_transformers.data.synthetic import SyntheticStore, SyntheticStoreConfig, format_stats

    store = SyntheticStore(SyntheticStoreConfig(num_sessions=num_sessions))
    print(format_stats(store.stats(min(num_sessions, 5000))))


def _reload_and_recommend(path: Path) -> None:
    import torch
    from transformers import AutoModel, AutoProcessor

    from session_transformers import AutoModelForNextItemPrediction

    base = AutoModel.from_pretrained(path, dtype=torch.float32)
    model = AutoModelForNextItemPrediction.from_pretrained(path, dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(path)
    print(f"reloaded {type(base).__name__} and {type(model).__name__} "
          f"({sum(p.numel() for p in model.parameters()):,} parameters), {type(processor).__name__} "
          f"with {processor.num_items - 1:,} items")
    session = processor.item_vocab[:3]
    top = model.recommend([session], top_k=5, processor=processor)[0]
    print(f"recommend({session}) -> " + ", ".join(f"{i} ({s:.2f})" for i, s in top))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--output-dir", type=Path, default=ROOT / "runs" / "quickstart")
    p.add_argument("--num-sessions", type=int, default=20_000)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--finetune-steps", type=int, default=300)
    args = p.parse_args(argv)
    out = args.output_dir.resolve()
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    data = ["--num-sessions", str(args.num_sessions)]

    print("== 1. the synthetic store")
    _stats(args.num_sessions)
    print("== 2. pretrain TAGNN++ (accelerate)")
    _run([accelerate, "launch", "--cpu", "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no",
          "--dynamo_backend", "no", "--num_cpu_threads_per_process", str(os.cpu_count() or 1), "trainers/pretrain.py", "--model", "tagnn_pp", *data, "--num-epochs",
          str(args.epochs), "--learning-rate", "1e-3", "--batch-size", "100", "--output-dir", str(out / "pretrain")])
    print("== 3. reload with the Auto classes")
    _reload_and_recommend(out / "pretrain")
    print("== 4. fine-tune with transformers.Trainer")
    _run([sys.executable, "trainers/finetune.py", "--model", "tagnn_pp", *data, "--init-from",
          str(out / "pretrain"), "--max-steps", str(args.finetune_steps), "--learning-rate", "1e-4",
          "--batch-size", "100", "--use-cpu", "--output-dir", str(out / "finetune"), "--save-steps", "1000000"])
    pre = json.loads((out / "pretrain" / "eval_results.json").read_text())
    ft = json.loads((out / "finetune" / "eval_results.json").read_text())
    print("== 5. held-out synthetic sessions, next item over the whole catalogue")
    print(f"  {'stage':12s} {'HR@20':>8s} {'MRR@20':>8s}")
    print(f"  {'pretrained':12s} {pre['HR@20']:8.2f} {pre['MRR@20']:8.2f}")
    print(f"  {'fine-tuned':12s} {ft['eval_HR@20']:8.2f} {ft['eval_MRR@20']:8.2f}")


if __name__ == "__main__":
    main()
