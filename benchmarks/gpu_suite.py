"""One prepared GPU suite: every GPU figure of TAGNN++, CERES and UBM, in at most 8 minutes on one H100/H200.

GPU time is rare and short here (about 15 minutes a session, start-up included), so every GPU check is this one
script, tested on CPU first::

    python -m benchmarks.gpu_suite --dry-run                       # CPU, toy sizes, results in a temp folder (CI)
    python -m benchmarks.gpu_suite --data-path <dir with train_sessions.txt and test.tsv>   # on the GPU machine

On the lent GPU machine ``../shared`` does not travel: copy ``../shared/data/diginetica`` into a git-ignored folder
of the checkout (``devdata/gpu-data/diginetica``), name it in ``carry``, and pass it as ``--data-path``.

Parts, each a subprocess with its own time limit (a part that fails or runs out of time is recorded, and the
suite goes on to the next one):

1. ``tagnn_pp_speed_gpu``: TAGNN++ training throughput, paper config (hidden 120, 8 heads) over the full
   catalogue, bf16 autocast, at batch 50 and larger batches, random and length-grouped batches; the share of step
   time spent waiting for data (4 loader workers); test-set evaluation time (``benchmarks/tagnn_pp_speed.py``).
2. ``tagnn_pp_speed_gpu_compile``: the same with ``torch.compile`` at two batch sizes: does it pay?
3. ``ceres_speed_cuda``: a CERES pretraining step against ``BertForMaskedLM`` of the same item-encoder size on the
   same tokens (the paper says +20%), the data-wait share, and the paper's base size in bf16 with the projected
   time for 468M sessions on 16 GPUs (``benchmarks/ceres_speed.py``).
4. ``ubm_speed_cuda``: UBM pretraining throughput at the paper's batches (512 item pairs in stage 1, 128
   sessions in stage 2) against ``BertModel`` on the same tokens, the 30,000-item candidate pool, and the peak
   memory of a stage-2 step at batch 128 x 32 interactions x 64 tokens, which does not fit in a 24 GiB CPU
   machine (``benchmarks/ubm_speed.py``).
5. ``tagnn_pp_diginetica_gpu``: full Diginetica training with what is left of the budget (``accelerate launch
   --mixed_precision bf16 trainers/pretrain.py``), validation-selected, test HR@20 / MRR@20 scored once.

The suite writes ``gpu_suite.json`` (each part's status, seconds and headline figures) beside the parts' own
result files and prints a summary. Reference (the authors' code on an H100, from the speed issue): 0.054 s per
batch of 50, about 920 samples/s, 779 s per epoch; targets: at least 10x that at batch 50 and 40x at the best
batch size that still meets the quality target.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ._common import write_result

ROOT = Path(__file__).resolve().parents[1]

AUTHORS_H100_SAMPLES_PER_S = 920.0
"""The authors' TAGNN++ code on one H100 at batch 50 (0.054 s per batch), from the speed issue."""
MIN_PART_S = 30.0
"""A part with less time than this left is skipped rather than started."""


@dataclass
class Part:
    name: str
    command: list[str]
    timeout_s: float
    result_name: str | None = None
    """The result file the part writes (``<results_dir>/<result_name>.json``)."""
    outcome: dict = field(default_factory=dict)


def _python() -> str:
    return sys.executable


def _accelerate() -> list[str]:
    return [_python(), "-m", "accelerate.commands.launch"]


def build_parts(args: argparse.Namespace, results_dir: Path, run_dir: Path) -> list[Part]:
    """The suite's parts with their commands: toy sizes on CPU under ``--dry-run``, the real sizes otherwise."""
    data = ["--data-path", str(args.data_path)]
    if args.dry_run:
        toy_speed = [
            "--data-path",
            str(run_dir / "no-diginetica"),  # the synthetic fallback
            "--num-sessions",
            "300",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--max-eval-samples",
            "64",
            "--latency-sessions",
            "0",
            "--hidden-size",
            "16",
            "--num-heads",
            "2",
        ]
        speed = [*toy_speed, "--batch-sizes", "8", "--sampling", "random", "grouped"]
        compiled = [
            *toy_speed,
            "--batch-sizes",
            "8",
            "--sampling",
            "random",
            "--compile-backend",
            "aot_eager",
        ]
        ceres = [
            "--device",
            "cpu",
            "--batch-size",
            "2",
            "--steps",
            "1",
            "--base-batch-size",
            "1",
            "--base-steps",
            "1",
            "--hidden",
            "32",
            "--layers",
            "1",
            "--num-sessions",
            "60",
            "--toy-base",
        ]
        train = [
            "--dataset",
            "synthetic",
            "--store-preset",
            "tiny",
            "--max-steps",
            "3",
            "--batch-size",
            "8",
            "--config",
            "hidden_size=16",
            "num_attention_heads=2",
        ]
        ubm = ["--device", "cpu", "--dry-run"]
        mixed = "no"
    else:
        speed = [
            *data,
            "--batch-sizes",
            *map(str, args.batch_sizes),
            "--steps",
            "150",
            "--warmup",
            "20",
            "--num-workers",
            "4",
            "--bf16",
            "--latency-sessions",
            "0",
        ]
        compiled = [*data, "--batch-sizes", "50", "500", "--steps", "100", "--warmup", "30"]
        compiled += ["--num-workers", "4", "--bf16", "--latency-sessions", "0", "--sampling", "grouped"]
        ceres = ["--device", "cuda", "--batch-size", "64", "--steps", "20", "--base-batch-size", "16"]
        ceres += ["--base-steps", "5", "--num-sessions", "3000"]
        train = [
            "--dataset",
            "diginetica",
            *data,
            "--num-epochs",
            str(args.epochs),
            "--batch-size",
            str(args.train_batch_size),
            "--learning-rate",
            str(args.learning_rate),
            "--weight-decay",
            "1e-5",
            "--group-by-length",
            "true",
            "--select-best",
            "HR@20",
            "--max-validation-samples",
            "10000",
            "--eval-batch-size",
            "2000",
            "--num-workers",
            "4",
        ]
        ubm = ["--device", "cuda", "--stage1-pairs", "512", "--stage2-sessions", "128", "--steps", "10"]
        ubm += ["--warmup", "3", "--memory-batch", "128", "--memory-fallback-batches"]
        mixed = "bf16"
    rd = ["--results-dir", str(results_dir)]
    launch = [*_accelerate(), "--num_processes", "1", "--num_machines", "1", "--mixed_precision", mixed]
    launch += ["--dynamo_backend", "no"] + (["--cpu"] if args.dry_run else [])
    return [
        Part(
            "tagnn_pp_speed_gpu",
            [_python(), "-m", "benchmarks.tagnn_pp_speed", *speed, "--name", "tagnn_pp_speed_gpu", *rd],
            args.limits[0],
            "tagnn_pp_speed_gpu",
        ),
        Part(
            "tagnn_pp_speed_gpu_compile",
            [
                _python(),
                "-m",
                "benchmarks.tagnn_pp_speed",
                *compiled,
                "--compile",
                "--name",
                "tagnn_pp_speed_gpu_compile",
                *rd,
            ],
            args.limits[1],
            "tagnn_pp_speed_gpu_compile",
        ),
        Part(
            "ceres_speed_cuda",
            [_python(), "-m", "benchmarks.ceres_speed", *ceres, *rd],
            args.limits[2],
            "ceres_speed_cpu" if args.dry_run else "ceres_speed_cuda",
        ),
        Part(
            "ubm_speed_cuda",
            [_python(), "-m", "benchmarks.ubm_speed", *ubm, *rd],
            args.limits[3],
            "ubm_speed_cpu" if args.dry_run else "ubm_speed_cuda",
        ),
        Part(
            "tagnn_pp_diginetica_gpu",
            [
                *launch,
                str(ROOT / "trainers" / "pretrain.py"),
                "--model",
                "tagnn_pp",
                *train,
                "--output-dir",
                str(run_dir / "tagnn_pp_diginetica"),
            ],
            0,  # what is left of the budget
        ),
    ]


def _headline(part: Part, results_dir: Path, run_dir: Path) -> dict:
    """The few figures of a finished part that the summary prints."""
    if part.result_name is not None:
        path = results_dir / f"{part.result_name}.json"
        if not path.exists():
            return {"missing_result": str(path)}
        fig = json.loads(path.read_text())["figures"]
        if part.name.startswith("tagnn_pp_speed"):
            rows = fig.get("results", {})
            best = max(rows.items(), key=lambda kv: kv[1]["samples_per_s"]) if rows else (None, {})
            at50 = {
                k: round(v["samples_per_s"], 1) for k, v in rows.items() if k.startswith("train batch 50 ")
            }
            return {
                "samples_per_s_at_batch_50": at50,
                "best": best[0],
                "best_samples_per_s": round(best[1].get("samples_per_s", 0.0), 1),
                "x_authors_h100_at_batch_50": {
                    k: round(v / AUTHORS_H100_SAMPLES_PER_S, 1) for k, v in at50.items()
                },
                "eval_seconds": fig.get("eval_seconds"),
                "data_wait_share": {k: round(v["data_wait_share"], 3) for k, v in rows.items()},
            }
        if part.name.startswith("ubm"):
            memory = fig.get("stage 2 peak memory", {})
            return {
                "stage1_ubm_over_bert": fig.get("stage 1", {}).get("UBM / BertModel time per interaction"),
                "stage2_sessions_per_s": fig.get("stage 2", {}).get("UBM sessions/s"),
                "pool_seconds": fig.get("candidate pool", {}).get("seconds (tokenise + embed)"),
                "stage2_peak_memory": next(iter(memory.values()), None),
                "stage2_peak_memory_activation_checkpointing": next(
                    (v for k, v in memory.items() if k.endswith("activation checkpointing")), None
                ),
            }
        small, base = fig.get("small", {}), fig.get("paper_base", {})
        return {
            "ceres_over_bert_small": small.get("CERES / BERT step time"),
            "ceres_over_bert_base": base.get("ceres_over_bert"),
            "data_wait_share": small.get("data_wait_share_if_collated_inline"),
            "projected_hours_468M_sessions_16_gpus": base.get("projected_hours_468M_sessions_16_gpus"),
        }
    results = run_dir / "tagnn_pp_diginetica" / "eval_results.json"
    if not results.exists():
        return {"missing_result": str(results)}
    ev = json.loads(results.read_text())
    return {
        "test": ev.get("test"),
        "validation": ev.get("validation"),
        "selected_step": ev.get("selected_step"),
    }


def run_part(part: Part, results_dir: Path, run_dir: Path, log_dir: Path) -> dict:
    if part.timeout_s < MIN_PART_S:
        return {"status": "skipped", "reason": f"{part.timeout_s:.0f} s left of the budget"}
    log = log_dir / f"{part.name}.log"
    print(f"== {part.name} (limit {part.timeout_s:.0f} s): {' '.join(part.command)}", flush=True)
    start = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    with open(log, "w", encoding="utf-8") as fh:
        try:
            proc = subprocess.run(
                part.command, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, timeout=part.timeout_s, env=env
            )
            status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
        except subprocess.TimeoutExpired:
            status = "timeout"
    outcome = {"status": status, "seconds": round(time.perf_counter() - start, 1), "log": str(log)}
    if status == "ok":
        try:
            outcome["figures"] = _headline(part, results_dir, run_dir)
        except Exception as err:  # a summary problem must not lose the other parts
            outcome["figures"] = {"summary_error": repr(err)}
    else:
        outcome["log_tail"] = log.read_text(encoding="utf-8", errors="replace")[-2000:]
    print(f"   {part.name}: {status} in {outcome['seconds']} s", flush=True)
    return outcome


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dry-run", action="store_true", help="every part at toy size on the CPU (CI)")
    p.add_argument("--data-path", type=Path, default=ROOT.parent / "shared" / "data" / "diginetica")
    p.add_argument("--budget-s", type=float, default=480.0, help="the whole suite's wall-clock budget")
    p.add_argument(
        "--limits",
        type=float,
        nargs=4,
        default=[130.0, 75.0, 70.0, 90.0],
        metavar=("SPEED", "COMPILE", "CERES", "UBM"),
        help="time limits of parts 1-4 in seconds; part 5 gets what is left",
    )
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[50, 200, 1000, 4000])
    p.add_argument("--epochs", type=int, default=2, help="part 4: Diginetica epochs")
    p.add_argument("--train-batch-size", type=int, default=100, help="part 4: batch size")
    p.add_argument("--learning-rate", type=float, default=1e-3, help="part 4: Adam lr (the authors' code)")
    p.add_argument(
        "--results-dir", type=Path, default=None, help="default benchmarks/results (dry run: a temp dir)"
    )
    p.add_argument(
        "--run-dir", type=Path, default=None, help="logs and the training run (default runs/gpu-suite)"
    )
    args = p.parse_args(argv)
    if not args.dry_run:
        import torch

        if not torch.cuda.is_available():
            p.error("no CUDA device: run on the GPU machine, or pass --dry-run")
    tmp = tempfile.mkdtemp(prefix="gpu-suite-") if args.dry_run else None
    results_dir = args.results_dir or (Path(tmp) / "results" if tmp else ROOT / "benchmarks" / "results")
    run_dir = args.run_dir or (Path(tmp) if tmp else ROOT / "runs" / "gpu-suite")
    for d in (results_dir, run_dir):
        d.mkdir(parents=True, exist_ok=True)
    parts = build_parts(args, results_dir, run_dir)
    suite_start = time.perf_counter()
    outcomes = {}
    for part in parts:
        left = args.budget_s - (time.perf_counter() - suite_start)
        part.timeout_s = min(part.timeout_s, left) if part.timeout_s else left - 10
        outcomes[part.name] = run_part(part, results_dir, run_dir, run_dir)
    total = round(time.perf_counter() - suite_start, 1)
    print(f"\n== GPU suite summary ({'dry run, CPU' if args.dry_run else 'GPU'}; {total} s)")
    for name, out in outcomes.items():
        print(
            f"{name:30s} {out['status']:18s} {out.get('seconds', 0):8.1f} s  {json.dumps(out.get('figures', {}))}"
        )
    figures = {"dry_run": args.dry_run, "seconds": total, "budget_s": args.budget_s, "parts": outcomes}
    print(
        write_result(
            "gpu_suite",
            figures,
            data=f"Diginetica at {args.data_path} (dry run: synthetic toy data)",
            results_dir=results_dir,
        )
    )
    return figures


if __name__ == "__main__":
    main()
