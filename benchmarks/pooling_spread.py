"""Do the text models' candidate embeddings carry content after the main job's training? One pooling against another.

A model whose pooled embeddings carry no content scores every candidate of a session alike, or ranks every
session's candidates by the same one-dimensional key. Two figures show it, on a fixed set of sessions and
candidates:

- ``score_std``: the std over the candidates of a session's cosine to them, averaged over sessions (all alike: 0);
- ``effective_dimensions``: how many directions the candidate embeddings vary along
  (:func:`session_transformers.metrics.effective_dimensions`; 1 when they lie on a line).

Each model is trained as the main job trains it (``trainers/quickstart.py``: the recipe's ``QuickstartJob`` flags,
through ``pretrain.main`` and ``finetune.main``), once with each pooling:

- **CERES** (``sentence_pooling`` mean, the default, against first, the ``[SEARCH]`` / ``[ATTRTYPE]`` marker's
  output): pretraining then product-search fine-tuning; measured on the test split against its fixed pool (the
  paper's: purchases plus the search engine's first 10 results), after pretraining (the retrieval head's
  projections start as the identity, so that is the pretrained encoder's own similarity) and after fine-tuning,
  with the fine-tuned model's MAP@32 / Recall@64 beside the popularity and BM25 rankings of the same pool;
- **UBM** (``interaction_pooling`` mean, what the recipe now uses for an encoder trained from scratch, against
  cls, the paper's ``[CLS]`` output): the two pretraining stages; measured on 100 synthetic sessions (the
  store's sessions 3800-3899) against the catalogue's first 1,000 products (``encode_sessions`` /
  ``encode_items``: the next-item head's candidates), untrained, after stage 1 and after stage 2;
- **Product BYOL** (its TextCNN's max pooling over time, the paper's; nothing to compare against but the untrained
  encoder): the main job's pretraining; the catalogue's first 100 titles against all its 4,000 titles.

Usage::

    python -m benchmarks.pooling_spread [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch

import session_transformers  # noqa: F401
from session_transformers.metrics import effective_dimensions
from session_transformers.recipes import RECIPES

from ._common import write_result

ROOT = Path(__file__).resolve().parents[1]


def _reset() -> None:
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


def _pretrain(argv: list[str]) -> None:
    from trainers import pretrain

    pretrain.main(argv)
    _reset()


def _with_config(flags, item: str) -> list[str]:
    """A stage's flags with one more ``--config`` entry (right after ``--config``: the entries run to the end)."""
    flags = list(flags)
    if "--config" not in flags:
        return [*flags, "--config", item]
    at = flags.index("--config") + 1
    return [*flags[:at], item, *flags[at:]]


def spread(sessions: np.ndarray | torch.Tensor, candidates: np.ndarray | torch.Tensor) -> dict[str, float]:
    s = torch.nn.functional.normalize(torch.as_tensor(np.asarray(sessions)).float(), dim=-1)
    c = torch.nn.functional.normalize(torch.as_tensor(np.asarray(candidates)).float(), dim=-1)
    scores = s @ c.T
    return {
        "cosine_mean": round(float(scores.mean()), 4),
        "score_std": round(float(scores.std(1).mean()), 4),
        "effective_dimensions": round(effective_dimensions(c), 2),
        "dimensions": int(c.shape[1]),
    }


@torch.no_grad()
def _ceres_pool(model, data) -> dict[str, float]:
    task = RECIPES["ceres"].finetune["product_search"]
    model.eval()
    rows = [data.test_dataset[i] for i in range(len(data.test_dataset))]
    batch = data.collate_fn(rows)
    labels = batch.pop("labels")
    out = model(**batch)
    found = task.summarize(task.per_example(out.logits, labels))
    return {
        **spread(out.session_embeddings, out.candidate_embeddings),
        "MAP@32": round(found["MAP@32"], 2),
        "Recall@64": round(found["Recall@64"], 2),
    }


def ceres(pooling: str, work: Path) -> dict:
    from trainers import finetune

    from session_transformers.auto import AutoModelForSessionRetrieval

    job = RECIPES["ceres"].quickstart
    out = work / f"ceres-{pooling}"
    stage = _with_config(job.pretrain_stages[0], f"sentence_pooling={pooling}")
    _pretrain(["--model", "ceres", *stage, "--output-dir", str(out / "pretrain")])
    ft_argv = ["--model", "ceres", "--task", job.finetune_task, *job.finetune_args]
    ft_argv += ["--init-from", str(out / "pretrain"), "--use-cpu", "--save-steps", "1000000"]
    finetune.main([*ft_argv, "--output-dir", str(out / "finetune")])
    _reset()
    args, _ = finetune.parse_args([*ft_argv, "--output-dir", str(out / "finetune")])
    data = RECIPES["ceres"].finetune[job.finetune_task].prepare(args)
    baselines = RECIPES["ceres"].finetune[job.finetune_task].baseline(data)
    return {
        "pretrained": _ceres_pool(AutoModelForSessionRetrieval.from_pretrained(out / "pretrain"), data),
        "fine-tuned": _ceres_pool(AutoModelForSessionRetrieval.from_pretrained(out / "finetune"), data),
        "baselines (same pool)": {
            name: {m: round(baselines[name][m], 2) for m in ("MAP@32", "Recall@64")}
            for name in ("popularity", "BM25")
        },
        "test sessions / pool": f"{len(data.test_dataset)} / {len(data.collate_fn.pools['test'])}",
    }


def ubm(pooling: str, work: Path) -> dict:
    from transformers import AutoModel, AutoProcessor

    from session_transformers.data.synthetic import SyntheticStore, SyntheticStoreConfig

    job = RECIPES["ubm"].quickstart
    previous = None
    for number, flags in enumerate(job.pretrain_stages, 1):
        flags = [f for f in flags if not f.startswith("interaction_pooling=")]
        if number == 1:
            flags = _with_config(flags, f"interaction_pooling={pooling}")
        init = ["--init-from", str(previous)] if previous else []
        stage_dir = work / f"ubm-{pooling}" / f"stage{number}"
        _pretrain(["--model", "ubm", "--stage", str(number), *init, *flags, "--output-dir", str(stage_dir)])
        previous = stage_dir
    store = SyntheticStore(SyntheticStoreConfig(seed=42, num_sessions=3900))
    sessions = list(store.iter_sessions(3800, 3900))
    items = [rec["item_id"] for rec in store.catalogue[:1000]]
    out = {}
    for name in ("untrained", "stage1", "stage2"):
        path = work / f"ubm-{pooling}" / ("stage1" if name == "untrained" else name)
        model, processor = AutoModel.from_pretrained(path), AutoProcessor.from_pretrained(path)
        if name == "untrained":
            torch.manual_seed(0)
            model = type(model)(model.config)
        out[name] = spread(
            model.encode_sessions(sessions, processor, store.catalogue),
            model.encode_items(items, processor, store.catalogue),
        )
    return out


def product_byol(work: Path) -> dict:
    from transformers import AutoModel, AutoProcessor

    from session_transformers.data.synthetic import SyntheticStore, SyntheticStoreConfig

    job = RECIPES["product_byol"].quickstart
    out = work / "product_byol"
    _pretrain(["--model", "product_byol", *job.pretrain_stages[0], "--output-dir", str(out)])
    titles = [rec["title"] for rec in SyntheticStore(SyntheticStoreConfig(seed=42)).catalogue]
    model, processor = AutoModel.from_pretrained(out), AutoProcessor.from_pretrained(out)
    torch.manual_seed(0)
    untrained = type(model)(model.config)
    found = {}
    for name, encoder in (("untrained", untrained), ("pretrained", model)):
        embeddings = encoder.encode_titles(titles, processor)
        found[name] = spread(embeddings[:100], embeddings)
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work-dir", type=Path, default=ROOT / "runs" / "pooling_spread")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--models", nargs="+", default=["ceres", "ubm", "product_byol"])
    p.add_argument(
        "--results-dir", default=None, help="where the result file goes (default benchmarks/results)"
    )
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    started = time.perf_counter()
    figures: dict = {}
    if "ceres" in a.models:
        figures["CERES product search"] = {
            f"sentence_pooling={p}": ceres(p, a.work_dir) for p in ("mean", "first")
        }
    if "ubm" in a.models:
        figures["UBM sessions vs products"] = {
            f"interaction_pooling={p}": ubm(p, a.work_dir) for p in ("mean", "cls")
        }
    if "product_byol" in a.models:
        figures["Product BYOL titles vs titles"] = {"max pooling (the paper's)": product_byol(a.work_dir)}
    figures["seconds"] = round(time.perf_counter() - started)
    data = (
        "the synthetic store (seed 42) as the main job uses it: each model trained with its recipe's quickstart "
        "flags (trainers/quickstart.py), one run per pooling"
    )
    path = write_result("pooling_spread", figures, data, results_dir=a.results_dir)
    print(json.dumps(figures, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
