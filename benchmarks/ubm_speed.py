"""UBM speed: pretraining throughput next to a plain BertModel on the same tokens, candidate-pool embedding time,
and the peak memory of a paper-size stage-2 step.

1. **Stage 1** (interactions/s): one optimiser step (forward, backward, AdamW) of ``UbmForPreTraining`` on a batch
   of N item pairs from the synthetic store (2N items + 2N Item-Token-Masked copies = 4N interaction rows, losses
   1 and 2), next to ``transformers.BertModel`` of the same size fed the very same 4N rows (loss: the squared
   ``[CLS]`` output, an objective of negligible cost). Target: UBM costs at most 1.3x BERT per interaction.
2. **Stage 2** (sessions/s and interactions/s): the same for a batch of sessions with their reordered and masked
   views (3 x the session's interactions through BERT, then the Session Encoder), next to BertModel on the same
   rows.
3. **Candidate pool**: seconds to embed a 30,000-item pool (items as one-item sessions, ``encode_items``, eval,
   no gradients) for next-item inference.
4. **Peak memory** of one stage-2 step at the paper's batch, 128 sessions x 32 interactions x 64 tokens (random
   token ids; x3 views): peak RSS on CPU (``ru_maxrss``, the process's high-water mark, measured in a fresh
   subprocess), ``torch.cuda.max_memory_allocated`` on GPU; then the same step with activation checkpointing
   (``--activation-checkpointing`` in the trainers: the Interaction Encoder is recomputed in the backward pass,
   per chunk of ``checkpoint_chunk_size`` interaction rows), with its time. Stage 2's throughput (2.) is also measured with checkpointing, for its cost in time.

Sizes are the paper's (both encoders 4 layers of 256) unless ``--hidden-size`` / ``--layers`` say otherwise.
Run it alone on an idle machine (timings under contention are wrong)::

    .venv/bin/python -m benchmarks.ubm_speed                  # -> benchmarks/results/ubm_speed_cpu.json
    .venv/bin/python -m benchmarks.ubm_speed --device cuda    # -> benchmarks/results/ubm_speed_cuda.json
    .venv/bin/python -m benchmarks.ubm_speed --dry-run        # tiny sizes, a few steps, nothing written
    .venv/bin/python -m benchmarks.ubm_speed --dry-run --results-dir DIR   # ... written to DIR (the GPU suite's CI)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from transformers import BertModel

from session_transformers.data.synthetic import SyntheticStore, SyntheticStoreConfig
from session_transformers.models.ubm import (
    UbmConfig,
    UbmForPreTraining,
    UbmModel,
    UbmProcessor,
    UbmStage1Collator,
    UbmStage2Collator,
    next_item_pairs,
)
from session_transformers.models.ubm.processing_ubm import catalogue_attribute_names, iter_corpus
from session_transformers.models.ubm.recipe import text_session

from ._common import REPO_ROOT, peak_rss_mib, time_calls, write_result


def _to(batch: dict, device: str) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


def timed(step, batches, device: str, steps: int, warmup: int) -> float:
    """Median seconds of ``step(batch)`` over ``steps`` batches after ``warmup`` (:func:`time_calls`)."""
    return time_calls(step, batches, repeats=steps, warmup=warmup).median


def ubm_step(model, optimizer):
    def step(batch):
        loss = model(**batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def bert_step(bert, optimizer, rows_of):
    def step(batch):
        ids, mask = rows_of(batch)
        loss = bert(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0].pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def stage1_rows(batch):
    return (
        torch.cat([batch["item_input_ids"], batch["masked_item_input_ids"]]),
        batch["item_attention_mask"].repeat(2, 1),
    )


def stage2_rows(batch):
    ids = torch.cat([batch["input_ids"], batch["reordered_input_ids"], batch["masked_input_ids"]])
    mask = torch.cat([batch["attention_mask"], batch["reordered_attention_mask"], batch["attention_mask"]])
    return ids, mask


def memory_step(args) -> dict:
    """One stage-2 step at batch x 32 x 64 (random ids); runs in a fresh process (``--memory-only``)."""
    device = args.device
    config = _config(args, vocab_size=30522)
    model = UbmForPreTraining(config).to(device).train()
    if args.activation_checkpointing:
        model.activation_checkpointing_enable()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-5)
    b, slots, tokens = args.memory_batch, 32, 64
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (b * slots, tokens), generator=g)
    ids[:, 0] = 101
    batch = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "interaction_mask": torch.ones(b, slots, dtype=torch.bool),
        "reordered_input_ids": ids.flip(0),
        "reordered_attention_mask": torch.ones_like(ids),
        "masked_input_ids": ids,
    }
    before = peak_rss_mib()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    first = time_calls(ubm_step(model, optimizer), [_to(batch, device)], repeats=1, warmup=0)
    out = {
        "batch": f"{b} sessions x {slots} interactions x {tokens} tokens (x3 views)",
        "activation checkpointing": args.activation_checkpointing,
        "seconds (one step, the first)": first.mean,
    }
    if device == "cuda":
        out["peak_cuda_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    out["peak_rss_mib"] = peak_rss_mib()
    out["peak_rss_before_step_mib"] = before
    return out


def _config(args, vocab_size: int) -> UbmConfig:
    h, layers = args.hidden_size, args.layers
    heads = max(1, h // 64)
    return UbmConfig(
        vocab_size=vocab_size,
        hidden_size=h,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * h,
        num_session_layers=layers,
        session_num_attention_heads=heads,
        session_intermediate_size=4 * h,
    )


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--hidden-size", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--stage1-pairs", type=int, default=64, help="item pairs per stage-1 step (paper: 512)")
    p.add_argument("--stage2-sessions", type=int, default=16, help="sessions per stage-2 step (paper: 128)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--pool-size", type=int, default=30_000)
    p.add_argument("--memory-batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument(
        "--dry-run", action="store_true", help="tiny sizes, 2 steps, a 300-item pool; nothing written"
    )
    p.add_argument(
        "--results-dir",
        default=None,
        help="where the result goes (default benchmarks/results; dry run: nowhere)",
    )
    p.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--activation-checkpointing", action="store_true", help=argparse.SUPPRESS)
    p.add_argument(
        "--memory-fallback-batches",
        type=int,
        nargs="*",
        default=[8, 16, 32],
        help="stage-2 batches measured when --memory-batch does not fit",
    )
    args = p.parse_args(argv)
    if args.dry_run:
        args.hidden_size, args.layers, args.steps, args.warmup = 32, 1, 2, 1
        args.stage1_pairs, args.stage2_sessions, args.pool_size, args.memory_batch = 8, 4, 300, 2
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_only:
        print(json.dumps(memory_step(args)))
        return
    device = args.device
    torch.manual_seed(0)

    # data: the synthetic store, with enough products for the pool
    per_leaf = max(25, -(-args.pool_size // 160))
    store = SyntheticStore(
        SyntheticStoreConfig(num_sessions=2000, items_per_leaf=per_leaf, image_dim=16, image_projection_dim=8)
    )
    sessions = [text_session(s) for s in store.iter_sessions(0, 2000)]
    sessions = [s for s in sessions if s["events"]]
    catalogue = {r["item_id"]: r for r in store.catalogue}
    processor = UbmProcessor.train_tokenizer(
        iter_corpus(sessions, catalogue),
        vocab_size=8000,
        attribute_names=catalogue_attribute_names(catalogue),
    )
    config = _config(args, len(processor.tokenizer))
    figures: dict = {
        "model": f"UBM {args.layers}+{args.layers} layers, hidden {args.hidden_size}",
        "device": device,
        "threads": torch.get_num_threads(),
    }

    def seconds(step, batches) -> float:
        return timed(step, batches, device, args.steps, args.warmup)

    # 1. stage 1
    pairs = next_item_pairs(sessions)
    c1 = UbmStage1Collator(processor, catalogue, config, generator=torch.Generator().manual_seed(0))
    n = args.stage1_pairs
    batches = [_to(c1(pairs[i * n : (i + 1) * n]), device) for i in range(args.steps + args.warmup)]
    model = UbmForPreTraining(config).to(device).train()
    bert = BertModel(config.interaction_encoder_config(), add_pooling_layer=False).to(device).train()
    t_ubm = seconds(
        ubm_step(model, torch.optim.AdamW(model.ubm.interaction_encoder.parameters(), lr=3e-5)), batches
    )
    t_bert = seconds(bert_step(bert, torch.optim.AdamW(bert.parameters(), lr=3e-5), stage1_rows), batches)
    rows = 4 * n
    figures["stage 1"] = {
        "pairs per step": n,
        "interaction rows per step": rows,
        "UBM interactions/s": rows / t_ubm,
        "BertModel interactions/s": rows / t_bert,
        "UBM / BertModel time per interaction": t_ubm / t_bert,
        "target (at most)": 1.3,
    }

    # 2. stage 2
    c2 = UbmStage2Collator(processor, catalogue, config, generator=torch.Generator().manual_seed(0))
    b = args.stage2_sessions
    batches = [_to(c2(sessions[i * b : (i + 1) * b]), device) for i in range(args.steps + args.warmup)]
    t_ubm = seconds(ubm_step(model, torch.optim.AdamW(model.parameters(), lr=3e-5)), batches)
    t_bert = seconds(bert_step(bert, torch.optim.AdamW(bert.parameters(), lr=3e-5), stage2_rows), batches)
    model.activation_checkpointing_enable()
    t_ckpt = seconds(ubm_step(model, torch.optim.AdamW(model.parameters(), lr=3e-5)), batches)
    model.activation_checkpointing_disable()
    interactions = sum(int(x["interaction_mask"].sum()) for x in batches) / len(batches)
    figures["stage 2"] = {
        "sessions per step": b,
        "interactions per step (x3 views)": 3 * interactions,
        "UBM sessions/s": b / t_ubm,
        "UBM interactions/s": 3 * interactions / t_ubm,
        "BertModel interactions/s": 3 * interactions / t_bert,
        "UBM / BertModel time per interaction": t_ubm / t_bert,
        "UBM sessions/s with activation checkpointing": b / t_ckpt,
        "time per step with / without activation checkpointing": t_ckpt / t_ubm,
    }

    # 3. candidate pool
    base = UbmModel(config).to(device).eval()
    items = list(catalogue)[: args.pool_size]
    base.encode_items(items[:64], processor, catalogue)  # warm-up
    embedded = []
    pool = time_calls(
        lambda xs: embedded.append(base.encode_items(xs, processor, catalogue, batch_size=512)),
        [items],
        repeats=1,
        warmup=0,
    )
    emb = embedded[-1]
    figures["candidate pool"] = {
        "items": len(items),
        "seconds (tokenise + embed)": pool.mean,
        "embedding shape": list(emb.shape),
    }

    # 4. peak memory of a stage-2 step at the paper's batch, in a fresh process
    # The paper's batch first; on a CPU machine it may not fit: then it is recorded as killed (out of memory)
    # and smaller batches are measured so that the growth per session shows.
    memory = {}

    def measure(batch: int, checkpointing: bool) -> bool:
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.ubm_speed",
            "--memory-only",
            "--device",
            device,
            "--hidden-size",
            str(args.hidden_size),
            "--layers",
            str(args.layers),
            "--memory-batch",
            str(batch),
        ]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        if checkpointing:
            cmd.append("--activation-checkpointing")
        key = f"batch {batch}" + (", activation checkpointing" if checkpointing else "")
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT)
        if done.returncode == 0:
            memory[key] = json.loads(done.stdout.strip().splitlines()[-1])
        else:
            memory[key] = {
                "failed": f"exit {done.returncode}"
                + (" (SIGKILL: out of memory on this machine)" if done.returncode == -9 else ""),
                "stderr_tail": done.stderr[-300:],
            }
        return done.returncode == 0

    for batch in dict.fromkeys([args.memory_batch, *args.memory_fallback_batches]):
        if measure(batch, checkpointing=False) and batch == args.memory_batch:
            break
    measure(args.memory_batch, checkpointing=True)
    figures["stage 2 peak memory"] = memory

    data = (
        f"synthetic store (seed 0, {len(sessions)} sessions, {len(catalogue)} products); WordPiece vocabulary "
        f"{len(processor.tokenizer)}"
    )
    print(json.dumps(figures, indent=2))
    if args.dry_run and not args.results_dir:
        print("dry run: nothing written")
        return
    path = write_result(f"ubm_speed_{device}", figures, data, results_dir=args.results_dir)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
