"""The main job's MUVCOG row with paired intervals: the fine-tuned query-suggestion model against its baselines.

The main job prints means; whether "MUVCOG beats session words" holds needs the spread of the difference over the
same test examples. This reads the main job's fine-tuned MUVCOG model, rebuilds its test split from the training
record (the command that made it), scores the model and the recipe's "previous query" and "session words"
baselines example by example, and gives each difference a paired 95 % bootstrap interval::

    python -m benchmarks.muvcog_main_job                  # runs the main job's MUVCOG job first if it is missing
    python -m benchmarks.muvcog_main_job --run DIR        # an existing fine-tuning output folder

The model's means must equal what the fine-tuning trainer wrote to ``eval_results.json`` (checked): the figures are
the main job's, not a re-training. Result: ``benchmarks/results/muvcog_main_job.json``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

from ._common import bootstrap_draws, interval, paired_difference, write_result
from .muvcog_claims import K, baseline_per_example, ranking_per_example

ROOT = Path(__file__).resolve().parents[1]
METRICS = (f"NDCG@{K}", f"HR@{K}", f"MRR@{K}", "Avg.Sim")


def finetune_arguments(run: Path) -> list[str]:
    """The fine-tuning command line of ``run`` (its training record), without the script."""
    command = json.loads((run / "training_record.json").read_text())["command"]
    argv = shlex.split(command)
    argv = argv[argv.index("trainers/finetune.py") + 1 :]
    if "--init-from" in argv:  # a record names absolute paths as placeholders: the main job's layout then
        at = argv.index("--init-from") + 1
        if not (ROOT / argv[at]).exists() and (run.parent / "pretrain").exists():
            argv[at] = str(run.parent / "pretrain")
    return argv


def score(run: Path, resamples: int = 2000) -> tuple[dict, str]:
    from trainers import finetune  # its parser, to rebuild the same data from the same flags

    args, recipe = finetune.parse_args(finetune_arguments(run))
    task = recipe.finetune[args.task]
    data = task.prepare(args)
    model = task.auto_class.from_pretrained(run)
    rows = data.test_dataset.rows
    model_rows = ranking_per_example(model, rows, data.collate_fn, word_vectors=data.processor.word_vectors)
    baselines = baseline_per_example(data)
    recorded = json.loads((run / "eval_results.json").read_text())
    for m in METRICS:  # the same figures as the main job's
        if not np.isclose(model_rows[m].mean(), recorded["test"][f"test_{m}"], atol=1e-5):
            raise SystemExit(
                f"{m}: recomputed {model_rows[m].mean():.6f}, the run wrote {recorded['test'][f'test_{m}']}"
            )
    draws = bootstrap_draws(len(rows), resamples, seed=0)
    table = {"MUVCOG": model_rows, **baselines}
    figures = {
        "test_examples": len(rows),
        "copy_scale": (recorded.get("tuned_on_validation") or {}).get("copy_scale"),
        "selected_checkpoint": recorded.get("selected_checkpoint"),
        "validation": {m: recorded["validation"][f"validation_{m}"] for m in METRICS},
        "test": {
            name: {m: vars(interval(values[m], method="bootstrap", draws=draws)) for m in METRICS}
            for name, values in table.items()
        },
        "MUVCOG minus baseline (paired)": {
            name: {
                m: {
                    **vars(d := paired_difference(model_rows[m], values[m], method="bootstrap", draws=draws)),
                    "verdict": d.verdict,
                }
                for m in METRICS
            }
            for name, values in baselines.items()
        },
        "finetune_command": "python trainers/finetune.py " + shlex.join(finetune_arguments(run)),
    }
    return figures, f"{data.description}; {len(rows)} test examples, {resamples} paired bootstrap resamples"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--run", type=Path, default=None, help="a MUVCOG query-suggestion fine-tuning output folder"
    )
    p.add_argument(
        "--output-dir", type=Path, default=ROOT / "runs" / "muvcog-main-job", help="main job's output"
    )
    p.add_argument("--resamples", type=int, default=2000)
    p.add_argument("--name", default="muvcog_main_job")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    run = args.run or args.output_dir / "muvcog" / "finetune"
    if not (run / "model.safetensors").exists():
        if args.run:
            raise SystemExit(f"{run}: no fine-tuned model there")
        cmd = [
            sys.executable,
            "trainers/quickstart.py",
            "--models",
            "muvcog",
            "--output-dir",
            str(args.output_dir),
        ]
        print("== " + shlex.join(cmd), flush=True)
        subprocess.run(cmd, check=True, cwd=ROOT)
    figures, data = score(run.resolve(), args.resamples)
    for name, diffs in figures["MUVCOG minus baseline (paired)"].items():
        d = diffs[f"NDCG@{K}"]
        print(
            f"MUVCOG - {name}: NDCG@{K} {d['value']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}] {d['verdict']}"
        )
    if not args.no_write:
        print(write_result(args.name, figures, data))
    return figures


if __name__ == "__main__":
    main()
