"""CERES pretraining throughput next to a plain BERT masked LM of the same item-encoder size, on the same tokens.

CPU (default): sessions/s and tokens/s of one optimiser step (forward, backward, Adam) of ``CeresForPreTraining``
and of ``transformers.BertForMaskedLM`` fed the very same masked sequences (BERT sees each item sequence alone;
CERES adds the GAT and the conditioned cross-attention); the paper's base size (12x768 item encoder, 2-layer GAT,
3-layer conditioned Transformer) parameter count and its CPU sessions/s at a small batch.

GPU (``--device cuda``): the same in bf16 autocast, plus the data-wait share of a real loader loop (collation
time / wall time) and the projected time for the paper's 468,199,822 sessions on 16 GPUs (one epoch, linear
scaling assumed). Usage::

    .venv/bin/python -m benchmarks.ceres_speed                 # CPU -> benchmarks/results/ceres_speed_cpu.json
    .venv/bin/python -m benchmarks.ceres_speed --device cuda   # GPU -> benchmarks/results/ceres_speed_cuda.json
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from transformers import BertConfig, BertForMaskedLM

from session_transformers.data.synthetic import SyntheticStore, SyntheticStoreConfig
from session_transformers.models.ceres import (
    CeresConfig,
    CeresForPreTraining,
    CeresMaskingCollator,
    CeresProcessor,
)
from session_transformers.models.ceres.processing_ceres import catalogue_attribute_names, iter_corpus

from ._common import time_calls, write_result

PAPER_SESSIONS = 468_199_822


def timed_steps(model, batches, device: str, steps: int, warmup: int, bf16: bool, bert: bool) -> float:
    """Mean seconds per optimiser step over ``steps`` batches after ``warmup`` (:func:`time_calls`)."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()

    def train_step(b) -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            if bert:
                loss = model(
                    input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"]
                ).loss
            else:
                loss = model(**b).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return time_calls(train_step, batches, repeats=steps, warmup=warmup).mean


def bert_like(cfg: CeresConfig) -> BertForMaskedLM:
    return BertForMaskedLM(
        BertConfig(
            vocab_size=cfg.vocab_size,
            hidden_size=cfg.hidden_size,
            num_hidden_layers=cfg.num_hidden_layers,
            num_attention_heads=cfg.num_attention_heads,
            intermediate_size=cfg.intermediate_size,
            max_position_embeddings=cfg.max_position_embeddings,
        )
    )


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def main(argv: list[str] | None = None) -> None:
    load_at_start = os.getloadavg()[0]
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--batch-size", type=int, default=16, help="sessions per step (small config)")
    p.add_argument(
        "--base-batch-size", type=int, default=2, help="sessions per step at the paper's base size"
    )
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--base-steps", type=int, default=2)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--num-sessions", type=int, default=1000)
    p.add_argument("--results-dir", default=None)
    p.add_argument(
        "--toy-base",
        action="store_true",
        help="stand a 2x64 item encoder in for the paper's base size (for dry runs of the GPU suite)",
    )
    a = p.parse_args(argv)
    device = a.device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device")
    if device == "cpu":
        torch.set_num_threads(min(2, os.cpu_count() or 1))
    torch.manual_seed(0)
    store = SyntheticStore(dataclasses.replace(SyntheticStoreConfig(), num_sessions=a.num_sessions, seed=0))
    sessions = [
        s
        for s in store.iter_sessions(0, a.num_sessions)
        if any(ev["subject"] != "image_query" for ev in s["events"])
    ]
    catalogue = {r["item_id"]: r for r in store.catalogue}
    processor = CeresProcessor.train_tokenizer(
        iter_corpus(sessions, catalogue), attribute_names=catalogue_attribute_names(catalogue)
    )
    vocab = len(processor.tokenizer)
    figures: dict = {"device": device, "vocab_size": vocab}

    def batches_for(cfg: CeresConfig, bs: int, n: int) -> list[dict]:
        collator = CeresMaskingCollator(processor, catalogue, cfg, generator=torch.Generator().manual_seed(0))
        out = []
        for i in range(n):
            b = collator(sessions[i * bs : (i + 1) * bs])
            out.append({k: v.to(device) for k, v in b.items()})
        return out

    # 1. Small config: CERES vs BERT-MLM of the same item-encoder size, same tokens.
    small = CeresConfig(
        vocab_size=vocab,
        hidden_size=a.hidden,
        num_hidden_layers=a.layers,
        num_attention_heads=4,
        intermediate_size=4 * a.hidden,
        num_cross_attention_layers=1,
        retrieval_projection_size=a.hidden,
        max_position_embeddings=512,
    )
    batches = batches_for(small, a.batch_size, 3)
    # one call collates 3 batches: seconds per batch
    collate_s = time_calls(lambda n: batches_for(small, a.batch_size, n), [3], repeats=1, warmup=0).mean / 3
    tokens = sum(int(b["attention_mask"].sum()) for b in batches) / len(batches)
    bf16 = device == "cuda"
    rows = {}
    for name, model, is_bert in (
        ("CERES", CeresForPreTraining(small), False),
        ("BERT-MLM", bert_like(small), True),
    ):
        model.to(device)
        sec = timed_steps(model, batches, device, a.steps, 1, bf16, is_bert)
        rows[name] = {
            "parameters": n_params(model),
            "step_seconds": round(sec, 4),
            "sessions_per_s": round(a.batch_size / sec, 2),
            "tokens_per_s": round(tokens / sec, 1),
        }
        print(f"{name}: {rows[name]}", flush=True)
    rows["CERES / BERT step time"] = round(
        rows["CERES"]["step_seconds"] / rows["BERT-MLM"]["step_seconds"], 2
    )
    figures["small"] = {
        "config": f"item encoder {a.layers}x{a.hidden} (4 heads, FFN {4 * a.hidden}), 2-layer GAT, "
        f"1 cross-attention layer, 4 latent tokens; {a.batch_size} sessions per step "
        f"({tokens:.0f} non-pad tokens)",
        "precision": "bf16 autocast" if bf16 else "fp32",
        "collate_seconds_per_batch": round(collate_s, 4),
        **rows,
    }
    # Data-wait share: the loader's collation (masking, tokenisation, graphs) in the main process, per step.
    figures["small"]["data_wait_share_if_collated_inline"] = round(
        collate_s / (collate_s + rows["CERES"]["step_seconds"]), 3
    )

    # 2. The paper's base size.
    if a.toy_base:
        base = CeresConfig(
            vocab_size=30522,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=128,
            num_cross_attention_layers=1,
            retrieval_projection_size=64,
        )
    else:
        base = CeresConfig(vocab_size=30522)
    base_model = CeresForPreTraining(base)
    figures["paper_base"] = {
        "config": "TOY stand-in (--toy-base): 2x64 item encoder"
        if a.toy_base
        else "12x768 item encoder, 2-layer GAT, 3-layer conditioned Transformer, vocab 30522",
        "parameters": n_params(base_model),
        "parameters_with_our_vocab": n_params(base_model) - (30522 - vocab) * base.hidden_size,
    }
    base_model.resize_token_embeddings(vocab)
    base_model.to(device)
    bb = batches_for(base, a.base_batch_size, 2)
    sec = timed_steps(base_model, bb, device, a.base_steps, 1, bf16, False)
    base_tokens = sum(int(b["attention_mask"].sum()) for b in bb) / len(bb)
    figures["paper_base"].update(
        batch_sessions=a.base_batch_size,
        step_seconds=round(sec, 3),
        sessions_per_s=round(a.base_batch_size / sec, 3),
        tokens_per_s=round(base_tokens / sec, 1),
    )
    if device == "cuda":
        bert = bert_like(base).to(device)
        bert_sec = timed_steps(bert, bb, device, a.base_steps, 1, bf16, True)
        per_gpu = a.base_batch_size / sec
        figures["paper_base"].update(
            bert_step_seconds=round(bert_sec, 4),
            ceres_over_bert=round(sec / bert_sec, 2),
            projected_hours_468M_sessions_16_gpus=round(PAPER_SESSIONS / (per_gpu * 16) / 3600, 1),
            data_wait_share_if_collated_inline=round(collate_s / (collate_s + sec), 3),
        )
        figures["notes"] = "GPU figures measured with bf16 autocast on " + torch.cuda.get_device_name(0)
    else:
        figures["notes"] = (
            "CPU only: no GPU was available for this run, so the GPU figures (bf16 step time vs "
            "BERT, data-wait share on GPU, projected time for 468M sessions on 16 GPUs) were not "
            "produced; run with --device cuda on a GPU machine. CERES and BERT were measured back to "
            "back; the load average below says whether other jobs shared the CPU."
        )
    figures["load_average_1min_at_start_and_end"] = [round(load_at_start, 2), round(os.getloadavg()[0], 2)]
    print(figures, flush=True)
    name = "ceres_speed_cpu" if device == "cpu" else "ceres_speed_cuda"
    data = (
        f"synthetic store (seed 0, {a.num_sessions} sessions), sessions encoded by a CeresProcessor fitted on "
        "them (default sequence lengths) and masked by CeresMaskingCollator; BERT gets the same masked rows"
    )
    print(write_result(name, figures, data, results_dir=a.results_dir))


if __name__ == "__main__":
    main()
