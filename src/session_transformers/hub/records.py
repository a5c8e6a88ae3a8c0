"""What a card reads from a trained folder (its evaluation results, its training log, drawn as a curve) and from
the benchmarks' result files."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cards import CardFamily

ROOT = Path(__file__).resolve().parents[3]
"""The checkout's root (``benchmarks/results/`` and ``trainers/`` live there)."""
BENCHMARK_RESULTS_DIR = ROOT / "benchmarks" / "results"
METRICS_LOG = "metrics.jsonl"


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def split_metrics(results: Mapping[str, Any], split: str) -> dict[str, float]:
    """The numeric metrics of one split of an ``eval_results.json``, with ``transformers.Trainer``'s
    ``<split>_`` prefix removed (``trainers/finetune.py`` writes ``test_HR@20``, ``trainers/pretrain.py`` ``HR@20``)."""
    raw = results.get(split) or {}
    out = {}
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        name = key[len(split) + 1 :] if key.startswith(f"{split}_") else key
        out[name] = float(value)
    return out


def read_training_log(folder: Path) -> list[dict]:
    path = Path(folder) / METRICS_LOG
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def training_curve(folder: Path, out_path: Path, family: CardFamily) -> Path | None:
    """Draw the training loss per optimiser step and the validation metrics (``metrics.jsonl``) into a PNG;
    ``None`` when the folder has no log (or matplotlib is missing). Deterministic bytes (no timestamp in the PNG
    metadata), so a rebuilt release is byte-identical and re-publishing it makes no commit."""
    log = read_training_log(folder)
    if not log:
        return None
    try:
        import matplotlib
    except ImportError:  # an optional dependency (the `benchmarks` extra): the card then has no plot
        warnings.warn("matplotlib is not installed: the release has no training-curve plot", stacklevel=2)
        return None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in log if "loss" in r]
    losses = [r["loss"] for r in log if "loss" in r]
    # validation curves only where there are at least two checks to draw a line through
    val_keys = [f"validation/{m}" for m in family.metrics if sum(f"validation/{m}" in r for r in log) >= 2]
    fig, axes = plt.subplots(1, 2 if val_keys else 1, figsize=(10 if val_keys else 5, 3.6), squeeze=False)
    ax = axes[0][0]
    ax.plot(steps, losses, lw=1.2)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("training loss")
    ax.set_title(f"{family.name}: training loss")
    ax.grid(alpha=0.3)
    if val_keys:
        ax = axes[0][1]
        for key in val_keys:
            points = [(r["step"], r[key]) for r in log if key in r]
            name = key.split("/", 1)[1]
            label = f"{name} (lower is better)" if name in family.lower_is_better else name
            ax.plot(*zip(*points), marker="o", ms=3, label=label)
        ax.set_xlabel("optimiser step")
        ax.set_title("validation split")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out_path = Path(out_path)
    fig.savefig(out_path, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return out_path


def load_benchmark(family: CardFamily, results_dir: Path | None = None) -> dict | None:
    if family.benchmark is None:
        return None
    return _read_json(Path(results_dir or BENCHMARK_RESULTS_DIR) / f"{family.benchmark}.json")
