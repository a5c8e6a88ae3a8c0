"""TAGNN++ against its authors' released code, on the same data with the same settings: test HR@20 / MRR@20 after
epochs 1, 2 and 3.

The authors' code (``The-Learning-Machines/SBR`` on GitHub: ``model.py``, ``proc_utils.py``, ``agc.py``) is given
as a checkout (``--authors-code DIR``); it is copied into a git-ignored work folder and patched for a CPU there
(``.to('cuda')`` dropped, ``collections.abc.Iterable``); nothing of it is ever committed. A small driver of ours
imports its model and its ``train_test`` loop and feeds it our data instead of its pickles.

Data: Diginetica (SR-GNN protocol) reduced to its 3,000 most frequent training items
(:func:`~session_transformers.data.loaders.load_next_item_splits` with ``top_items=3000``): every prefix of every
training session (225,557 samples, no validation split on either side), and the 17,221 ``test.tsv`` cases left
after the reduction, items numbered 1..3,000 in both. Both sides use the code's settings: Adam 1e-3, L2 1e-5,
batch 50, hidden 100, 2 heads, random batches reshuffled each epoch, and its learning-rate schedule. The code
calls ``StepLR(step_size=3, gamma=0.1).step()`` *before* each epoch, so its third epoch already runs at 1e-4; ours
gets the same (``--lr-decay-epochs 2``). Ours is trained by ``trainers/pretrain.py`` one epoch per call (``--resume``
continues it exactly from the checkpoint at the previous epoch's end) and each call scores the test split once
with the last weights; the authors' loop scores it after every epoch. Neither side selects anything.

    python -m benchmarks.tagnn_pp_peer --authors-code PATH/TO/SBR --seeds 0 1 --epochs 3
    python -m benchmarks.tagnn_pp_peer --authors-code PATH/TO/SBR --sides ours --variant no-dropout \\
        --config hidden_dropout_prob=0 attention_probs_dropout_prob=0 --epochs 1     # one difference at a time

A variant is our model with ``--config`` overrides; the result file names the variant whose overrides amount to
today's ``TagnnPPConfig`` defaults (``default_variant``: the peer table's row) and ``paper`` (the paper's
architecture, :data:`~session_transformers.models.tagnn_pp.PAPER_ARCHITECTURE`); the others form the ablation
table. Variants run before the defaults moved to the code's architecture have the paper's overrides written out
in their ``variant.json``. Every run keeps its results per epoch in ``--work-dir`` (default
``devdata/tagnn_pp_peer``); a finished epoch is never rerun, an unfinished run of ours resumes from its last
epoch. Runs use ``--threads`` torch threads each (1 by default, so that two runs can share a 2-core machine);
their wall-clock times are bookkeeping, not speed figures.

``--check-forward`` (with ``--authors-code``) loads the authors' model's initial weights into ours and compares the
two on inputs where the code's graph nodes are the session's positions and nothing is padded (distinct items in
increasing order, one length per batch): the scores at init, the losses of a few Adam steps and the scores after
them, for ``gnn_style="code"`` and ``"paper"``. It writes ``forward_check.json`` in the work folder and the result
file's ``forward_check``. ``--item-order authors`` indexes our items as the exported data numbers them for the
code instead of sorting the IDs (only ``transformer_over="nodes"`` sees it; name the variant).

``--group-by-length true`` trains ours on length-grouped batches (the order the full-Diginetica benchmark uses
for speed) instead of the code's random ones, to measure what the order does to accuracy; ``--mixed-precision
bf16`` ours under bf16 autocast. Both are variants of their own (give them a name); the peer table's row is the
fp32, random-batch variant with today's defaults. The work folder is git-ignored: ``--rehydrate
benchmarks/results/tagnn_pp_peer.json`` first recreates in it every run the committed result file records, so
that a new variant's result file keeps them::

    python -m benchmarks.tagnn_pp_peer --rehydrate benchmarks/results/tagnn_pp_peer.json --sides ours \
        --seeds 0 1 --variant code-all-grouped --group-by-length true --config <the default's switches>
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from ._common import SECONDS_NOTE, atomic_write, write_result

ROOT = Path(__file__).resolve().parents[1]

AUTHORS_FILES = ("model.py", "proc_utils.py", "agc.py")
SETTINGS = {"batch_size": 50, "learning_rate": 1e-3, "weight_decay": 1e-5, "hidden_size": 100, "heads": 2}
PUBLISHED = "The-Learning-Machines/SBR (TAGNN++ authors' code), files model.py, proc_utils.py, agc.py"

AUTHORS_PRELUDE = r"""
import json, sys, time
from pathlib import Path
import numpy as np
import torch

here = Path(__file__).resolve().parent
sys.path.insert(0, str(here / "code"))  # the patched copy of the authors' code
cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg["threads"])


class Opt:  # the code's Diginetica_arg, with our settings
    hiddenSize = cfg["hidden_size"]
    batchSize = cfg["batch_size"]
    lr = cfg["learning_rate"]
    l2 = cfg["weight_decay"]
    lr_dc = 0.1
    lr_dc_step = 3
    step = 1
    nonhybrid = True
"""
"""What both scripts that run the authors' code start with: its path, the JSON settings in ``argv[1]`` and its
``Opt`` (after the script's docstring)."""

DRIVER = (
    '"""Runs the authors\' TAGNN++ code (patched copy beside this file) on data exported by tagnn_pp_peer.py."""\n'
    + AUTHORS_PRELUDE
    + r"""
from safetensors.torch import load_file, save_file
from model import Attention_SessionGraph, train_test  # noqa: E402  (the authors' code)
from proc_utils import Dataset  # noqa: E402

np.random.seed(cfg["seed"])  # the code shuffles with numpy's global generator
torch.manual_seed(cfg["seed"])


def read(path):
    data = json.loads(Path(path).read_text())
    return data["prefixes"], data["targets"]


train = Dataset(read(cfg["train"]), shuffle=True)
test = Dataset(read(cfg["test"]), shuffle=False)
model = Attention_SessionGraph(Opt, cfg["num_items"] + 1)
out, state = Path(cfg["out"]), Path(cfg["state"])
done = json.loads(out.read_text()) if out.exists() else []
if done:  # resume after the last finished epoch: weights, Adam, schedule, shuffle order and RNGs as they were
    tensors = load_file(str(state / "state.safetensors"))
    extra = json.loads((state / "state.json").read_text())
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    optim = extra["optimizer"]
    for i, group in enumerate(optim["state"]):
        optim["state"][group]["exp_avg"] = tensors[f"adam.{i}.exp_avg"]
        optim["state"][group]["exp_avg_sq"] = tensors[f"adam.{i}.exp_avg_sq"]
        optim["state"][group]["step"] = tensors[f"adam.{i}.step"]
    optim["state"] = {int(k): v for k, v in optim["state"].items()}
    model.optimizer.load_state_dict(optim)
    model.scheduler.load_state_dict(extra["scheduler"])
    # the code shuffles its arrays in place, epoch after epoch: continue from the order they were left in
    train.inputs, train.mask, train.targets = (
        tensors[f"train_{name}"].numpy().astype(getattr(train, name).dtype) for name in ("inputs", "mask", "targets")
    )
    np_state = extra["numpy_rng"]
    np.random.set_state((np_state[0], np.array(np_state[1], dtype=np.uint32), *np_state[2:]))
    torch.set_rng_state(tensors["torch_rng"])
for epoch in range(len(done) + 1, cfg["epochs"] + 1):
    start = time.perf_counter()
    hit, mrr = train_test(model, train, test)
    done.append({"epoch": epoch, "HR@20": float(hit), "MRR@20": float(mrr),
                 "lr_in_epoch": model.optimizer.param_groups[0]["lr"],
                 "wall_seconds": round(time.perf_counter() - start, 1)})
    optim = model.optimizer.state_dict()
    tensors = {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
    for i, (key, st) in enumerate(optim["state"].items()):
        for name in ("exp_avg", "exp_avg_sq", "step"):
            tensors[f"adam.{i}.{name}"] = st[name].contiguous()
        optim["state"][key] = {}
    tensors["torch_rng"] = torch.get_rng_state()
    for name in ("inputs", "mask", "targets"):
        tensors[f"train_{name}"] = torch.from_numpy(getattr(train, name).astype(np.int32))
    np_state = np.random.get_state()
    extra = {"optimizer": optim, "scheduler": model.scheduler.state_dict(),
             "numpy_rng": [np_state[0], np_state[1].tolist(), *np_state[2:]]}
    state.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(state / "state.safetensors"))
    (state / "state.json").write_text(json.dumps(extra))
    out.write_text(json.dumps(done, indent=1) + "\n")  # last: marks the epoch done
    print(f"epoch {epoch}: HR@20 {hit:.2f} MRR@20 {mrr:.2f}", flush=True)
"""
)


FORWARD_CHECK = (
    '"""Our TAGNN++ against the authors\' code with the same weights (patched copy in ./code)."""\n'
    + AUTHORS_PRELUDE
    + r'''
import model as authors  # noqa: E402  (the authors' code)
from proc_utils import Dataset  # noqa: E402
from session_transformers.models.tagnn_pp import TagnnPPConfig, TagnnPPForNextItemPrediction, build_graph_batch

H, N, B = cfg["hidden_size"], cfg["num_items"] + 1, cfg["batch_size"]


def pair(gnn_style):
    """The authors' model at its own init, and ours (the default config but ``gnn_style``) with its weights."""
    torch.manual_seed(cfg["seed"])
    theirs = authors.Attention_SessionGraph(Opt, N)
    ours = TagnnPPForNextItemPrediction(
        TagnnPPConfig(num_items=N, hidden_size=H, num_attention_heads=cfg["heads"], gnn_style=gnn_style,
                      attention_probs_dropout_prob=0.0)
    )
    t = {k: v.detach().clone() for k, v in theirs.named_parameters()}
    gnn, layer = "tagnn_pp.gnn.cell.", "tagnn_pp.transformer.layers.0."
    state = {
        "tagnn_pp.item_embeddings.weight": t["embedding.weight"],
        gnn + "linear_edge_in.weight": t["tagnn.linear_edge_in.weight"],
        gnn + "linear_edge_in.bias": t["tagnn.linear_edge_in.bias"],
        gnn + "linear_edge_out.weight": t["tagnn.linear_edge_out.weight"],
        gnn + "linear_edge_out.bias": t["tagnn.linear_edge_out.bias"],
        gnn + "gru.weight_ih": t["tagnn.w_ih"], gnn + "gru.weight_hh": t["tagnn.w_hh"],
        gnn + "gru.bias_ih": t["tagnn.b_ih"], gnn + "gru.bias_hh": t["tagnn.b_hh"],
        layer + "layer_norm.weight": t["layer_norm1.weight"], layer + "layer_norm.bias": t["layer_norm1.bias"],
        layer + "attention.output.weight": t["attn.out_proj.weight"],
        layer + "attention.output.bias": t["attn.out_proj.bias"],
        "tagnn_pp.global_attention.linear_one.weight": t["linear_one.weight"],
        # the code's two biases inside one sigmoid are one bias
        "tagnn_pp.global_attention.linear_one.bias": t["linear_one.bias"] + t["linear_two.bias"],
        "tagnn_pp.global_attention.linear_two.weight": t["linear_two.weight"],
        "tagnn_pp.global_attention.linear_three.weight": t["linear_three.weight"],
        "readout.linear_t.weight": t["linear_t.weight"],
    }
    qkv = zip(("query", "key", "value"), t["attn.in_proj_weight"].chunk(3), t["attn.in_proj_bias"].chunk(3))
    for name, w, b in qkv:
        state[layer + f"attention.{name}.weight"], state[layer + f"attention.{name}.bias"] = w, b
    if gnn_style == "code":
        state[gnn + "bias_in"], state[gnn + "bias_out"] = t["tagnn.b_iah"], t["tagnn.b_oah"]
    else:  # one bias per direction: the code's two add up for every node with an edge that way
        state[gnn + "linear_edge_in.bias"] = t["tagnn.linear_edge_in.bias"] + t["tagnn.b_iah"]
        state[gnn + "linear_edge_out.bias"] = t["tagnn.linear_edge_out.bias"] + t["tagnn.b_oah"]
    ours.load_state_dict(state, strict=True)
    theirs.attn.dropout = 0.0  # dropout masks cannot be shared; both sides run without
    return theirs, ours


# Inputs where the code's graph nodes (np.unique of the session) are its positions in order and no session is
# padded: one batch per length, distinct items in increasing order.
rng = np.random.default_rng(cfg["seed"])
batches = []
for length in range(1, cfg["max_length"] + 1):
    sessions = [sorted(rng.choice(np.arange(1, N), size=length, replace=False).tolist()) for _ in range(B)]
    targets = rng.integers(1, N, size=B).tolist()
    batches.append((Dataset((sessions, targets), shuffle=False), build_graph_batch(sessions), targets))


def scores(theirs, ours, batch, train=False):
    data, graph, _ = batch
    theirs.train(train), ours.train(train)
    theirs_scores = authors.forward(theirs, np.arange(B), data)[1]
    return theirs_scores, ours(**{k: torch.from_numpy(v) for k, v in graph.items()}).logits[:, 1:]


def max_diff(theirs, ours):
    with torch.no_grad():
        return max((a - b).abs().max().item() for a, b in (scores(theirs, ours, batch) for batch in batches))


out = {}
for gnn_style in ("code", "paper"):
    theirs, ours = pair(gnn_style)
    with torch.no_grad():
        scale = max(scores(theirs, ours, batch)[0].abs().max().item() for batch in batches)
    row = {"max_abs_score": scale, "max_abs_score_diff_at_init": max_diff(theirs, ours)}
    optimizer = torch.optim.Adam(ours.parameters(), lr=Opt.lr, weight_decay=Opt.l2)  # the code's optimiser
    losses = []
    for step in range(cfg["steps"]):
        batch = batches[step % len(batches)]
        theirs_scores, ours_scores = scores(theirs, ours, batch, train=True)
        target = torch.tensor(batch[2]) - 1
        loss_theirs = theirs.loss_function(theirs_scores, target)
        loss_ours = torch.nn.functional.cross_entropy(ours_scores, target)
        losses.append(abs(loss_theirs.item() - loss_ours.item()))
        theirs.optimizer.zero_grad(), optimizer.zero_grad()
        loss_theirs.backward(), loss_ours.backward()
        theirs.optimizer.step(), optimizer.step()
    row.update(max_abs_loss_diff_in_training=max(losses), max_abs_score_diff_after_training=max_diff(theirs, ours))
    out[gnn_style] = row
print(json.dumps(out))
'''
)


def patch_authors_code(source: Path, dest: Path) -> None:
    """Copy the three files of the authors' code into ``dest`` and patch them to run on a CPU."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in AUTHORS_FILES:
        if not (source / name).exists():
            raise FileNotFoundError(f"{source / name}: --authors-code must be a checkout of {PUBLISHED}")
        text = (source / name).read_text()
        if name == "model.py":
            text = text.replace(".astype('bool')).to('cuda')", ".astype('bool'))")
            if ".to('cuda')" in text:
                raise ValueError(
                    "model.py: an unexpected .to('cuda') remains; is this the published version?"
                )
        if name == "agc.py":
            text = text.replace("from collections import Iterable", "from collections.abc import Iterable")
        (dest / name).write_text(text)


def check_forward(args: argparse.Namespace, stats: dict) -> dict:
    """Ours against the authors' code with the same weights: the largest score and loss differences on inputs
    where the code's graph nodes are the positions and nothing is padded, at init and after Adam steps, for
    ``gnn_style="code"`` and ``"paper"``. Written to ``<work dir>/forward_check.json`` and the result file."""
    folder = args.work_dir / "authors"
    patch_authors_code(args.authors_code, folder / "code")
    (folder / "forward_check.py").write_text(FORWARD_CHECK)
    cfg = {
        **SETTINGS,
        "num_items": stats["items"],
        "threads": args.threads,
        "seed": 0,
        "max_length": 12,
        "steps": 24,
    }
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    done = subprocess.run(
        [sys.executable, str(folder / "forward_check.py"), json.dumps(cfg)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"the forward check failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    result = {
        "inputs": f"{cfg['max_length']} batches of {cfg['batch_size']} sessions, one per length 1-{cfg['max_length']}, "
        f"distinct items in increasing order from 1..{stats['items']} (the code's nodes are then the positions, "
        "and nothing is padded); our default config but gnn_style, attention dropout 0 on both sides",
        "training": f"{cfg['steps']} Adam steps each (lr {SETTINGS['learning_rate']:g}, L2 {SETTINGS['weight_decay']:g}) "
        "over those batches, the code's own Adam and loss against torch.optim.Adam and cross-entropy on ours",
        "by_gnn_style": json.loads(done.stdout.strip().splitlines()[-1]),
    }
    (args.work_dir / "forward_check.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def authors_order_processor(args: argparse.Namespace, folder: Path) -> Path:
    """Our processor with the items indexed as the exported data numbers them for the authors' code (the
    catalogue's order) instead of sorted as strings; saved once in ``folder``. Only the node order of
    ``transformer_over="nodes"`` (the code's ``np.unique``) sees the difference."""
    from session_transformers.data.loaders import load_next_item_splits
    from session_transformers.models.tagnn_pp import TagnnPPProcessor

    path = folder / "processor_authors_order"
    if not (path / "processor_config.json").exists():
        splits = load_next_item_splits(args.data_path, validation_fraction=0.0, top_items=args.top_items)
        TagnnPPProcessor(item_vocab=list(splits.catalogue_ids)).save_pretrained(str(path))
    return path


def export_data(args: argparse.Namespace, folder: Path) -> dict:
    """The same samples for both sides, as JSON (never a pickle): prefixes and targets as item numbers 1..K."""
    from session_transformers.data.loaders import load_next_item_splits

    stats_file = folder / "stats.json"
    if stats_file.exists():
        return json.loads(stats_file.read_text())
    splits = load_next_item_splits(args.data_path, validation_fraction=0.0, top_items=args.top_items)
    if args.max_samples:  # a dry run on a slice
        splits.train = splits.train.select(range(min(args.max_samples, len(splits.train))))
        splits.test = splits.test.select(range(min(args.max_samples, len(splits.test))))
        splits.statistics.update(train_samples=len(splits.train), test_samples=len(splits.test))
    number = {item: n for n, item in enumerate(splits.catalogue_ids, start=1)}
    folder.mkdir(parents=True, exist_ok=True)
    for name, ds in (("train", splits.train), ("test", splits.test)):
        rows = {
            "prefixes": [[number[i] for i in p] for p in ds["item_ids"]],
            "targets": [number[t] for t in ds["target"]],
        }
        (folder / f"{name}.json").write_text(json.dumps(rows))
    stats = {**splits.statistics, "items": len(splits.catalogue_ids)}
    stats_file.write_text(json.dumps(stats, indent=1) + "\n")
    return stats


def run_authors(args: argparse.Namespace, seed: int, stats: dict) -> list[dict]:
    folder = args.work_dir / "authors"
    out = folder / f"seed{seed}.json"
    done = json.loads(out.read_text()) if out.exists() else []
    if len(done) >= args.epochs:
        return done[: args.epochs]
    patch_authors_code(args.authors_code, folder / "code")
    (folder / "driver.py").write_text(DRIVER)
    cfg = {
        **SETTINGS,
        "seed": seed,
        "threads": args.threads,
        "epochs": args.epochs,
        "num_items": stats["items"],
        "train": str(args.work_dir / "data" / "train.json"),
        "test": str(args.work_dir / "data" / "test.json"),
        "out": str(out),
        "state": str(folder / f"seed{seed}_state"),
    }
    print(f"== authors' code, seed {seed}, epochs {len(done) + 1} to {args.epochs}", flush=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1", "OMP_NUM_THREADS": str(args.threads)}
    with open(folder / f"seed{seed}.log", "a") as log:
        subprocess.run(
            [sys.executable, str(folder / "driver.py"), json.dumps(cfg)],
            check=True,
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return json.loads(out.read_text())


def ours_command(args: argparse.Namespace, seed: int, epochs: int, run_dir: Path, steps_per_epoch: int):
    return [
        os.path.relpath(sys.executable, ROOT),
        "trainers/pretrain.py",
        "--model",
        "tagnn_pp",
        "--dataset",
        "diginetica",
        "--data-path",
        os.path.relpath(args.data_path, ROOT),
        "--top-items",
        str(args.top_items),
        "--validation-fraction",
        "0",
        "--batch-size",
        str(SETTINGS["batch_size"]),
        "--learning-rate",
        str(SETTINGS["learning_rate"]),
        "--weight-decay",
        str(SETTINGS["weight_decay"]),
        "--lr-scheduler-type",
        "step",
        "--lr-decay-epochs",
        "2",  # the code's StepLR(3) stepped before each epoch: epochs 1-2 at 1e-3, epoch 3 at 1e-4
        "--lr-decay-rate",
        "0.1",
        "--group-by-length",
        args.group_by_length,  # random batches by default: the code's order
        "--select-best",
        "none",
        "--num-epochs",
        str(epochs),
        "--seed",
        str(seed),
        "--checkpointing-steps",
        str(steps_per_epoch),  # a checkpoint at every epoch's end: the next call resumes from it
        "--checkpoints-total-limit",
        "2",
        "--resume",
        "--output-dir",
        os.path.relpath(run_dir, ROOT),
        "--config",
        f"hidden_size={SETTINGS['hidden_size']}",
        f"num_attention_heads={SETTINGS['heads']}",
        *args.config,
        *(["--mixed-precision", args.mixed_precision] if args.mixed_precision else []),
        *(
            ["--processor-path", os.path.relpath(authors_order_processor(args, args.work_dir / "data"), ROOT)]
            if args.item_order == "authors"
            else []
        ),
        *(
            ["--max-train-samples", str(args.max_samples), "--max-eval-samples", str(args.max_samples)]
            if args.max_samples
            else []
        ),
    ]


def run_ours(args: argparse.Namespace, seed: int, stats: dict) -> list[dict]:
    folder = args.work_dir / "ours" / args.variant / f"seed{seed}"
    steps_per_epoch = math.ceil(stats["train_samples"] / SETTINGS["batch_size"])
    results = []
    for epoch in range(1, args.epochs + 1):
        done = folder / f"epoch_{epoch}.json"
        if not done.exists():
            cmd = ours_command(args, seed, epoch, folder / "run", steps_per_epoch)
            print(f"== ours ({args.variant}), seed {seed}, epoch {epoch}: {' '.join(cmd)}", flush=True)
            env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(args.threads)}
            start = time.perf_counter()
            with open(folder.parent / f"seed{seed}.log", "a") as log:
                subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            res = json.loads((folder / "run" / "eval_results.json").read_text())
            record = {
                "epoch": epoch,
                "HR@20": res["test"]["HR@20"],
                "MRR@20": res["test"]["MRR@20"],
                "HR@10": res["test"]["HR@10"],
                "MRR@10": res["test"]["MRR@10"],
                "optimizer_steps": res["optimizer_steps"],
                "wall_seconds": round(time.perf_counter() - start, 1),
                "baselines": {
                    name: {k: v[k] for k in ("HR@20", "MRR@20")}
                    for name, v in res.get("baseline", {}).items()
                },
                "command": " ".join(cmd),
            }
            done.write_text(json.dumps(record, indent=1) + "\n")
        results.append(json.loads(done.read_text()))
    return results


def _mean(runs: list[list[dict]], epoch: int, key: str) -> float | None:
    values = [r[epoch - 1][key] for r in runs if len(r) >= epoch]
    return round(sum(values) / len(values), 2) if values else None


def summary(runs: dict[int, list[dict]], epochs: int) -> dict:
    per_epoch = {}
    for e in range(1, epochs + 1):
        per_epoch[f"epoch {e}"] = {
            "HR@20": _mean(list(runs.values()), e, "HR@20"),
            "MRR@20": _mean(list(runs.values()), e, "MRR@20"),
            "seeds": [s for s, r in runs.items() if len(r) >= e],
        }
    return per_epoch


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--authors-code", type=Path, default=None, help="a checkout of the authors' repository")
    p.add_argument("--data-path", type=Path, default=ROOT.parent / "shared" / "data" / "diginetica")
    p.add_argument("--top-items", type=int, default=3000)
    p.add_argument("--work-dir", type=Path, default=ROOT / "devdata" / "tagnn_pp_peer")
    p.add_argument("--sides", nargs="+", choices=("authors", "ours"), default=["authors", "ours"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--variant", default="default", help="name of our model's variant (its --config overrides)"
    )
    p.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE", help="TagnnPPConfig overrides")
    p.add_argument(
        "--group-by-length",
        choices=("true", "false"),
        default="false",
        help="ours on length-grouped batches (the trainers' default) instead of the code's random ones (name the "
        "variant)",
    )
    p.add_argument(
        "--mixed-precision",
        choices=("bf16",),
        default=None,
        help="ours under bf16 autocast (name the variant)",
    )
    p.add_argument(
        "--item-order",
        choices=("sorted", "authors"),
        default="sorted",
        help="our item indices: sorted IDs (our processor's default) or the authors' numbering of the exported "
        "data; only transformer_over=nodes sees it (name the variant)",
    )
    p.add_argument(
        "--check-forward",
        action="store_true",
        help="also compare our forward pass and Adam steps with the authors' code's on the same weights "
        "(needs --authors-code)",
    )
    p.add_argument("--no-write", action="store_true", help="run, but do not rewrite the result file")
    p.add_argument(
        "--rehydrate",
        type=Path,
        default=None,
        metavar="RESULT_FILE",
        help="first recreate in --work-dir the runs a result file records (e.g. benchmarks/results/"
        "tagnn_pp_peer.json after the work folder was lost), so that the rewritten file keeps them",
    )
    p.add_argument(
        "--result-name",
        default="tagnn_pp_peer",
        help="benchmarks/results/<name>.json, written from everything in --work-dir",
    )
    p.add_argument(
        "--max-samples",
        type=int,
        default=None,
        help="a dry run: the first N training and test samples (give it its own --work-dir; implies --no-write)",
    )
    args = p.parse_args(argv)
    args.work_dir = args.work_dir.resolve()
    args.data_path = args.data_path.resolve()
    if ("authors" in args.sides or args.check_forward) and args.authors_code is None:
        p.error(
            "--sides authors and --check-forward need --authors-code (a checkout of the authors' repository)"
        )
    if args.rehydrate:
        for made in rehydrate(args.work_dir, args.rehydrate):
            print(f"recreated from {args.rehydrate}: {made}")
    stats = export_data(args, args.work_dir / "data")
    if args.check_forward:
        print(json.dumps(check_forward(args, stats)["by_gnn_style"], indent=1))
    (args.work_dir / "ours" / args.variant).mkdir(parents=True, exist_ok=True)
    variant_file = args.work_dir / "ours" / args.variant / "variant.json"
    settings = {
        "config": args.config,
        "mixed_precision": args.mixed_precision,
        "group_by_length": args.group_by_length,
        "item_order": args.item_order,
    }
    if variant_file.exists() and _variant_settings(variant_file) != settings:
        p.error(f"variant {args.variant!r} was run with {variant_file.read_text()}: give it another name")
    # two seeds of one variant are often started side by side, and one reads what the other writes
    atomic_write(variant_file, json.dumps(settings) + "\n")
    for seed in args.seeds:
        if "authors" in args.sides:
            run_authors(args, seed, stats)
        if "ours" in args.sides:
            run_ours(args, seed, stats)
    if not args.no_write and not args.max_samples:
        write(args, stats)


def rehydrate(work_dir: Path, result_file: Path) -> list[str]:
    """Recreate the finished runs recorded in a result file in ``work_dir`` (a work folder is git-ignored and
    lost with its checkout; the result file is committed): each authors' seed and each variant of ours, epoch by
    epoch, and the forward check, so that new runs are written into the result file beside them. Runs already in
    ``work_dir`` are left as they are. Returns what was recreated."""
    figures = json.loads(result_file.read_text())["figures"]
    made = []
    (work_dir / "authors").mkdir(parents=True, exist_ok=True)
    for seed, runs in figures["authors_code"]["runs"].items():
        out = work_dir / "authors" / f"seed{seed}.json"
        if not out.exists():
            out.write_text(json.dumps(runs))
            made.append(f"authors' code, seed {seed}")
    for name, variant in figures["ours"].items():
        folder = work_dir / "ours" / name
        if folder.exists():
            continue
        folder.mkdir(parents=True)
        (folder / "variant.json").write_text(json.dumps(_settings_of(variant)) + "\n")
        for seed, runs in variant.get("runs", {}).items():
            (folder / f"seed{seed}").mkdir()
            for r in runs:
                (folder / f"seed{seed}" / f"epoch_{r['epoch']}.json").write_text(
                    json.dumps(r, indent=1) + "\n"
                )
        made.append(f"ours, {name}")
    check = work_dir / "forward_check.json"
    if figures.get("forward_check") and not check.exists():  # kept in the rewritten file without rerunning it
        check.write_text(json.dumps(figures["forward_check"], indent=1) + "\n")
        made.append("the forward check")
    return made


def _variant_settings(variant_file: Path) -> dict:
    """A variant's settings, from its ``variant.json``."""
    return _settings_of(json.loads(variant_file.read_text()))


def _settings_of(recorded: dict) -> dict:
    """A variant's settings from what records it (its ``variant.json`` or its entry in a result file); variants
    recorded before ``--group-by-length`` existed ran on random batches."""
    return {
        "config": recorded["config"],
        "mixed_precision": recorded.get("mixed_precision"),
        "group_by_length": recorded.get("group_by_length", "false"),
        "item_order": recorded.get("item_order", "sorted"),
    }


def _runs(folder: Path, epochs_glob: str = "epoch_*.json") -> dict[int, list[dict]]:
    runs = {}
    for seed_dir in sorted(folder.glob("seed*")):
        if seed_dir.is_dir():
            files = sorted(seed_dir.glob(epochs_glob), key=lambda f: int(f.stem.split("_")[1]))
            runs[int(seed_dir.name[4:])] = [json.loads(f.read_text()) for f in files]
    return runs


def is_default(overrides: list[str]) -> bool:
    """Whether ``--config`` overrides (as the trainers read them) leave ``TagnnPPConfig``'s defaults unchanged."""
    from session_transformers.models.tagnn_pp import TagnnPPConfig

    values = {}
    for item in overrides:
        key, value = item.split("=", 1)
        try:
            values[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            values[key] = value
    values = {
        k: v for k, v in values.items() if k not in ("hidden_size", "num_attention_heads")
    }  # the peer's
    defaults = TagnnPPConfig()
    return all(getattr(defaults, k) == v for k, v in values.items())


def write(args: argparse.Namespace, stats: dict) -> None:
    """The result file, from everything in the work folder (every variant, every seed, every epoch)."""
    authors = {
        int(f.stem[4:]): json.loads(f.read_text())
        for f in sorted((args.work_dir / "authors").glob("seed*.json"))
    }
    variants = {}
    for folder in sorted((args.work_dir / "ours").glob("*")):
        if (folder / "variant.json").exists():
            runs = _runs(folder)
            variants[folder.name] = {
                **_variant_settings(folder / "variant.json"),
                "by_epoch": summary(runs, max((len(r) for r in runs.values()), default=0)),
                "runs": runs,
            }
    epochs = max((len(r) for r in authors.values()), default=0)
    figures = {
        "authors_code": {"by_epoch": summary(authors, epochs), "runs": authors},
        "default_variant": next(
            (
                n
                for n, v in variants.items()
                if is_default(v["config"])
                and v["mixed_precision"] is None
                and v["group_by_length"] == "false"
                and v["item_order"] == "sorted"
            ),
            None,
        ),
        "ours": variants,
        "forward_check": (
            json.loads(check.read_text())
            if (check := args.work_dir / "forward_check.json").exists()
            else None
        ),
        "settings": SETTINGS,
        "lr_schedule": "1e-3 in epochs 1-2, 1e-4 in epoch 3 (the code's StepLR(3, 0.1) is stepped before each epoch)",
        "authors_code_source": PUBLISHED,
        "seconds_note": SECONDS_NOTE,  # of every run's wall_seconds
    }
    data = (
        f"Diginetica (SR-GNN protocol) reduced to its {stats['items']} most frequent training items: "
        f"{stats['train_samples']:,} training prefixes of {stats['train_sessions']:,} sessions (no validation split), "
        f"{stats['test_samples']:,} test cases ({stats['test_cases_dropped']:,} dropped by the reduction); "
        "the same samples on both sides"
    )
    print(write_result(args.result_name, figures, data))


if __name__ == "__main__":
    main()
