"""The MUVCOG paper's claims, rerun in one run on the synthetic store (the only data here with keyword, product
and image queries; its image vectors carry a visual pattern that no text field has).

    nice -n 10 .venv/bin/python -m benchmarks.muvcog_claims                   # default sizes
    .venv/bin/python -m benchmarks.muvcog_claims --dry-run                    # tiny sizes, writes nothing

Every model is built from the recipe's own pieces (``models/muvcog/``'s ``sources.py``, ``tasks.py`` and
``recipe.py``: data, processor, collators, metrics, baselines) and trained by a plain seeded Adam loop in this process (one torch thread), with the same
number of steps for every row of a table. Pretrained encoders:

- ``MUVCOG-M``: both views, hard negatives, on full multi-modal sessions; ``MUVCOG-T``: the same on text-only
  sessions (image queries dropped everywhere, also downstream);
- ``AGV only``, ``HLV only``: one view, contrasted within itself; ``GAT (homogeneous)``: one GAT layer over the
  AGV graph with node and edge types ignored (Figure 4's competitors);
- ``MUVCOG-M random``: random instead of hard negatives (Figure 5);
- with ``--hard-negative-warmup-steps N`` every hard-negative variant draws random negatives for its first N steps
  (``MuvcogConfig.hard_negative_warmup_steps``, not in the paper), and ``MUVCOG-M, hard negatives from step 1``
  is the paper's schedule beside it;
- ``untrained encoder``: the MUVCOG-M architecture with its word vectors and no pretraining (not in the paper: it
  shows what the contrastive objective adds over the input vectors).

Tables (metrics as in the paper, fractions; 95% intervals: mean +- 1.96 standard errors over test examples for
ranking metrics, 200 bootstrap resamples of the test sessions for classification metrics):

- **Table 3, query suggestion** with and without image queries: the frozen MUVCOG encoder + one-hidden-layer
  head against an LSTM and a flat Transformer session encoder trained end to end with the same head (with image
  queries: their mean-pooled projected image vectors concatenated; the paper's comparison rows), and the recipe's
  baselines: popularity, previous query and session words (the session's own words by count), the last two also
  per example, with claims against them. Avg.Sim of every row is measured in the processor's word vectors. Not in
  the paper: MUVCOG-M and the untrained encoder also with the copy head (``query_suggestion_copy``: learned
  weights on the session's own words added to the head's scores), against session words and previous query.
- **Figure 4, views**: MUVCOG vs AGV only, HLV only and homogeneous GAT, on query suggestion (frozen features +
  head) and intent classification. The paper measures this with the ALSTP click model; here the session
  features are scored directly.
- **Figure 5, negatives**: hard vs random, same two measures.
- **Table 2, click prediction**: the two-tower click model with MUVCOG-M / MUVCOG-T session features vs the same
  model without them (vanilla).
- **Table 4, intent classification**: gradient-boosted trees (scikit-learn's HistGradientBoosting, in place of
  XGBoost) on MUVCOG-M features vs word2vec+IQ features (mean input word vectors + mean image vector), and the
  majority class.

A claim **holds** when the 95% interval of the paired per-example difference (same test examples) is above
zero, **fails** when it is below zero, and is **inconclusive** otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from torch import nn

from session_transformers import metrics
from session_transformers.models.muvcog import (
    MuvcogConfig,
    MuvcogForClickPrediction,
    MuvcogForPreTraining,
    MuvcogForQuerySuggestion,
)
from session_transformers.models.muvcog.modeling_muvcog import query_suggestion_avg_sim
from session_transformers.models.muvcog.recipe import RECIPE, _prepare_pretrain
from session_transformers.models.muvcog.sources import muvcog_source
from session_transformers.models.muvcog.tasks import (
    _avg_sim_of,
    _prepare_click,
    _prepare_query_suggestion,
    _ranks_of,
    intent_labels,
    session_features,
    session_word_ranking,
)
from session_transformers.trainer_utils import freeze_parameters

from ._common import SECONDS_NOTE, bootstrap_draws, bootstrap_intervals, interval, paired_difference

ROOT = Path(__file__).resolve().parents[1]

K = 10
COPY_HEAD_ENCODERS = ("MUVCOG-M", "untrained encoder")
"""Encoders whose query suggestion is also scored with the copy head (``query_suggestion_copy``, not the paper's)."""
PAPER_M = "MUVCOG-M, hard negatives from step 1"
"""With ``--hard-negative-warmup-steps N``: the paper's schedule, beside the warmed-up MUVCOG-M."""


def make_args(**overrides) -> argparse.Namespace:
    from session_transformers.recipes import resolve_data_arguments, training_parser

    argv = ["--model", "muvcog"]
    parser, recipe, _ = training_parser("muvcog claims", argv)
    args = resolve_data_arguments(parser, parser.parse_args(argv), recipe)
    for k, v in overrides.items():
        setattr(args, k, v)
    return args


def train_loop(model, dataset, collate, steps: int, lr: float, batch_size: int, seed: int) -> list[float]:
    freeze_parameters(model)
    torch.manual_seed(seed)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size, shuffle=True, collate_fn=collate, generator=torch.Generator().manual_seed(seed)
    )
    losses, step = [], 0
    model.train()
    while step < steps:
        for batch in loader:
            if hasattr(model, "set_training_step"):  # what the trainers' before_optimizer_step hook does
                model.set_training_step(step + 1)
            loss = model(**batch).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(float(loss.detach()))
            step += 1
            if step >= steps:
                break
    return losses


# --------------------------------------------------------------------------------------------------------------
# End-to-end sequence baselines (LSTM, flat Transformer) for query suggestion
# --------------------------------------------------------------------------------------------------------------


class SequenceQuerySuggestion(nn.Module):
    """An LSTM or flat Transformer over the session's words in order (a separator between queries), trained end to
    end with the same one-hidden-layer head; with ``use_images`` the mean of its projected image queries is
    concatenated (the paper's "mean pooling to all image queries")."""

    def __init__(self, kind: str, vectors: torch.Tensor, image_dim: int, use_images: bool, hidden: int = 64):
        super().__init__()
        vocab, dim = vectors.shape
        self.embed = nn.Embedding(vocab + 1, dim)  # the last row: the query separator
        with torch.no_grad():
            self.embed.weight[:vocab] = vectors
        self.kind, self.use_images = kind, use_images
        if kind == "lstm":
            self.encoder = nn.LSTM(dim, hidden, batch_first=True)
        else:
            self.proj = nn.Linear(dim, hidden)
            self.position = nn.Embedding(256, hidden)
            layer = nn.TransformerEncoderLayer(hidden, 4, 2 * hidden, dropout=0.0, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, 2)
        self.image = nn.Linear(image_dim, dim)
        width = hidden + (dim if use_images else 0)
        self.head = nn.Sequential(nn.Linear(width, 128), nn.Sigmoid(), nn.Linear(128, vocab))

    def forward(self, words, lengths, images, image_session, labels=None):
        x = self.embed(words)  # (B, L, D)
        mask = torch.arange(words.shape[1])[None] < lengths[:, None]
        if self.kind == "lstm":
            packed = nn.utils.rnn.pack_padded_sequence(
                x, lengths.clamp_min(1), batch_first=True, enforce_sorted=False
            )
            h = self.encoder(packed)[1][0][-1]  # (B, H) last state
        else:
            pos = self.position(torch.arange(words.shape[1]).clamp_max(255))[None]
            out = self.encoder(self.proj(x) + pos, src_key_padding_mask=~mask)
            h = (out * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
        if self.use_images:
            b = words.shape[0]
            pooled = torch.zeros(b, self.image.out_features)
            count = torch.zeros(b, 1)
            if images.shape[0]:
                pooled.index_add_(0, image_session, torch.tanh(self.image(images)))
                count.index_add_(0, image_session, torch.ones(images.shape[0], 1))
            h = torch.cat([h, pooled / count.clamp_min(1)], -1)
        logits = self.head(h)
        loss = None
        if labels is not None:
            keep = labels >= 0
            logp = torch.log_softmax(logits, -1).gather(1, labels.clamp_min(0))
            loss = -(logp * keep).sum() / keep.sum().clamp_min(1)
        return type("Out", (), {"loss": loss, "logits": logits})()


def sequence_collate(vocab_size: int, max_len: int = 120):
    def collate(rows):
        seqs, images, owner = [], [], []
        for b, r in enumerate(rows):
            enc = r["encoded"]
            seq = []
            for q in range(enc.num_queries):
                sel = enc.query == q
                seq += [int(k) for k, t in zip(enc.key[sel], enc.node_type[sel]) if t < 2] + [vocab_size]
                for k, t in zip(enc.key[sel], enc.node_type[sel]):
                    if t == 2:
                        images.append(enc.images[k])
                        owner.append(b)
            seqs.append(seq[-max_len:] or [vocab_size])
        width = max(map(len, seqs))
        words = torch.full((len(rows), width), vocab_size, dtype=torch.long)
        for b, s in enumerate(seqs):
            words[b, : len(s)] = torch.tensor(s)
        labels = torch.full((len(rows), 8), -100, dtype=torch.long)
        for b, r in enumerate(rows):
            labels[b, : len(r["target"])] = torch.tensor(r["target"])
        dim = rows[0]["encoded"].images.shape[1]
        return {
            "words": words,
            "lengths": torch.tensor([len(s) for s in seqs]),
            "images": torch.from_numpy(np.stack(images)) if images else torch.zeros(0, dim),
            "image_session": torch.tensor(owner, dtype=torch.long),
            "labels": labels,
        }

    return collate


# --------------------------------------------------------------------------------------------------------------
# Per-example metrics and intervals
# --------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def ranking_per_example(
    model, rows, collate, batch_size: int = 256, word_vectors: torch.Tensor | None = None
) -> dict[str, np.ndarray]:
    """Per test example: NDCG@10, HR@10, MRR@10, keyed by the example's key; with ``word_vectors`` (query
    suggestion: the processor's, the ones the baselines use) Avg.Sim in them, for every model alike."""
    model.eval()
    ranks, sims = [], []
    for start in range(0, len(rows), batch_size):
        batch = collate(rows[start : start + batch_size])
        labels = batch.pop("labels")
        out = model(**batch, labels=labels)
        scores = out.logits.float()
        if labels.dim() == 2:
            mask = torch.zeros_like(scores, dtype=torch.bool)
            r, c = torch.nonzero(labels >= 0, as_tuple=True)
            mask[r, labels[r, c]] = True
            ranks.append(metrics.ranks_from_scores(scores, mask, max_relevant=labels.shape[1]))
        else:
            ranks.append(metrics.rank_of_target(scores, labels)[:, None])
        if word_vectors is not None:
            sims.append(query_suggestion_avg_sim(scores, labels, word_vectors))
    model.train()
    r = torch.cat(ranks)
    out = {
        f"NDCG@{K}": metrics.ndcg_at_k(ranks=r, k=K, reduction="none").numpy(),
        f"HR@{K}": metrics.hit_rate_at_k(ranks=r, k=K, reduction="none").numpy(),
        f"MRR@{K}": metrics.mrr_at_k(ranks=r, k=K, reduction="none").numpy(),
    }
    if sims:
        out["Avg.Sim"] = torch.cat(sims).numpy()
    return out


def baseline_per_example(qs) -> dict[str, dict]:
    """The recipe's "previous query" and "session words" baselines (then popular target words), per test example
    like the models' rows, so that a model's claim against them gets a paired interval."""
    processor, width = qs.processor, qs.processor.max_target_words
    popular = [w for w, _ in Counter(w for r in qs.train_dataset.rows for w in r["target"]).most_common()]
    popular += [w for w in range(processor.vocab_size) if w not in set(popular)]
    rows, out = qs.test_dataset.rows, {}
    for name, first in (
        ("previous query", lambda r: r["previous"]),
        ("session words", lambda r: session_word_ranking(r["encoded"])),
    ):
        ranks, sims = [], []
        for r in rows:
            ranked = list(dict.fromkeys(first(r) + popular[: 50 + width]))
            ranks.append(_ranks_of(ranked, r["target"], width))
            sims.append(_avg_sim_of(ranked, r["target"], processor.word_vectors.float()))
        ranks = torch.tensor(ranks)
        out[name] = {
            "keys": [r["key"] for r in rows],
            f"NDCG@{K}": metrics.ndcg_at_k(ranks=ranks, k=K, reduction="none").numpy(),
            f"HR@{K}": metrics.hit_rate_at_k(ranks=ranks, k=K, reduction="none").numpy(),
            f"MRR@{K}": metrics.mrr_at_k(ranks=ranks, k=K, reduction="none").numpy(),
            "Avg.Sim": np.asarray(sims),
        }
    return out


def mean_ci(values: np.ndarray) -> dict[str, float]:
    """The mean with its normal 95 % half-width (:func:`benchmarks._common.interval`)."""
    iv = interval(values)
    return {"mean": round(iv.value, 4), "ci95": round(iv.half_width, 4), "n": iv.n}


def verdict(a: np.ndarray, b: np.ndarray, claim: str) -> dict:
    """Paired difference ``a - b`` (same examples): holds / fails / inconclusive by its 95% interval."""
    diff = paired_difference(a, b)
    return {
        "claim": claim,
        "difference": round(diff.value, 4),
        "±95%": round(diff.half_width, 4),
        "n": diff.n,
        "verdict": diff.verdict,
    }


def aligned(a: dict, b: dict, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """The metric of the examples both rows were scored on (rows hold ``keys`` and per-example values)."""
    index_b = {k: i for i, k in enumerate(b["keys"])}
    pairs = [(i, index_b[k]) for i, k in enumerate(a["keys"]) if k in index_b]
    ia, ib = (np.asarray(x, dtype=int) for x in zip(*pairs))
    return a[metric][ia], b[metric][ib]


def summarize_row(values: dict) -> dict:
    """``{metric: mean, "metric ±95%": half-width, ..., "n": examples}`` (a flat row for RESULTS.md)."""
    out = {}
    for m, v in values.items():
        if m != "keys":
            stats = mean_ci(v)
            out[m], out[f"{m} ±95%"], out["n"] = stats["mean"], stats["ci95"], stats["n"]
    return out


def bootstrap_classification(train_x, train_y, test_x, test_y, seed: int, resamples: int) -> dict:
    """Table 4's metrics of gradient-boosted trees on frozen features, with bootstrap 95% intervals over test
    sessions (the classifier is fitted once), and the majority class's."""
    from collections import Counter

    from sklearn.ensemble import HistGradientBoostingClassifier

    from session_transformers.models.muvcog.tasks import classification_metrics

    model = HistGradientBoostingClassifier(max_iter=200, random_state=seed).fit(train_x, train_y)
    proba, y, classes = model.predict_proba(test_x), np.asarray(test_y), model.classes_
    majority = Counter(list(train_y)).most_common(1)[0][0]
    constant = np.tile((classes == majority).astype(float), (len(y), 1))
    found = bootstrap_intervals(
        {"y": y, "proba": proba},
        lambda y, proba: classification_metrics(y, proba, classes),
        bootstrap_draws(len(y), resamples, seed),
    )
    out = {}
    for metric, iv in found.items():
        out[metric], out[f"{metric} 95% interval"] = (
            round(iv.value, 4),
            [round(iv.low, 4), round(iv.high, 4)],
        )
    majority_scores = {k: round(v, 4) for k, v in classification_metrics(y, constant, classes).items()}
    return {"model": out, "majority": majority_scores, "proba": proba}


# --------------------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--num-sessions", type=int, default=4000)
    p.add_argument("--pretrain-steps", type=int, default=200)
    p.add_argument("--pretrain-lr", type=float, default=5e-3)
    p.add_argument("--pretrain-batch-size", type=int, default=128)
    p.add_argument("--head-steps", type=int, default=600)
    p.add_argument("--head-lr", type=float, default=1e-2)
    p.add_argument(
        "--hard-negative-warmup-steps",
        type=int,
        default=MuvcogConfig.hard_negative_warmup_steps,
        help="random negatives for the first N pretraining steps of every hard-negative variant (default: the "
        "config's; 0: the paper's schedule); with N > 0 the paper's MUVCOG-M (hard from step 1) runs as one "
        "more row",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bootstrap", type=int, default=200)
    p.add_argument("--dry-run", action="store_true", help="tiny store and sizes; print only")
    p.add_argument(
        "--name", default="muvcog_claims", help="result file name (another seed: muvcog_claims_seed1)"
    )
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    preset = "default"
    if args.dry_run:
        preset, args.num_sessions, args.pretrain_steps, args.head_steps = "tiny", 300, 3, 3
        args.pretrain_batch_size, args.bootstrap = 16, 5
    start = time.time()
    base = {
        "store_preset": preset,
        "num_sessions": args.num_sessions,
        "seed": args.seed,
        "word2vec_epochs": 3,
    }
    data_m = make_args(**base)
    data_t = make_args(**base, text_only=True)
    warm = {"hard_negative_warmup_steps": args.hard_negative_warmup_steps}
    variants = {
        "MUVCOG-M": (data_m, warm),
        "MUVCOG-T": (data_t, warm),
        "AGV only": (data_m, {"views": "agv", **warm}),
        "HLV only": (data_m, {"views": "hlv", **warm}),
        "GAT (homogeneous)": (data_m, {"views": "gat", **warm}),
        "MUVCOG-M random negatives": (data_m, {"negatives": "random"}),
        "untrained encoder": (data_m, {}),  # no pretraining: what the contrastive objective adds
    }
    if args.hard_negative_warmup_steps:
        # explicit: the config's default is not 0
        variants[PAPER_M] = (data_m, {"hard_negative_warmup_steps": 0})
    encoders, pretrain_log = {}, {}
    for name, (dargs, overrides) in variants.items():
        dargs.config_overrides = dict(overrides)
        data = _prepare_pretrain(dargs)
        torch.manual_seed(args.seed)
        model = MuvcogForPreTraining(data.config)
        data.init_weights(model)
        losses = train_loop(
            model,
            data.train_dataset,
            data.collate_fn,
            0 if name == "untrained encoder" else args.pretrain_steps,
            args.pretrain_lr,
            args.pretrain_batch_size,
            args.seed,
        )
        encoders[name] = (model, data, dargs)
        k = max(1, len(losses) // 10)
        pretrain_log[name] = {
            "first_loss": round(float(np.mean(losses[:k])), 4) if losses else None,
            "last_loss": round(float(np.mean(losses[-k:])), 4) if losses else None,
        }
        print(f"pretrained {name}: {pretrain_log[name]} ({time.time() - start:.0f} s)", flush=True)
        dargs.config_overrides = {}

    # ---- query suggestion (Table 3, and the feature quality of Figures 4-5)
    qs_rows, qs_data = {}, {}
    for key, dargs in (("text", data_t), ("mm", data_m)):
        dargs.config_overrides = {}
        qs_data[key] = _prepare_query_suggestion(dargs)
    task = RECIPE.finetune["query_suggestion"]

    def muvcog_qs(name: str, copy: bool = False) -> dict:
        model, _, dargs = encoders[name]
        qs = qs_data["text" if dargs.text_only else "mm"]
        # the paper's head, or the copy head (MuvcogConfig.query_suggestion_copy, not the paper's), over the same
        # encoder: set either way, whatever the config's default
        config = model.config
        config = config.__class__(**{**config.to_diff_dict(), "query_suggestion_copy": copy})
        head = MuvcogForQuerySuggestion(config)
        head.muvcog.load_state_dict(model.muvcog.state_dict())
        train_loop(head, qs.train_dataset, qs.collate_fn, args.head_steps, args.head_lr, 64, args.seed)
        rows = qs.test_dataset.rows
        return {
            "keys": [r["key"] for r in rows],
            **ranking_per_example(head, rows, qs.collate_fn, word_vectors=qs.processor.word_vectors),
        }

    for name in variants:
        qs_rows[name] = muvcog_qs(name)
        print(f"query suggestion {name}: {summarize_row(qs_rows[name])}", flush=True)
    for name in COPY_HEAD_ENCODERS:
        qs_rows[f"{name} + copy head"] = muvcog_qs(name, copy=True)
        print(
            f"query suggestion {name} + copy head: {summarize_row(qs_rows[f'{name} + copy head'])}",
            flush=True,
        )
    for key, use_images in (("text", False), ("mm", True)):
        qs = qs_data[key]
        collate = sequence_collate(qs.processor.vocab_size)
        for kind in ("lstm", "transformer"):
            torch.manual_seed(args.seed)
            model = SequenceQuerySuggestion(
                kind, qs.processor.word_vectors, qs.processor.image_dim, use_images
            )
            train_loop(model, qs.train_dataset, collate, args.head_steps, 3e-3, 64, args.seed)
            name = f"{'LSTM' if kind == 'lstm' else 'Transformer'} ({'with' if use_images else 'no'} IQ)"
            rows = qs.test_dataset.rows
            qs_rows[name] = {
                "keys": [r["key"] for r in rows],
                **ranking_per_example(model, rows, collate, word_vectors=qs.processor.word_vectors),
            }
            print(f"query suggestion {name}: {summarize_row(qs_rows[name])}", flush=True)
    qs_baselines = {key: task.baseline(qs) for key, qs in qs_data.items()}
    for key, qs in qs_data.items():  # per example too: the claims against them get paired intervals
        for name, values in baseline_per_example(qs).items():
            qs_rows[f"{name} ({'no' if key == 'text' else 'with'} IQ)"] = values

    # ---- intent classification (Table 4 and Figures 4-5)
    splits = muvcog_source(data_m)
    labels = [intent_labels(part, 0) for part in (splits.train, splits.test)]
    intent, intent_proba = {}, {}

    def run_intent(name: str, train_x, train_i, test_x, test_i):
        res = bootstrap_classification(
            train_x,
            [labels[0][i] for i in train_i],
            test_x,
            [labels[1][i] for i in test_i],
            args.seed,
            args.bootstrap,
        )
        intent_proba[name] = (res.pop("proba"), [labels[1][i] for i in test_i], test_i)
        intent[name] = res
        print(f"intent {name}: {res['model']}", flush=True)

    for name in variants:
        model, data, _ = encoders[name]
        (tx, ti), (ex, ei) = (
            session_features(model, data.processor, part) for part in (splits.train, splits.test)
        )
        run_intent(name, tx, ti, ex, ei)
    proc = encoders["MUVCOG-M"][1].processor

    def w2v_features(sessions):
        feats, kept = [], []
        vectors = proc.word_vectors.numpy()
        for i, s in enumerate(sessions):
            try:
                enc = proc.encode(s, i)
            except ValueError:
                continue
            words = enc.key[enc.node_type < 2]
            text = vectors[words].mean(0) if words.size else np.zeros(vectors.shape[1], np.float32)
            image = enc.images.mean(0) if enc.images.shape[0] else np.zeros(proc.image_dim, np.float32)
            feats.append(np.concatenate([text, image]))
            kept.append(i)
        return np.stack(feats), kept

    (tx, ti), (ex, ei) = (w2v_features(part) for part in (splits.train, splits.test))
    run_intent("word2vec+IQ", tx, ti, ex, ei)

    def intent_correct(name):
        proba, y, idx = intent_proba[name]
        classes = np.array(sorted(set(labels[0])))
        return dict(zip(idx, (classes[proba.argmax(1)] == np.asarray(y)).astype(float)))

    def intent_paired(a, b):
        ca, cb = intent_correct(a), intent_correct(b)
        common = sorted(set(ca) & set(cb))
        return np.array([ca[i] for i in common]), np.array([cb[i] for i in common])

    # ---- click prediction (Table 2)
    clicks = {}
    for name, feature_source, use in (
        ("vanilla (no session features)", "MUVCOG-M", False),
        ("MUVCOG-T features", "MUVCOG-T", True),
        ("MUVCOG-M features", "MUVCOG-M", True),
    ):
        model, _, dargs = encoders[feature_source]
        dargs.config_overrides = {}
        click = _prepare_click(dargs)
        dargs.config_overrides = {}
        config = model.config.__class__(
            **{
                **model.config.to_diff_dict(),
                "num_items": len(click.processor.item_vocab),
                "click_use_session_features": use,
            }
        )
        head = MuvcogForClickPrediction(config)
        missing = head.muvcog.load_state_dict(model.muvcog.state_dict())
        assert not missing.missing_keys
        train_loop(head, click.train_dataset, click.collate_fn, args.head_steps, args.head_lr, 64, args.seed)
        rows = click.test_dataset.rows
        clicks[name] = {"keys": [r["key"] for r in rows], **ranking_per_example(head, rows, click.collate_fn)}
        print(f"click {name}: {summarize_row(clicks[name])}", flush=True)
        click_baseline = RECIPE.finetune["click_prediction"].baseline(click)

    # ---- tables and verdicts
    def qs_claim(a, b, metric=f"NDCG@{K}"):
        x, y = aligned(qs_rows[a], qs_rows[b], metric)
        return verdict(x, y, f"{a} > {b} on query suggestion {metric}")

    claims = [
        qs_claim("MUVCOG-T", "LSTM (no IQ)"),
        qs_claim("MUVCOG-T", "Transformer (no IQ)"),
        qs_claim("MUVCOG-M", "LSTM (with IQ)"),
        qs_claim("MUVCOG-M", "Transformer (with IQ)"),
        qs_claim("MUVCOG-M", "MUVCOG-T"),
        qs_claim("LSTM (with IQ)", "LSTM (no IQ)"),
        qs_claim("Transformer (with IQ)", "Transformer (no IQ)"),
        qs_claim("MUVCOG-M", "AGV only"),
        qs_claim("MUVCOG-M", "HLV only"),
        qs_claim("MUVCOG-M", "GAT (homogeneous)"),
        qs_claim("HLV only", "AGV only"),
        qs_claim("MUVCOG-M", "MUVCOG-M random negatives"),
        qs_claim("MUVCOG-M", "untrained encoder"),
        qs_claim("MUVCOG-T", "session words (no IQ)"),
        qs_claim("MUVCOG-M", "session words (with IQ)"),
        qs_claim("MUVCOG-M", "previous query (with IQ)"),
        qs_claim("MUVCOG-M + copy head", "session words (with IQ)"),
        qs_claim("MUVCOG-M + copy head", "previous query (with IQ)"),
        qs_claim("MUVCOG-M + copy head", "untrained encoder + copy head"),
        qs_claim("MUVCOG-M + copy head", "MUVCOG-M"),
    ]
    if PAPER_M in variants:
        claims.append(qs_claim("MUVCOG-M", PAPER_M))
    for a, b in (
        ("MUVCOG-M", "AGV only"),
        ("MUVCOG-M", "HLV only"),
        ("MUVCOG-M", "GAT (homogeneous)"),
        ("MUVCOG-M", "MUVCOG-M random negatives"),
        ("MUVCOG-M", "word2vec+IQ"),
        ("MUVCOG-M", "MUVCOG-T"),
        ("MUVCOG-M", "untrained encoder"),
        *((("MUVCOG-M", PAPER_M),) if PAPER_M in variants else ()),
    ):
        x, y = intent_paired(a, b)
        claims.append(verdict(x, y, f"{a} > {b} on intent classification accuracy"))
    for other in ("vanilla (no session features)", "MUVCOG-T features"):
        x, y = aligned(clicks["MUVCOG-M features"], clicks[other], f"NDCG@{K}")
        claims.append(verdict(x, y, f"click model with MUVCOG-M features > {other} on NDCG@{K}"))

    figures = {
        "pretraining": pretrain_log,
        "table3_query_suggestion": {name: summarize_row(v) for name, v in qs_rows.items()},
        "table3_baselines": qs_baselines,
        "table4_intent": {
            **{name: res["model"] for name, res in intent.items()},
            "majority class": intent["MUVCOG-M"]["majority"],
        },
        "table2_click": {
            **{name: summarize_row(v) for name, v in clicks.items()},
            "popularity": click_baseline,
        },
        "claims": claims,
        "settings": {k: v for k, v in vars(args).items()},
        "seconds": round(time.time() - start, 1),
        "seconds_note": SECONDS_NOTE,
    }
    print(json.dumps({"claims": claims}, indent=1))
    if args.dry_run:
        return figures
    from ._common import write_result

    m = splits
    data = (
        f"synthetic store (default preset, seed {args.seed}, {args.num_sessions} sessions, query reformulation "
        f"mix, image/product query rates 0.6/0.6, sessions with >= 2 queries): {len(m.train)} train / {len(m.validation)} validation / "
        f"{len(m.test)} test sessions; word2vec (skip-gram, 50-d) on the training queries and catalogue titles"
    )
    print(write_result(args.name, figures, data))
    return figures


if __name__ == "__main__":
    main()
