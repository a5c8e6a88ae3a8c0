"""Killed runs lose nothing: ``trainers/pretrain.py`` is SIGKILLed at chosen and random moments, resumed with
``--resume`` (killed again on some trials), and its final weights and test figures are compared with an
uninterrupted run's, exactly.

    python -m benchmarks.kill_trials                        # 24 trials over the models -> results/kill_trials.json
    python -m benchmarks.kill_trials --models tagnn_pp --trials-per-kind 1

Kill moments (each trial picks one; ``random`` and ``twice`` pick their times at random):

- ``checkpoint``: while a checkpoint is being written (a ``checkpoint_<n>`` folder without its completion marker);
- ``evaluation``: right after the step before an evaluation step is logged (the run is then training that step or
  evaluating it: evaluation takes most of that time);
- ``random``: at a uniformly random moment of the run;
- ``twice``: at a random moment, and again at a random moment of the resumed run.

``tests/test_kill_trials.py`` runs a fast subset in CI and the full set under ``-m slow``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMON = [
    "--max-steps",
    "12",
    "--checkpointing-steps",
    "2",
    "--checkpoints-total-limit",
    "2",
    "--eval-steps",
    "4",
]
COMMON += ["--lr-scheduler-type", "linear", "--warmup-ratio", "0.2", "--seed", "7"]


def models() -> dict[str, list[str]]:
    """Per model family: the ``trainers/pretrain.py`` flags of a small CPU run, from its descriptor's
    ``trial_flags`` (``models/<family>/family.py``); a family joins by giving its descriptor some. Read when called,
    so that a family registered later (``session_transformers.families.register_family``) is there too."""
    from session_transformers.families import discover

    return {name: ["--model", name, *f.trial_flags] for name, f in discover().items() if f.trial_flags}


MODELS: dict[str, list[str]] = models()
"""The families of :func:`models` when this module was imported."""

KINDS = ("checkpoint", "evaluation", "random", "twice")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def command(model: str, out: Path, resume: bool = False) -> list[str]:
    return [sys.executable, "trainers/pretrain.py", *models()[model], *COMMON, "--output-dir", str(out)] + (
        ["--resume"] if resume else []
    )


def _logged_steps(out: Path) -> list[int]:
    path = out / "metrics.jsonl"
    if not path.exists():
        return []
    steps = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError, KeyError):
            steps.append(json.loads(line)["step"])
    return steps


def _incomplete_checkpoint(out: Path) -> bool:
    ckpts = out / "checkpoints"
    return ckpts.exists() and any(
        not (c / "checkpoint_complete").exists() for c in ckpts.glob("checkpoint_*")
    )


def run_until(cmd: list[str], out: Path, kind: str | None, rng: random.Random, duration: float) -> dict:
    """Run ``cmd``; SIGKILL it at the moment ``kind`` names (``None``: let it finish). Returns what happened."""
    eval_every = int(COMMON[COMMON.index("--eval-steps") + 1])
    kill_at = rng.uniform(0.15, 0.9) * duration if kind in ("random", "twice") else None
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    start, deadline = time.monotonic(), time.monotonic() + 600
    moment = None
    while proc.poll() is None and time.monotonic() < deadline:
        if kind == "checkpoint" and _incomplete_checkpoint(out):
            moment = "while writing a checkpoint"
        elif kind == "evaluation":
            steps = _logged_steps(out)
            if steps and (steps[-1] + 1) % eval_every == 0 and steps[-1] >= eval_every:
                moment = f"during step {steps[-1] + 1} (an evaluation step)"
        elif kill_at is not None and time.monotonic() - start >= kill_at:
            moment = f"at {kill_at:.1f} s (random), after step {max(_logged_steps(out), default=0)}"
        if moment is not None:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.003)
    _, err = proc.communicate(timeout=120)
    return {
        "seconds": time.monotonic() - start,
        "returncode": proc.returncode,
        "killed": proc.returncode == -signal.SIGKILL,
        "moment": moment,
        "stderr_tail": err.decode(errors="replace")[-1500:]
        if proc.returncode not in (0, -signal.SIGKILL)
        else "",
    }


def reference(model: str, out: Path) -> tuple[float, dict]:
    start = time.monotonic()
    res = subprocess.run(command(model, out), cwd=ROOT, env=_env(), capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{model} reference run failed:\n{res.stderr[-3000:]}")
    return time.monotonic() - start, _final(out)


def _final(out: Path) -> dict:
    from safetensors.torch import load_file

    return {
        "weights": load_file(str(out / "model.safetensors")),
        "results": json.loads((out / "eval_results.json").read_text()),
    }


def trial(model: str, kind: str, out: Path, rng: random.Random, duration: float, ref: dict) -> dict:
    import shutil

    import torch

    kills = []
    first = run_until(command(model, out), out, kind, rng, duration)
    redrawn = 0
    # a random moment drawn from the reference run's duration can fall after a (faster) run has finished: draw
    # again within the duration just observed, from a clean folder (at most 3 times)
    while kind in ("random", "twice") and not first["killed"] and first["returncode"] == 0 and redrawn < 3:
        duration, redrawn = first["seconds"], redrawn + 1
        shutil.rmtree(out, ignore_errors=True)
        first = run_until(command(model, out), out, kind, rng, duration)
    kills.append(first)
    if kind == "twice" and first["killed"]:
        kills.append(run_until(command(model, out, resume=True), out, "random", rng, duration))
    final = run_until(command(model, out, resume=True), out, None, rng, duration)
    outcome = {"model": model, "kind": kind, "kills": [k["moment"] for k in kills if k["killed"]]}
    if redrawn:
        outcome["kill_moment_redrawn"] = redrawn
    if final["returncode"] != 0:
        return {**outcome, "ok": False, "why": "resume failed: " + final["stderr_tail"]}
    if not any(k["killed"] for k in kills):
        return {**outcome, "ok": False, "why": "the run finished before the kill moment came"}
    got = _final(out)
    same = all(torch.equal(ref["weights"][k], got["weights"][k]) for k in ref["weights"]) and set(
        ref["weights"]
    ) == set(got["weights"])
    same_results = ref["results"].get("test") == got["results"].get("test")
    steps = _logged_steps(out)
    return {
        **outcome,
        "ok": bool(same and same_results and steps == sorted(set(steps))),
        "same_weights": same,
        "same_test_results": same_results,
        "metrics_log_steps_once_each": steps == sorted(set(steps)),
    }


def run_trials(models: list[str], kinds: list[str], trials_per_kind: int, work: Path, seed: int = 0) -> dict:
    rng = random.Random(seed)
    rows = []
    for model in models:
        duration, ref = reference(model, work / model / "reference")
        for kind in kinds:
            for t in range(trials_per_kind):
                rows.append(trial(model, kind, work / model / f"{kind}-{t}", rng, duration, ref))
                print(json.dumps(rows[-1])[:600], flush=True)
    return {"trials": len(rows), "ok": sum(r["ok"] for r in rows), "rows": rows}


def main(argv: list[str] | None = None) -> None:
    import tempfile

    from ._common import write_result

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=list(models()), choices=list(models()))
    p.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    p.add_argument("--trials-per-kind", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = run_trials(args.models, args.kinds, args.trials_per_kind, Path(tmp), args.seed)
    print(f"{result['ok']} / {result['trials']} trials resumed to the uninterrupted run's exact weights")
    data = "; ".join(f"{m}: {' '.join(models()[m])} {' '.join(COMMON)}" for m in args.models)
    print(write_result("kill_trials", result, data=data))


if __name__ == "__main__":
    main()
