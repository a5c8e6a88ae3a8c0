"""The Home Depot product-search benchmark's data and constants: the split terms and the catalogue (:class:`Task`),
the pair sampler, the scales and the timing helpers that every row shares (``product_search_homedepot.py``)."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]

NAME = "product_search_homedepot"
METRICS = ("NDCG@10", "MRR@10", "Recall@100")
POSITIVE_GRADE = 2.0
"""A training term's products graded at least this are its positives (gain >= 1 in the NDCG)."""
TIES = "average"
BM25_ROW = "BM25"
MINILM_ROW = "MiniLM mean-pooled (frozen)"
ROWS = (
    BM25_ROW,
    MINILM_ROW,
    "CERES pretrained + fine-tuned",
    "CERES fine-tuned (from MiniLM)",
    "CERES fine-tuned (from scratch)",
    "UBM fine-tuned (from MiniLM)",
    "Product BYOL (frozen)",
    "Product BYOL fine-tuned",
)
OURS = ROWS[2:]
SCALES: dict[str, dict[str, Any]] = {
    # cpu: four MiniLM-size encoders each embed all 54,667 titles (about 15 CPU-min each on this benchmark's
    # AMD EPYC: ~60 titles per CPU second, 88% of it in the linear layers), which sets the floor of the run; the
    # step counts are cut to what fits the rest in an hour alone on 2 cores (the 2026-12-05 run at 32 title
    # tokens, 80 / 100 / 300 / 150 / 150 steps took 87 min, its first 11 min beside other jobs)
    "cpu": dict(
        title_tokens=28,
        query_tokens=16,
        encode_batch=128,
        finetune_steps=64,
        finetune_batch=64,
        finetune_lr=5e-5,
        pretrain_steps=60,
        pretrain_batch=16,
        pretrain_products=3,
        pretrain_lr=5e-5,
        scratch_steps=200,
        scratch_batch=64,
        scratch_lr=5e-4,
        scratch_vocab=16_000,
        byol_steps=100,
        byol_batch=128,
        byol_vocab=30_000,
        byol_finetune_steps=100,
        byol_finetune_batch=128,
        byol_finetune_lr=1e-3,
    ),
    "paper": dict(  # the papers' fine-tuning length (CERES: 10 epochs, batch 64) and longer pretraining
        title_tokens=64,
        query_tokens=32,
        encode_batch=512,
        finetune_steps=1_110,  # 10 epochs of the 7,077 training terms at batch 64
        finetune_batch=64,
        finetune_lr=5e-5,
        pretrain_steps=4_000,
        pretrain_batch=64,
        pretrain_products=8,
        pretrain_lr=5e-5,
        scratch_steps=5_000,
        scratch_batch=128,
        scratch_lr=5e-4,
        scratch_vocab=30_522,
        byol_steps=3_000,
        byol_batch=1_024,
        byol_vocab=30_000,
        byol_finetune_steps=2_000,
        byol_finetune_batch=256,
        byol_finetune_lr=1e-3,
    ),
    "dry-run": dict(  # a slice of the data (terms per split, extra catalogue products) and tiny models
        slice_terms=(60, 30, 30),
        slice_extra_products=200,
        tiny_encoder=True,
        title_tokens=24,
        query_tokens=12,
        encode_batch=64,
        finetune_steps=3,
        finetune_batch=8,
        finetune_lr=5e-4,
        pretrain_steps=2,
        pretrain_batch=4,
        pretrain_products=2,
        pretrain_lr=5e-4,
        scratch_steps=3,
        scratch_batch=8,
        scratch_lr=5e-4,
        scratch_vocab=600,
        byol_steps=3,
        byol_batch=16,
        byol_vocab=400,
        byol_finetune_steps=3,
        byol_finetune_batch=8,
        byol_finetune_lr=1e-3,
    ),
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()


# --- data ------------------------------------------------------------------------------------------------


class Task:
    """The split terms, the catalogue (titles in a fixed order) and the judged products of every term."""

    def __init__(self, data_path: str, settings: dict[str, Any], seed: int):
        from session_transformers.data import load_homedepot

        splits = load_homedepot(data_path, seed=seed)
        self.statistics = splits.statistics
        rows = {name: [dict(r) for r in getattr(splits, name)] for name in ("train", "validation", "test")}
        ids, titles = splits.catalogue["item_id"], splits.catalogue["title"]
        # what the text models read of a product: its title (no "unknown" category sequence)
        self.catalogue = {i: {"item_id": i, "title": t} for i, t in zip(ids, titles, strict=True)}
        rng = random.Random(seed)
        if settings.get("slice_terms"):  # dry run: a few terms per split
            rows = {
                name: rng.sample(rows[name], n)
                for name, n in zip(("train", "validation", "test"), settings["slice_terms"], strict=True)
            }
        if settings.get("slice_terms") or settings.get("pool_extra_products") is not None:
            # a smaller pool to rank (dry runs, quick checks during development): the judged products of every
            # term kept (of the evaluated terms only, with pool_extra_products) plus that many others
            ranked = (
                ("validation", "test") if settings.get("pool_extra_products") is not None else tuple(rows)
            )
            keep = {i for split in ranked for r in rows[split] for i in r["item_ids"]}
            extra = settings.get("pool_extra_products", settings.get("slice_extra_products", 0))
            keep |= set(rng.sample(sorted(set(ids) - keep), extra))
            pairs = [(i, t) for i, t in zip(ids, titles, strict=True) if i in keep]
            ids, titles = [i for i, _ in pairs], [t for _, t in pairs]
        self.rows, self.item_ids, self.titles = rows, list(ids), list(titles)
        self.index = {item: n for n, item in enumerate(self.item_ids)}

    def judged(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, R)`` catalogue indices of each term's judged products (``-1`` pads) and their grades."""
        rows = self.rows[split]
        width = max(len(r["item_ids"]) for r in rows)
        judged = torch.full((len(rows), width), -1, dtype=torch.long)
        grades = torch.zeros(len(rows), width)
        for n, r in enumerate(rows):
            judged[n, : len(r["item_ids"])] = torch.tensor([self.index[i] for i in r["item_ids"]])
            grades[n, : len(r["relevance"])] = torch.tensor(r["relevance"])
        return judged, grades

    def positives(self) -> list[tuple[dict, list[str]]]:
        """Training terms with their products graded >= :data:`POSITIVE_GRADE` (terms with none are left out)."""
        out = []
        for r in self.rows["train"]:
            items = [i for i, g in zip(r["item_ids"], r["relevance"], strict=True) if g >= POSITIVE_GRADE]
            if items:
                out.append((r, items))
        return out

    def terms(self, split: str) -> list[str]:
        return [r["search_term"] for r in self.rows[split]]

    def sessions(self, split: str) -> list[dict]:
        return [{"session_id": r["session_id"], "events": r["events"]} for r in self.rows[split]]


_TASKS: dict[tuple, Task] = {}


def load_task(settings: dict[str, Any]) -> Task:
    """The task of these settings, read once per process."""
    key = (
        settings["data_path"],
        str(settings.get("slice_terms")),
        settings.get("slice_extra_products"),
        settings.get("pool_extra_products"),
        settings["seed"],
    )
    if key not in _TASKS:
        _TASKS[key] = Task(settings["data_path"], settings, settings["seed"])
    return _TASKS[key]


class PairSampler:
    """Batches of (term, one of its positives): every epoch visits each term once in a new seeded order and draws
    one of its positives afresh; ``labels`` mark every candidate that is a positive of the row's term."""

    def __init__(self, positives: list[tuple[dict, list[str]]], batch_size: int, seed: int):
        self.positives, self.batch_size = positives, min(batch_size, len(positives))
        self.rng = random.Random(seed)
        self.order: list[int] = []
        self.sets = [set(items) for _, items in positives]

    def next(self) -> tuple[list[dict], list[int], list[str], torch.Tensor]:
        """``(sessions, drawn, candidates, labels)``: the batch's one-query sessions, the candidate column of each
        row's drawn product, the distinct candidates (product IDs) and ``(B, C)`` labels (1: a positive of the
        row's term, drawn for it or for another row)."""
        if len(self.order) < self.batch_size:
            fresh = list(range(len(self.positives)))
            self.rng.shuffle(fresh)
            self.order += fresh
        picked, self.order = self.order[: self.batch_size], self.order[self.batch_size :]
        targets = [self.rng.choice(self.positives[i][1]) for i in picked]
        candidates = list(dict.fromkeys(targets))  # one column per distinct product, in first-seen order
        column = {c: n for n, c in enumerate(candidates)}
        labels = torch.tensor([[float(c in self.sets[i]) for c in candidates] for i in picked])
        sessions = [
            {"session_id": self.positives[i][0]["session_id"], "events": self.positives[i][0]["events"]}
            for i in picked
        ]
        return sessions, [column[t] for t in targets], candidates, labels


# --- timing helpers ----------------------------------------------------------------------------------------


class Clock:
    """Accumulated seconds per named part (batch building, model compute...): wall time, and this process's CPU
    time, which on a shared machine is the better estimate of the wall time the part takes alone (one thread)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def part(self, name: str):
        clock = self

        class _Part:
            def __enter__(self):
                self.start, self.cpu = time.perf_counter(), time.process_time()

            def __exit__(self, *exc):
                clock.seconds[name] = clock.seconds.get(name, 0.0) + time.perf_counter() - self.start
                clock.cpu[name] = clock.cpu.get(name, 0.0) + time.process_time() - self.cpu

        return _Part()

    def rounded(self) -> dict[str, float]:
        return {k: round(v, 1) for k, v in self.seconds.items()}

    def cpu_total(self) -> float:
        return round(sum(self.cpu.values()), 1)


def autocast(settings: dict[str, Any]):
    if settings.get("bf16"):
        return torch.autocast(settings["device"].split(":")[0], dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def by_length(lengths: list[int], batch: int) -> list[list[int]]:
    """Index batches of similar length (longest first), so that padding costs little."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch] for i in range(0, len(order), batch)]


def normalised(chunks: list[tuple[list[int], torch.Tensor]], n: int) -> np.ndarray:
    """Scatter batches of (indices, vectors) back into one L2-normalised ``(n, d)`` float32 array."""
    dim = chunks[0][1].shape[1]
    out = torch.zeros(n, dim)
    for idx, vec in chunks:
        out[torch.tensor(idx)] = F.normalize(vec.float().cpu(), dim=-1)
    return out.numpy()


def optimizer_and_schedule(model, lr: float, steps: int, weight_decay: float = 0.01):
    from transformers import get_linear_schedule_with_warmup

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    return optimizer, get_linear_schedule_with_warmup(optimizer, max(1, steps // 100), steps)


def train_loop(model, steps: int, lr: float, step_loss, settings, clock: Clock, losses: list) -> None:
    """AdamW, 1 % linear warm-up then linear decay, clipping at 1.0; ``step_loss(clock)`` builds a batch and returns
    the loss. Losses are logged at ten points."""
    model.train()
    optimizer, schedule = optimizer_and_schedule(model, lr, steps)
    for step in range(steps):
        loss = step_loss(clock)
        with clock.part("backward and update"):
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
        if step % max(1, steps // 10) == 0 or step == steps - 1:
            losses.append([step + 1, round(loss.item(), 4)])
    model.eval()
