"""Several processes agree with one (issue 15, item 4): two CPU processes (gloo, through accelerate) on one global
batch against one process on the same batch, for every model's training objective.

    .venv/bin/python -m benchmarks.process_parity                 # every case, 2 steps, 4 rows per process
    .venv/bin/python -m benchmarks.process_parity --dry-run       # 1 step, 2 rows per process, writes nothing

For each case (a recipe's task at toy size on the tiny synthetic store, dropout off so that both runs see the same
function), the first ``steps x 2N`` training rows are taken in order. Step ``s`` uses rows ``[2Ns, 2N(s+1))``:

- **two processes**: rank ``r`` collates its half (``N`` rows) with the recipe's own collator (augmenting
  collators draw from a generator seeded by the batch's rows, ``processing_utils.SeededCollatorMixin``), runs the
  model wrapped by ``accelerator.prepare`` (DDP) in two spawned processes
  (``session_transformers.distributed.spawn_launcher``, ``accelerate.debug_launcher``'s set-up), and
  backpropagates; DDP averages the gradients;
- **one process**: the two collated halves merged into one batch of ``2N`` (:func:`merges`: pad to the longer
  length and concatenate, offset graph and node indices, PyG ``HeteroData`` through ``Batch.from_data_list``), so
  both runs see exactly the same masks and views; collating the ``2N`` rows at once would draw other ones.

Both then take the same plain SGD step (momentum 0.9 for Product BYOL, as its protocol), and the task's
``after_optimizer_step`` hook runs (Product BYOL's EMA target update at ``optim.byol_momentum(step, 10)``).
Compared at every step (figures: the maximum over the steps): the loss (the mean over processes of the
per-process losses against the one-process loss, relative), every parameter's gradient after backward, every
parameter after the step and the hook (the EMA target's parameters included) and the buffers (BatchNorm running
statistics), each tensor relative to its largest entry, floored at :data:`FLOOR` times the model's largest entry.
Both processes must also hold bit-identical weights, buffers and targets (``ranks_identical``).

Each case states its tolerance and why; results go to ``benchmarks/results/process_parity.json``. Cases:
``tagnn_pp`` (next-item cross-entropy), ``ceres_pretrain`` (MLM + graph-conditioned MLM: a mean over masked
tokens, normalised by the global masked-token count), ``ceres_retrieval`` (product search: cosine hinge over
in-batch candidates gathered across processes), ``ubm_stage1`` / ``ubm_stage2`` (InfoNCE with
``losses.info_nce(gather=True)``), ``muvcog`` (hard negatives chosen across processes by the discriminator),
``product_byol_sync_bn`` (BYOL + category loss, EMA target, ``sync_batch_norm=True``: BatchNorm over the global
batch), and ``product_byol`` / ``product_byol_64`` (the config's default per-process BatchNorm at 4 and 64 pairs
per process: the one stated deviation, see :data:`PER_PROCESS_BN`).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from ._common import write_result

ROOT = Path(__file__).resolve().parents[1]

Batch = dict[str, Any]


# --- merging two collated halves into one batch ------------------------------------------------------------------
def pad_to(tensor: torch.Tensor, width: int, value: Any) -> torch.Tensor:
    """``tensor`` ``(n, w, ...)`` right-padded with ``value`` to ``(n, width, ...)``."""
    out = tensor.new_full((tensor.shape[0], width, *tensor.shape[2:]), value)
    out[:, : tensor.shape[1]] = tensor
    return out


def pad_cat(parts: Sequence[torch.Tensor], value: Any) -> torch.Tensor:
    """Right-pad ``(n_i, w_i, ...)`` tensors to the widest and concatenate them along dim 0."""
    width = max(p.shape[1] for p in parts)
    return torch.cat([pad_to(p, width, value) for p in parts])


def _check_keys(a: Mapping, b: Mapping, known: set[str]) -> None:
    if set(a) != set(b) or set(a) - known:
        raise KeyError(f"cannot merge batches with keys {sorted(a)} and {sorted(b)} (known: {sorted(known)})")


def merge_tagnn_pp(a: Batch, b: Batch, pad_id: int = 0) -> Batch:
    """Two TAGNN++ graph batches as one disjoint union: ``b``'s node indices (``edge_index``, ``alias`` at real
    positions) move past ``a``'s ``|V|`` nodes; ``alias`` / ``attention_mask`` padded to the longer session."""
    _check_keys(a, b, {"x", "edge_index", "in_weight", "out_weight", "alias", "attention_mask", "labels"})
    n0 = a["x"].numel()
    alias_b = torch.where(b["attention_mask"].bool(), b["alias"] + n0, b["alias"])
    out = {
        "x": torch.cat([a["x"], b["x"]]),
        "edge_index": torch.cat([a["edge_index"], b["edge_index"] + n0], 1),
        "in_weight": torch.cat([a["in_weight"], b["in_weight"]]),
        "out_weight": torch.cat([a["out_weight"], b["out_weight"]]),
        "alias": pad_cat([a["alias"], alias_b], 0),
        "attention_mask": pad_cat([a["attention_mask"], b["attention_mask"]], 0),
    }
    if "labels" in a:
        out["labels"] = torch.cat([a["labels"], b["labels"]])
    return out


_CERES_KEYS = {
    "input_ids",
    "attention_mask",
    "sequence_item_index",
    "item_session_index",
    "item_position",
    "edge_index",
    "edge_type",
    "labels",
    "candidate_input_ids",
    "candidate_attention_mask",
    "candidate_sequence_index",
}


def merge_ceres(a: Batch, b: Batch, pad_id: int = 0) -> Batch:
    """Two CERES batches as one: sequences padded and stacked, ``b``'s item indices (``sequence_item_index``,
    ``edge_index``) after ``a``'s items, its sessions after ``a``'s sessions. Masked-LM ``labels`` ``(S, T)`` are
    padded with -100; retrieval batches (``candidate_*``) stack the candidates (``b``'s after ``a``'s: a target of
    both halves appears twice, as in the two-process run) and their ``labels`` ``(B, C)`` block-diagonally."""
    _check_keys(a, b, _CERES_KEYS)
    items0 = a["item_session_index"].numel()
    retrieval = "candidate_input_ids" in a
    sessions0 = a["labels"].shape[0] if retrieval else int(a["item_session_index"].max()) + 1
    out = {
        "input_ids": pad_cat([a["input_ids"], b["input_ids"]], pad_id),
        "attention_mask": pad_cat([a["attention_mask"], b["attention_mask"]], 0),
        "sequence_item_index": torch.cat([a["sequence_item_index"], b["sequence_item_index"] + items0]),
        "item_session_index": torch.cat([a["item_session_index"], b["item_session_index"] + sessions0]),
        "item_position": torch.cat([a["item_position"], b["item_position"]]),
        "edge_index": torch.cat([a["edge_index"], b["edge_index"] + items0], 1),
        "edge_type": torch.cat([a["edge_type"], b["edge_type"]]),
    }
    if retrieval:
        c0 = a["labels"].shape[1]
        out["candidate_input_ids"] = pad_cat([a["candidate_input_ids"], b["candidate_input_ids"]], pad_id)
        out["candidate_attention_mask"] = pad_cat(
            [a["candidate_attention_mask"], b["candidate_attention_mask"]], 0
        )
        out["candidate_sequence_index"] = torch.cat(
            [a["candidate_sequence_index"], b["candidate_sequence_index"] + c0]
        )
        if "labels" in a:
            out["labels"] = torch.block_diag(a["labels"], b["labels"])
    elif "labels" in a:
        out["labels"] = pad_cat([a["labels"], b["labels"]], -100)
    return out


_UBM_STAGE1 = ("item_input_ids", "item_attention_mask", "masked_item_input_ids")
_UBM_STAGE2 = (
    "input_ids",
    "attention_mask",
    "interaction_mask",
    "reordered_input_ids",
    "reordered_attention_mask",
    "masked_input_ids",
)


def merge_ubm(a: Batch, b: Batch, pad_id: int = 0) -> Batch:
    """Two UBM batches as one. Stage 1 rows are ``N`` items then their ``N`` next items, so the merge keeps that
    layout: ``[items_a; items_b; next_a; next_b]``. Stage 2: interactions stacked (session-major), the
    ``interaction_mask`` ``(B, L)`` padded with False."""
    _check_keys(a, b, set(_UBM_STAGE1) | set(_UBM_STAGE2))
    out = {}
    for key, value in a.items():
        pad = 0 if "attention_mask" in key else (False if key == "interaction_mask" else pad_id)
        if key in _UBM_STAGE1:
            x, y = value, b[key]
            n, m = x.shape[0] // 2, y.shape[0] // 2
            out[key] = pad_cat([x[:n], y[:m], x[n:], y[m:]], pad)
        else:
            out[key] = pad_cat([value, b[key]], pad)
    return out


def merge_hetero(a, b):
    """Two MUVCOG view batches (``HeteroData`` disjoint unions of ``B_a`` and ``B_b`` sessions) as one, with
    torch_geometric's batching (node features and ``position`` stacked, edge indices offset by the node counts of
    ``a``, graph-level ``num_queries`` concatenated); the per-node-type ``batch`` (session of each node) and
    ``ptr`` are then set to the session numbering of the merged batch (PyG would number the two inputs 0 and 1)."""
    from torch_geometric.data import Batch as PygBatch
    from torch_geometric.data import HeteroData

    def without_numbering(
        data: HeteroData,
    ) -> HeteroData:  # PyG numbers graphs itself (and fails on empty types)
        data = copy.copy(data)
        for store in data.node_types:
            for key in ("batch", "ptr"):
                if key in data[store]:
                    del data[store][key]
        return data

    sessions0 = int(a.num_queries.numel())
    merged = PygBatch.from_data_list([without_numbering(a), without_numbering(b)])
    out = HeteroData()
    for store in merged.node_types:
        for key, value in merged[store].items():
            if key not in ("batch", "ptr"):
                out[store][key] = value
        if "num_nodes" in a[store]:  # a node type without features (MUVCOG's query nodes VQ)
            out[store].num_nodes = a[store].num_nodes + b[store].num_nodes
        out[store].batch = torch.cat([a[store].batch, b[store].batch + sessions0])
        out[store].ptr = torch.cat([a[store].ptr, b[store].ptr[1:] + a[store].ptr[-1]])
    for edge_type in merged.edge_types:
        out[edge_type].edge_index = merged[edge_type].edge_index
    out.num_queries = torch.cat([a.num_queries, b.num_queries])
    return out


def merge_muvcog(a: Batch, b: Batch, pad_id: int = 0) -> Batch:
    """Two MUVCOG pretraining batches as one: every view through :func:`merge_hetero`, ``click_ids`` padded with
    -1."""
    views = ("global_view", "local_view", "positive_global_view", "positive_local_view")
    _check_keys(a, b, {"num_queries", "click_ids", *views})
    out = {k: merge_hetero(a[k], b[k]) for k in views if k in a}
    out["num_queries"] = torch.cat([a["num_queries"], b["num_queries"]])
    if "click_ids" in a:
        out["click_ids"] = pad_cat([a["click_ids"], b["click_ids"]], -1)
    return out


def merge_product_byol(a: Batch, b: Batch, pad_id: int = 0) -> Batch:
    """Two Product BYOL pair batches as one: titles padded and stacked, category labels concatenated."""
    _check_keys(
        a,
        b,
        {"input_ids", "attention_mask", "pair_input_ids", "pair_attention_mask", "labels", "pair_labels"},
    )
    out = {}
    for key, value in a.items():
        if key.endswith("labels"):
            out[key] = torch.cat([value, b[key]])
        else:
            out[key] = pad_cat([value, b[key]], 0 if "attention_mask" in key else pad_id)
    return out


def merges() -> dict[str, Callable[..., Batch]]:
    """Per model family: merge two collated halves into the one-process batch. A family's descriptor's
    ``merge_batches`` (``session_transformers.families``), else this module's ``merge_<model_type>`` (the package's
    five families); read when called, so that a family registered later is there too."""
    from session_transformers.families import discover

    out = {}
    for name, family in discover().items():
        merge = family.merge_batches or globals().get(f"merge_{name}")
        if merge is not None:
            out[name] = merge
    return out


MERGES: dict[str, Callable[..., Batch]] = merges()
"""The merges of :func:`merges` when this module was imported."""


# --- the cases ----------------------------------------------------------------------------------------------------
CERES_TINY = [
    "--store-preset", "tiny", "--num-sessions", "200", "--config", "hidden_size=32", "num_hidden_layers=1",
    "num_attention_heads=2", "intermediate_size=64", "num_cross_attention_layers=1", "num_latent_tokens=2",
    "retrieval_projection_size=16", "max_position_embeddings=160", "hidden_dropout_prob=0",
    "attention_probs_dropout_prob=0",
]  # fmt: skip
UBM_TINY = [
    "--store-preset", "tiny", "--vocab-size", "400", "--config", "hidden_size=32", "num_hidden_layers=1",
    "num_attention_heads=2", "intermediate_size=64", "num_session_layers=1", "session_num_attention_heads=2",
    "session_intermediate_size=64", "interaction_pooling=mean", "hidden_dropout_prob=0",
    "attention_probs_dropout_prob=0",
]  # fmt: skip
BYOL_TINY = [
    "--model", "product_byol", "--store-preset", "tiny", "--num-sessions", "400", "--vocab-size", "300",
    "--config", "embedding_size=16", "num_filters=8", "projection_hidden_size=32", "projection_size=8",
]  # fmt: skip

FLOAT_TOLERANCE = {"loss": 1e-5, "grad": 1e-3, "weight": 1e-3, "buffer": 1e-4}
"""float32 summation order: the two runs add the same terms in another order (other padding widths, a gathered
similarity matrix, DDP's all-reduce of gradients). Relative: |Δloss| / |loss|; per tensor max |Δ| / max |x| with
the :data:`FLOOR`. Measured noise stays under ~3e-4 for gradients, on tensors whose gradient is a sum of terms
that nearly cancel (the bias before a BatchNorm, zero in exact arithmetic; CERES's candidate projection bias under
L2 normalisation); the discrepancies this benchmark found before the fixes (a per-process mean over masked tokens,
negatives not gathered, per-process BatchNorm) were 0.5 to 5."""


@dataclasses.dataclass
class Case:
    """One model objective: the trainer flags that prepare it, how to merge its halves, and its tolerance."""

    name: str
    family: str
    argv: list[str]
    with_task: bool = False
    lr: float = 0.1
    momentum: float = 0.0
    tolerance: dict[str, float] = dataclasses.field(default_factory=lambda: dict(FLOAT_TOLERANCE))
    reason: str = "float32 summation order only"
    fast: bool = True
    per_process: int | None = None
    """rows per process for this case (default: the run's ``--per-process``)."""


_GATHERED = "float32 summation order; {what}"
PER_PROCESS_BN = (
    "per-process BatchNorm (sync_batch_norm=False, the config's default): each process normalises its own share "
    "of the batch, so the objective itself differs from one process's on the whole batch (sampling noise of the "
    "batch statistics, shrinking with the rows per process); the tolerance is the deviation measured at this size, "
    "rounded up, not a float bound. The strict check is ranks_identical: both processes hold the same weights, "
    "BatchNorm statistics and EMA target. sync_batch_norm=True removes the deviation (product_byol_sync_bn)"
)

CASES: dict[str, Case] = {
    c.name: c
    for c in (
        Case(
            "tagnn_pp",
            "tagnn_pp",
            [
                "--model",
                "tagnn_pp",
                "--store-preset",
                "tiny",
                "--num-sessions",
                "240",
                "--config",
                "hidden_size=16",
                "num_attention_heads=2",
                "score_chunk_size=64",
                "hidden_dropout_prob=0",
                "attention_probs_dropout_prob=0",
            ],  # fmt: skip
            reason="float32 summation order only (a mean over the same number of sessions on each process)",
        ),
        Case(
            "ceres_pretrain",
            "ceres",
            ["--model", "ceres", *CERES_TINY],
            reason=_GATHERED.format(
                what="MLM and graph-conditioned MLM are means over the masked tokens of every process "
                "(distributed.global_mean: the processes mask different numbers of tokens)"
            ),
        ),
        Case(
            "ceres_retrieval",
            "ceres",
            ["--model", "ceres", "--task", "product_search", *CERES_TINY],
            with_task=True,
            reason=_GATHERED.format(
                what="product search: in-batch candidates gathered from every process (gather_with_grad), hinge "
                "mean over the global (pair, negative) count"
            ),
        ),
        Case(
            "ubm_stage1",
            "ubm",
            ["--model", "ubm", "--stage", "1", *UBM_TINY],
            reason=_GATHERED.format(what="InfoNCE keys of every process (losses.info_nce(gather=True))"),
        ),
        Case(
            "ubm_stage2",
            "ubm",
            ["--model", "ubm", "--stage", "2", *UBM_TINY],
            reason=_GATHERED.format(what="InfoNCE keys of every process (losses.info_nce(gather=True))"),
            fast=False,
        ),
        Case(
            "muvcog",
            "muvcog",
            [
                "--model",
                "muvcog",
                "--store-preset",
                "tiny",
                "--num-sessions",
                "300",
                "--word2vec-epochs",
                "1",
                "--config",
                "hidden_size=16",
                "discriminator_hidden_sizes=[32,16]",
                "query_suggestion_hidden_size=32",
                "hard_negative_warmup_steps=0",  # hard from step 1: the warm-up's random draws are per process
            ],  # fmt: skip
            reason=_GATHERED.format(
                what="hard negatives chosen by the discriminator among every process's sessions (the same choices)"
            ),
        ),
        Case(
            "product_byol_sync_bn",
            "product_byol",
            [*BYOL_TINY, "sync_batch_norm=True"],
            momentum=0.9,
            reason=_GATHERED.format(
                what="sync_batch_norm=True: BatchNorm over the global batch (cross_process_batch_norm on gloo); "
                "BYOL and category losses are means over the global batch (distributed.global_mean)"
            ),
        ),
        Case(
            "product_byol",
            "product_byol",
            BYOL_TINY,
            momentum=0.9,
            tolerance={"loss": 0.1, "grad": 10.0, "weight": 10.0, "buffer": 10.0},
            reason=PER_PROCESS_BN,
            fast=False,
        ),
        Case(
            "product_byol_64",
            "product_byol",
            BYOL_TINY,
            momentum=0.9,
            tolerance={"loss": 0.1, "grad": 10.0, "weight": 10.0, "buffer": 10.0},
            reason=PER_PROCESS_BN + "; 64 pairs per process",
            per_process=64,
            fast=False,
        ),
    )
}

TOTAL_STEPS = 10
"""The schedule length the ``after_optimizer_step`` hook is told (BYOL's tau reaches 1 only at the last step)."""


def cases() -> dict[str, Case]:
    """Every case: :data:`CASES`, then one per registered family that is in none of them and whose descriptor has
    ``parity_flags`` (its toy-size ``trainers/pretrain.py`` flags; ``session_transformers.families``). Read when
    called, so that a family registered later is there too."""
    from session_transformers.families import discover

    out = dict(CASES)
    covered = {case.family for case in out.values()}
    for name, family in discover().items():
        if name not in covered and family.parity_flags:
            out[name] = Case(name, name, ["--model", name, *family.parity_flags])
    return out


@dataclasses.dataclass
class Prepared:
    """A case ready to run: the config and initial weights, what trains, the hook and the batches of each step."""

    case: Case
    auto_class: Any
    config: Any
    init_state: dict[str, torch.Tensor]
    trainable: tuple[str, ...] | None
    hook: Callable | None
    before_hook: Callable | None
    halves: list[tuple[Batch, Batch]]
    merged: list[Batch]
    per_process: int


def _pad_id(processor) -> int:
    tokenizer = getattr(processor, "tokenizer", None)
    pad = getattr(tokenizer, "pad_token_id", None)
    return int(pad) if pad is not None else 0


def recipe_data(case: Case):
    """``(data, task, trainable)``: the case's ``PreparedData`` from its recipe's task, as the trainers prepare it,
    the task, and the parameter prefixes its stage trains (``None``: all)."""
    from session_transformers.recipes import resolve_data_arguments, training_parser

    parser, recipe, task = training_parser("process_parity", case.argv, with_task=case.with_task)
    args = resolve_data_arguments(parser, parser.parse_args(case.argv), recipe)
    trainable = None if case.with_task else recipe.stage(args.stage).trainable
    return task.prepare(args), task, trainable


def prepare(case: Case, per_process: int, steps: int) -> Prepared:
    """Prepare ``case`` with its recipe (as the trainers do), build its initial weights (seed 0) and collate the
    halves of each step's global batch; merge them for the one-process run."""
    data, task, trainable = recipe_data(case)
    torch.manual_seed(0)
    model = task.auto_class.from_config(data.config)
    if data.init_weights is not None:
        data.init_weights(model)
    n = per_process
    if len(data.train_dataset) < 2 * n * steps:
        raise ValueError(f"{case.name}: {len(data.train_dataset)} training rows, {2 * n * steps} needed")
    rows = [data.train_dataset[i] for i in range(2 * n * steps)]
    halves = [
        (
            data.collate_fn(rows[2 * n * s : 2 * n * s + n]),
            data.collate_fn(rows[2 * n * s + n : 2 * n * (s + 1)]),
        )
        for s in range(steps)
    ]
    halves = [(dict(a), dict(b)) for a, b in halves]
    merge = merges()[case.family]
    pad_id = _pad_id(data.processor)
    return Prepared(
        case=case,
        auto_class=task.auto_class,
        config=data.config,
        init_state={k: v.detach().clone() for k, v in model.state_dict().items()},
        trainable=trainable,
        hook=task.after_optimizer_step,
        before_hook=task.before_optimizer_step,
        halves=halves,
        merged=[merge(a, b, pad_id=pad_id) for a, b in halves],
        per_process=n,
    )


def build_model(prep: Prepared) -> torch.nn.Module:
    """The case's model with its initial weights, frozen as the trainers freeze it, in training mode (built after
    the process group exists, so that a config may choose its layers by it)."""
    from session_transformers.trainer_utils import freeze_parameters

    model = prep.auto_class.from_config(copy.deepcopy(prep.config))
    model.load_state_dict(prep.init_state)
    freeze_parameters(model, prep.trainable)
    return model.train()


def train_steps(
    model, unwrapped, optimizer, batches, hook, backward, reduce_mean, before_hook=None
) -> list[dict[str, Any]]:
    """One SGD step per batch; per step: the (process-mean) loss, the gradients after backward, and the weights
    and buffers after the step and the hooks (``before_hook`` before the forward pass, ``hook`` after the step)."""
    records = []
    for step, batch in enumerate(batches, 1):
        if before_hook is not None:
            before_hook(unwrapped, step, TOTAL_STEPS)
        out = model(**batch)
        backward(out.loss)
        grads = {n: p.grad.detach().clone() for n, p in unwrapped.named_parameters() if p.grad is not None}
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if hook is not None:
            hook(unwrapped, step, TOTAL_STEPS)
        state = {k: v.detach().clone() for k, v in unwrapped.state_dict().items()}
        records.append({"loss": reduce_mean(out.loss.detach()).clone(), "grads": grads, "state": state})
    return records


def _optimizer(model: torch.nn.Module, case: Case) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(params, lr=case.lr, momentum=case.momentum)


def run_one_process(prep: Prepared) -> list[dict[str, Any]]:
    """The reference: one process on the merged batches."""
    model = build_model(prep)
    return train_steps(
        model,
        model,
        _optimizer(model, prep.case),
        prep.merged,
        prep.hook,
        lambda t: t.backward(),
        lambda t: t,
        prep.before_hook,
    )


def _two_process_worker(jobs: list[Prepared], out_dir: str) -> None:
    from accelerate import Accelerator

    torch.set_num_threads(1)
    acc = Accelerator(cpu=True)
    rank = acc.process_index
    results = {}
    for prep in jobs:
        model = build_model(prep)
        optimizer = _optimizer(model, prep.case)
        ddp, optimizer = acc.prepare(model, optimizer)
        records = train_steps(
            ddp,
            acc.unwrap_model(ddp),
            optimizer,
            [h[rank] for h in prep.halves],
            prep.hook,
            acc.backward,
            lambda t: acc.reduce(t, "mean"),
            prep.before_hook,
        )
        results[prep.case.name] = records
        acc.free_memory(ddp, optimizer)
    torch.save(results, Path(out_dir, f"rank{rank}.pt"))


def run_two_processes(jobs: list[Prepared]) -> tuple[dict, dict]:
    """Every job in one launch of two spawned processes (one launch: a process group costs seconds); returns each
    rank's records by job name."""
    from session_transformers.distributed import spawn_launcher

    with tempfile.TemporaryDirectory() as out:
        spawn_launcher(_two_process_worker, args=(jobs, out), num_processes=2)
        files = [os.path.join(out, f"rank{r}.pt") for r in (0, 1)]
        ranks = [torch.load(f, weights_only=True) for f in files]
    return ranks[0], ranks[1]


FLOOR = 1e-2
"""A tensor's differences are measured relative to its largest entry, but never to less than ``FLOOR`` times the
largest entry of the model (a gradient that is zero in exact arithmetic, such as an attention key bias's, holds
only rounding noise, which a relative measure would blow up)."""


def _max_rel(ours: Mapping[str, torch.Tensor], ref: Mapping[str, torch.Tensor]) -> tuple[float, str]:
    """The largest per-tensor ``max |ours - ref| / max(max |ref|, FLOOR * largest |ref| of all)``, and where."""
    keys = [k for k, v in ref.items() if v.is_floating_point() and v.numel()]
    if not keys:
        return 0.0, ""
    scales = {k: ref[k].double().abs().max().item() for k in keys}
    floor = FLOOR * max(scales.values())
    worst, where = 0.0, keys[0]
    for k in keys:
        diff = (ours[k].double() - ref[k].double()).abs().max().item()
        rel = diff / max(scales[k], floor) if max(scales[k], floor) > 0 else diff
        if rel > worst:
            worst, where = rel, k
    return worst, where


def compare(one: list[dict], rank0: list[dict], rank1: list[dict], tolerance: Mapping[str, float]) -> dict:
    """The figures of one case: max over steps of the loss, gradient, weight and buffer differences, whether the
    two processes hold identical weights, and pass / fail against ``tolerance``."""
    figures: dict[str, Any] = {"steps": len(one)}
    worst = {"loss": 0.0, "grad": 0.0, "weight": 0.0, "buffer": 0.0}
    where = {"grad": "", "weight": "", "buffer": ""}

    def note(kind: str, value: float, key: str) -> None:
        if value >= worst[kind] and key:
            worst[kind], where[kind] = value, key

    loss_abs = 0.0
    same_ranks = True
    for ref, r0, r1 in zip(one, rank0, rank1):
        d = abs(float(r0["loss"]) - float(ref["loss"]))
        loss_abs = max(loss_abs, d)
        worst["loss"] = max(worst["loss"], d / max(abs(float(ref["loss"])), 1e-12))
        if set(r0["grads"]) != set(ref["grads"]):
            raise AssertionError(f"parameters with gradients differ: {set(r0['grads']) ^ set(ref['grads'])}")
        note("grad", *_max_rel(r0["grads"], ref["grads"]))
        weights = {k: v for k, v in ref["state"].items() if not _is_buffer_name(k)}
        note("weight", *_max_rel(r0["state"], weights))
        note("buffer", *_max_rel(r0["state"], {k: v for k, v in ref["state"].items() if k not in weights}))
        same_ranks = same_ranks and all(torch.equal(v, r1["state"][k]) for k, v in r0["state"].items())
    figures.update(
        {
            "loss_one_process": float(one[0]["loss"]),
            "max_abs_dloss": loss_abs,
            "max_rel_dloss": worst["loss"],
            "max_rel_dgrad": worst["grad"],
            "worst_grad": where["grad"],
            "max_rel_dweight": worst["weight"],
            "worst_weight": where["weight"],
        }
    )
    if any(_is_buffer_name(k) for k in one[0]["state"]):
        figures["max_rel_dbuffer"] = worst["buffer"]
        figures["worst_buffer"] = where["buffer"]
    figures["ranks_identical"] = same_ranks
    checks = {k: worst[k] <= tolerance[k] for k in ("loss", "grad", "weight")}
    if "max_rel_dbuffer" in figures:
        checks["buffer"] = worst["buffer"] <= tolerance["buffer"]
    figures["tolerance"] = ", ".join(f"{k} {tolerance[k]:.0e}" for k in checks)
    figures["passed"] = bool(all(checks.values()) and same_ranks)
    return figures


def _is_buffer_name(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked")


def measure(names: Sequence[str], per_process: int, steps: int) -> dict[str, dict]:
    """Prepare every case, run them all in one two-process spawn and one process each; the figures by case."""
    torch.set_num_threads(1)
    every = cases()
    preps = {name: prepare(every[name], every[name].per_process or per_process, steps) for name in names}
    rank0, rank1 = run_two_processes(list(preps.values()))
    figures = {}
    for name, prep in preps.items():
        one = run_one_process(prep)
        figures[name] = {
            "rows_per_process": prep.per_process,
            **compare(one, rank0[name], rank1[name], prep.case.tolerance),
            "reason": prep.case.reason,
        }
    return figures


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", nargs="*", default=list(cases()), choices=list(cases()))
    p.add_argument("--per-process", type=int, default=4, help="rows per process (global batch: twice this)")
    p.add_argument("--steps", type=int, default=2, help="optimiser steps compared")
    p.add_argument("--dry-run", action="store_true", help="1 step, 2 rows per process; write nothing")
    p.add_argument("--results-dir", default=None, help="where to write (default benchmarks/results)")
    args = p.parse_args(argv)
    if args.dry_run:
        args.per_process, args.steps = 2, 1
    figures = measure(args.cases, args.per_process, args.steps)
    for name, f in figures.items():
        print(
            f"{name:22s} dloss {f['max_rel_dloss']:.2e} dgrad {f['max_rel_dgrad']:.2e} "
            f"dweight {f['max_rel_dweight']:.2e} passed {f['passed']}"
        )
    if not args.dry_run:
        data = (
            f"tiny synthetic store, the first {2 * args.per_process * args.steps} training rows of each case in "
            f"order: {args.steps} steps of a global batch of {2 * args.per_process} rows ({args.per_process} per "
            "process); dropout off; plain SGD"
        )
        path = write_result("process_parity", {"cases": figures}, data, args.results_dir)
        print(f"wrote {path}")
    return figures


if __name__ == "__main__":
    main()
