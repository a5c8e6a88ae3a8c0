"""TAGNN++ on the full Diginetica data set on a CPU, epoch by epoch: test HR@20 / MRR@20 after each epoch.

One command trains the paper config (hidden 120, 8 heads, full 43,097-item catalogue, batch 50) with
``trainers/pretrain.py`` on every prefix of every training session, length-grouped batches (issue 14), the
optimiser of the authors' released code (Adam 1e-3, L2 1e-5; x0.1 every 3 epochs), validation on 10,000 cases of
the held-out 10% of training sessions every ``--eval-steps`` steps and at the end of each call, the best
validation HR@20 keeping its weights::

    python -m benchmarks.tagnn_pp_diginetica_cpu --epochs 2      # ~1 h per epoch on 2 cores alone (README)

Epoch ``e`` is one call of the trainer with ``--num-epochs e --resume``: it continues the previous epoch's run
from its last checkpoint (checkpoints resume exactly), and at its end scores the whole test set once with the
weights selected on validation so far. Each epoch's ``eval_results.json`` is kept as
``<output-dir>/epoch_<e>/``; an epoch already there is not rerun, and an interrupted one resumes from its
checkpoint when the command is run again. Results go to ``benchmarks/results/tagnn_pp_diginetica_cpu.json``.

The issue's target after one epoch: test HR@20 >= 47 and MRR@20 >= 16.

``--config KEY=VALUE ...`` passes ``TagnnPPConfig`` overrides (the runs recorded before 2026-12-05 used the paper's
architecture, then the default); ``--group-by-length false`` trains on random batches instead (the authors' code's
order), to measure what length-grouping costs or gains in accuracy; ``--lr-decay-epochs 0.67`` decays the
learning rate x0.1 two thirds into the first epoch instead of after the third (the peer benchmark's epoch at 1e-4
gained about a point of HR@20 and MRR@20); ``--result-name`` keeps such a run in its own result file::

    python -m benchmarks.tagnn_pp_diginetica_cpu --epochs 1 --output-dir runs/diginetica-code \
        --result-name tagnn_pp_diginetica_cpu_code                     # today's default: the code's architecture
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ._common import SECONDS_NOTE, write_result

ROOT = Path(__file__).resolve().parents[1]

TARGET = {"HR@20": 47.0, "MRR@20": 16.0}


def trainer_command(args: argparse.Namespace, epochs: int) -> list[str]:
    return [
        os.path.relpath(sys.executable, ROOT),
        "trainers/pretrain.py",
        "--model",
        "tagnn_pp",
        "--dataset",
        "diginetica",
        "--data-path",
        os.path.relpath(args.data_path, ROOT),
        "--num-epochs",
        str(epochs),
        "--learning-rate",
        str(args.learning_rate),
        "--weight-decay",
        str(args.weight_decay),
        "--lr-decay-epochs",
        str(args.lr_decay_epochs),
        "--group-by-length",
        args.group_by_length,
        "--select-best",
        "HR@20",
        "--eval-steps",
        str(args.eval_steps),
        "--max-validation-samples",
        str(args.max_validation_samples),
        "--checkpointing-steps",
        "1000",
        "--checkpoints-total-limit",
        "2",
        "--output-dir",
        os.path.relpath(args.output_dir, ROOT),
        "--resume",
        *(["--config", *args.config] if args.config else []),
    ]


def run_epoch(args: argparse.Namespace, epoch: int) -> dict:
    """Train up to the end of ``epoch`` (resuming), keep its results in ``epoch_<epoch>/``; return them."""
    folder = args.output_dir / f"epoch_{epoch}"
    done = folder / "eval_results.json"
    cmd = trainer_command(args, epoch)
    if not done.exists():
        print(f"== epoch {epoch}: {' '.join(cmd)}", flush=True)
        start = time.perf_counter()
        with open(args.output_dir.parent / f"{args.output_dir.name}_epoch{epoch}.log", "a") as log:
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "timing.json").write_text(
            json.dumps({"wall_seconds_of_this_call": round(time.perf_counter() - start, 1)}) + "\n"
        )
        shutil.copy(args.output_dir / "metrics.jsonl", folder / "metrics.jsonl")
        shutil.copy(args.output_dir / "eval_results.json", done)  # last: marks the epoch done
    res = json.loads(done.read_text())
    timing_file = folder / "timing.json"
    timing = json.loads(timing_file.read_text()) if timing_file.exists() else {}
    pick = ("HR@10", "MRR@10", "HR@20", "MRR@20")
    return {
        "test": {k: round(res["test"][k], 2) for k in pick},
        "validation": {k: round(res["validation"][k], 2) for k in pick},
        "selected_step": res.get("selected_step"),
        "optimizer_steps": res["optimizer_steps"],
        "baseline_test": {
            name: {k: round(v[k], 2) for k in pick} for name, v in res.get("baseline", {}).items()
        },
        **timing,
        "command": " ".join(cmd),
    }


def validation_curve(folder: Path) -> list[dict]:
    return [
        {
            "step": r["step"],
            "epoch": r["epoch"],
            "HR@20": round(r["validation/HR@20"], 2),
            "MRR@20": round(r["validation/MRR@20"], 2),
        }  # fmt: skip
        for r in map(json.loads, (folder / "metrics.jsonl").read_text().splitlines())
        if "validation/HR@20" in r
    ]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-path", type=Path, default=ROOT.parent / "shared" / "data" / "diginetica")
    p.add_argument("--output-dir", type=Path, default=ROOT / "runs" / "diginetica-1epoch")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-5)
    p.add_argument(
        "--lr-decay-epochs",
        type=float,
        default=3.0,
        help="the learning rate falls x0.1 after every this many epochs (the code's 3; 0.67: once, two thirds into "
        "the first epoch)",
    )
    p.add_argument("--eval-steps", type=int, default=3000)
    p.add_argument("--max-validation-samples", type=int, default=10000)
    p.add_argument("--note", default="", help="how the run went (segments, interruptions), stored verbatim")
    p.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE", help="TagnnPPConfig overrides")
    p.add_argument("--group-by-length", choices=("true", "false"), default="true")
    p.add_argument("--result-name", default="tagnn_pp_diginetica_cpu", help="benchmarks/results/<name>.json")
    args = p.parse_args(argv)
    args.output_dir = args.output_dir.resolve()

    epochs = {f"epoch {e}": run_epoch(args, e) for e in range(1, args.epochs + 1)}
    last = args.output_dir / f"epoch_{args.epochs}"
    figures = {
        "test_by_epoch": {name: r["test"] for name, r in epochs.items()},
        "validation_by_epoch": {name: r["validation"] for name, r in epochs.items()},
        "baselines_test": next(iter(epochs.values()))["baseline_test"],
        "target_after_one_epoch": TARGET,
        "target_met_after_epoch_1": all(epochs["epoch 1"]["test"][k] >= v for k, v in TARGET.items()),
        "validation_curve": validation_curve(last),
        "epochs": epochs,
        "note": args.note,
        "seconds_note": SECONDS_NOTE,  # of each epoch's wall_seconds_of_this_call
    }
    data = (
        "Diginetica (SR-GNN protocol), full catalogue: 647,711 train prefixes (168,003 sessions), 10,000 of the "
        "71,759 validation prefixes (10% of training sessions, held out by session), all 60,858 test cases, "
        "43,097 items; TAGNN++ hidden 120, 8 heads, "
        + (f"config overrides {' '.join(args.config)}" if args.config else "the default config")
        + f", batch 50, {'length-grouped' if args.group_by_length == 'true' else 'random'} batches, one seed"
    )
    print(json.dumps(figures["test_by_epoch"], indent=1))
    print(write_result(args.result_name, figures, data))


if __name__ == "__main__":
    main()
