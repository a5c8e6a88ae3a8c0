"""The main job, end to end on the embedded synthetic store, offline, on a CPU.

    python trainers/quickstart.py [--output-dir runs/quickstart] [--models tagnn_pp ceres ...] [--full]

For every model family whose recipe has a ``quickstart`` (a :class:`~session_transformers.trainer_utils.QuickstartJob`),
in the order of ``RECIPES``:

1. pretrains it with its own objective through ``accelerate launch trainers/pretrain.py``, stage after stage (a
   later stage starts from the previous stage's output with ``--init-from``), and saves model and processor;
2. reloads them with ``AutoModel``, ``AutoProcessor`` and the fine-tuning head's Auto class;
3. fine-tunes the saved checkpoint with ``transformers.Trainer`` (``trainers/finetune.py``) on its task;
4. prints ONE summary table: each model's held-out test metrics against its task's baselines (``Task.baseline``:
   popularity, last item, random ranking..., and BM25 where the task ranks text), computed on the same test split.

Progress: a header per step with the elapsed time, the trainers' progress bars, and the time each step took.
Sizes are CPU scale (the figures show the models learning, not the papers' numbers: see ``benchmarks/``);
``--full`` runs each family's larger version (``QuickstartJob.full_*``); ``--tiny`` a toy version for tests
(tiny store, 2 optimiser steps). A model family joins the job by giving its recipe a ``quickstart``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

TINY_FLAGS = (
    "--store-preset",
    "tiny",
    "--num-sessions",
    "200",
    "--max-steps",
    "2",
    "--max-eval-samples",
    "40",
)
"""Appended to every trainer command by ``--tiny`` (later flags win): the tiny store, 2 steps, small splits."""


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its finished child processes."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Clock:
    """Elapsed time since the job started, and how long each step took (wall and CPU seconds: on a busy machine
    the CPU time says more about the job's own cost than the wall time)."""

    def __init__(self):
        self.start, self.cpu0 = time.perf_counter(), cpu_seconds()
        self.steps: list[tuple[str, str, float, float]] = []

    def elapsed(self) -> str:
        seconds = int(time.perf_counter() - self.start)
        return f"{seconds // 60}:{seconds % 60:02d}"

    def step(self, model: str, name: str):
        clock = self

        class _Step:
            def __enter__(self):
                self.t0, self.cpu0 = time.perf_counter(), cpu_seconds()
                print(f"\n[{clock.elapsed()}] == {model}: {name}", flush=True)

            def __exit__(self, *exc):
                seconds, cpu = time.perf_counter() - self.t0, cpu_seconds() - self.cpu0
                clock.steps.append((model, name, seconds, cpu))
                if exc[0] is None:
                    print(
                        f"[{clock.elapsed()}] {model}: {name} took {seconds:.1f} s ({cpu:.1f} CPU s)",
                        flush=True,
                    )

        return _Step()


def _rel(path) -> str:
    path = str(path)
    return os.path.relpath(path, ROOT) if os.path.isabs(path) else path


def _quickstart_jobs() -> dict:
    from session_transformers.recipes import RECIPES

    return {name: recipe for name, recipe in RECIPES.items() if recipe.quickstart is not None}


def _stats(tiny: bool) -> None:
    from session_transformers.data.synthetic import SyntheticStore, SyntheticStoreConfig, format_stats

    config = SyntheticStoreConfig.tiny() if tiny else SyntheticStoreConfig()
    print(format_stats(SyntheticStore(config).stats(200 if tiny else 1000)))


def _pretrain(argv: list[str], launch: bool, threads: int) -> None:
    """``accelerate launch trainers/pretrain.py ARGV`` (one CPU process), or ``pretrain.main(argv)`` in this process."""
    print("$ accelerate launch trainers/pretrain.py " + " ".join(_rel(a) for a in argv), flush=True)
    if not launch:
        from accelerate.state import AcceleratorState

        import pretrain

        pretrain.main(argv)
        AcceleratorState._reset_state(reset_partial_state=True)
        return
    # The `accelerate launch` command, run from this (already started) interpreter: it starts the training
    # process itself, so the job pays one interpreter start-up per stage instead of two.
    from accelerate.commands.launch import launch_command, launch_command_parser

    launch_args = launch_command_parser().parse_args(
        [
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
            str(threads),
            str(ROOT / "trainers" / "pretrain.py"),
            *argv,
        ]
    )
    launch_command(launch_args)


def _finetune(argv: list[str]) -> dict:
    """``trainers/finetune.py ARGV`` (``transformers.Trainer``), in this process."""
    from accelerate.state import AcceleratorState

    import finetune

    print("$ python trainers/finetune.py " + " ".join(_rel(a) for a in argv), flush=True)
    try:
        return finetune.main(argv)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)


def _reload(model_type: str, recipe, job, path: Path) -> None:
    """Load the pretrained folder with the Auto classes, as a user would, and show one use of it."""
    import torch
    from transformers import AutoModel, AutoProcessor

    base = AutoModel.from_pretrained(path, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(path)
    head_auto = recipe.finetune[job.finetune_task].auto_class
    head = head_auto.from_pretrained(path, dtype=torch.float32).eval()
    print(
        f"reloaded {type(base).__name__} ({sum(p.numel() for p in base.parameters()):,} parameters), "
        f"{type(head).__name__} ({head_auto.__name__}) and {type(processor).__name__} from {_rel(path)}"
    )
    vocab = getattr(processor, "item_vocab", None)
    if hasattr(head, "recommend") and vocab:
        from transformers import pipeline

        session = list(vocab[:3])
        top = pipeline("session-recommendation", model=head, processor=processor, device="cpu")(
            session, top_k=5
        )
        print(f"pipeline('session-recommendation')({session}) -> " + ", ".join(r["item_id"] for r in top))


def _flags(job, full: bool, tiny: bool) -> tuple[list[list[str]], list[str]]:
    stages = (
        job.full_pretrain_stages if full and job.full_pretrain_stages is not None else job.pretrain_stages
    )
    finetune = job.full_finetune_args if full and job.full_finetune_args is not None else job.finetune_args
    extra = list(TINY_FLAGS) if tiny else []
    return [[*s, *extra] for s in stages], [*finetune, *extra]


def run_family(model_type: str, recipe, args, clock: Clock) -> dict:
    """Pretrain (every stage), reload, fine-tune one family; returns its summary rows' data."""
    job = recipe.quickstart
    stages, finetune_flags = _flags(job, args.full, args.tiny)
    out = args.output_dir / model_type
    previous = None
    for number, flags in enumerate(stages, 1):
        stage_dir = out / ("pretrain" if len(stages) == 1 else f"pretrain-stage{number}")
        name = recipe.pretraining_stages()[number - 1].name if len(stages) > 1 else "pretrain"
        argv = ["--model", model_type]
        if len(stages) > 1:
            argv += ["--stage", str(number)]
        if previous is not None:
            argv += ["--init-from", str(previous)]
        argv += [*flags, "--output-dir", str(stage_dir)]
        with clock.step(model_type, f"{name} (stage {number}/{len(stages)}, accelerate)"):
            _pretrain(argv, launch=not args.no_launch, threads=args.threads)
        previous = stage_dir
    with clock.step(model_type, "reload with the Auto classes"):
        _reload(model_type, recipe, job, previous)
    ft_dir = out / "finetune"
    argv = ["--model", model_type, "--task", job.finetune_task, *finetune_flags]
    argv += [
        "--init-from",
        str(previous),
        "--use-cpu",
        "--output-dir",
        str(ft_dir),
        "--save-steps",
        "1000000",
    ]
    with clock.step(model_type, f"fine-tune on {job.finetune_task} (Trainer)"):
        _finetune(argv)
    results = json.loads((ft_dir / "eval_results.json").read_text())
    test = results.get("test") or results["validation"]
    prefix = "test_" if "test" in results else "validation_"
    return {
        "task": job.finetune_task,
        "split": prefix.rstrip("_"),
        "metrics": {m: test[f"{prefix}{m}"] for m in job.metrics},
        "baselines": {
            name: {m: figures[m] for m in job.metrics if m in figures}
            for name, figures in (results.get("baseline") or {}).items()
        },
    }


def summary_table(results: dict[str, dict]) -> str:
    """One table: per model, task and metric, the model's held-out figure, the best trivial baseline's and every
    baseline's (same split, same metric)."""
    rows = [("model", "task", "metric", "model", "best baseline", "margin", "baselines")]
    for model_type, res in results.items():
        for metric, value in res["metrics"].items():
            base = {name: figs[metric] for name, figs in res["baselines"].items() if metric in figs}
            best = max(base.values()) if base else None
            rows.append(
                (
                    model_type,
                    res["task"],
                    metric,
                    f"{value:.2f}",
                    "-" if best is None else f"{best:.2f}",
                    "-" if best is None else f"{value - best:+.2f}",
                    ", ".join(f"{name} {v:.2f}" for name, v in base.items()) or "-",
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(c.ljust(w) if i in (0, 1, 2, 6) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    families = list(_quickstart_jobs())
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--output-dir", type=Path, default=ROOT / "runs" / "quickstart")
    p.add_argument("--models", nargs="+", default=families, choices=families, help="families to run")
    p.add_argument("--full", action="store_true", help="the larger version of each family's job (slower)")
    p.add_argument("--tiny", action="store_true", help="a toy version (tiny store, 2 steps): for tests")
    p.add_argument(
        "--no-launch",
        action="store_true",
        help="pretrain in this process (pretrain.main) instead of through accelerate launch: for tests",
    )
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads of the trainers")
    args = p.parse_args(argv)
    args.output_dir = args.output_dir.resolve()
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    clock = Clock()
    recipes = _quickstart_jobs()
    print(
        f"[{clock.elapsed()}] the main job: {', '.join(args.models)}"
        + (" (--full)" if args.full else " (--tiny)" if args.tiny else "")
        + f"; output in {_rel(args.output_dir)}"
    )
    with clock.step("store", "the synthetic store"):
        _stats(args.tiny)
    results = {}
    for number, model_type in enumerate(args.models, 1):
        print(f"\n[{clock.elapsed()}] ===== model {number}/{len(args.models)}: {model_type}", flush=True)
        results[model_type] = run_family(model_type, recipes[model_type], args, clock)
    total = time.perf_counter() - clock.start
    print(f"\n[{clock.elapsed()}] time per step (wall, CPU):")
    for model_type, name, seconds, cpu in clock.steps:
        print(f"  {model_type:13s} {name:50s} {seconds:7.1f} s {cpu:8.1f} CPU s")
    print(f"  {'total':13s} {'':50s} {total:7.1f} s {cpu_seconds() - clock.cpu0:8.1f} CPU s")
    print("\n== held-out synthetic sessions (test split): each model against its task's baselines")
    print(summary_table(results))
    summary = {"results": results, "seconds": total, "steps": clock.steps}
    (args.output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main()
