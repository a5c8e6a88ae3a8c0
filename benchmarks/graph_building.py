"""Graph-building speed on one CPU core: session -> graph, and graphs -> one batch.

    python -m benchmarks.graph_building                      # every workload
    python -m benchmarks.graph_building --only transition    # workloads whose name starts with "transition"

Workloads (the ``WORKLOADS`` table; add a graph by adding an entry):

- ``transition/diginetica_prefixes``: SR-GNN transition graphs of every prefix (the model inputs of the SR-GNN
  protocol) of the first 20,000 sessions of ``../shared/data/diginetica/train_sessions.txt`` (skipped when
  absent);
- ``transition/random_sequences``: random item sequences of length 1..50 (Diginetica-like length law);
- ``muvcog_*/taobao_like``: random multi-modal multi-query sessions with the statistics of the MUVCOG paper's
  Clothes data (Table 1: 7.2 queries, 2.8 words per keyword query, 14 words per product query, a product query
  always with an image query, 512-d images);
- ``muvcog_*/synthetic_store``: sessions of ``SyntheticStore(SyntheticStoreConfig.tiny())`` with a query.

Each workload reports graphs built per second (``torch.set_num_threads(1)``, best of ``--repeats`` timed passes
after a warm-up) and, separately, graphs per second through ``Batch.from_data_list`` in batches of
``--batch-size``. Results go to ``benchmarks/results/graph_building.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import Batch

from session_transformers.graphs.ceres import ceres_session_graph
from session_transformers.graphs.muvcog import (
    batch_views_from_queries,
    build_global_view,
    build_local_view,
    build_views,
    session_queries,
)
from session_transformers.graphs.transition import session_transition_graph

from ._common import time_calls

ROOT = Path(__file__).resolve().parents[1]
DIGINETICA = ROOT.parent / "shared" / "data" / "diginetica" / "train_sessions.txt"


@dataclass
class Workload:
    """Inputs and a builder: ``build(input)`` returns one graph (or a tuple of graphs, batched per position).

    With ``batched=True`` each input is a list of sessions and ``build`` returns their batched graphs directly
    (no separate batching step).
    """

    data: str
    inputs: list[Any]
    build: Callable[[Any], Any]
    batched: bool = False


# -- inputs -------------------------------------------------------------------------------------------------


def diginetica_prefixes(max_lines: int = 20_000) -> list[list[int]]:
    """Every input prefix ``s[:t]``, ``1 <= t < len(s)``, of the first ``max_lines`` training sessions."""
    prefixes = []
    with DIGINETICA.open() as f:
        for n, line in enumerate(f):
            if n >= max_lines:
                break
            items = [int(tok) for tok in line.split()]
            prefixes += [items[:t] for t in range(1, len(items))]
    return prefixes


def random_sequences(n: int = 20_000, num_items: int = 40_000, seed: int = 0) -> list[list[int]]:
    r = random.Random(seed)
    lengths = [
        min(50, 1 + int(r.expovariate(1 / 4))) for _ in range(n)
    ]  # mean ~4.5, like Diginetica prefixes
    return [[r.randrange(1, num_items) for _ in range(length)] for length in lengths]


def taobao_like_sessions(n: int = 2_000, vocab_size: int = 50_000, image_dim: int = 512, seed: int = 0):
    """Random MM sessions with the MUVCOG paper's Clothes statistics; words are already token ids."""
    r = random.Random(seed)
    sessions = []
    for i in range(n):
        events, ts = [], 0.0
        for q in range(max(2, round(r.gauss(7.2, 2.5)))):
            ts += 30.0
            if q == 0 or r.random() < 0.55:  # a session starts with a keyword query
                words = [str(r.randrange(vocab_size)) for _ in range(max(1, round(r.gauss(2.8, 1.0))))]
                events.append(_query(" ".join(words), "keyword_query", ts))
            else:  # "search similar": a product query cut from a title, with its image query
                words = [str(r.randrange(vocab_size)) for _ in range(max(1, round(r.gauss(14, 4))))]
                events.append(_query(" ".join(words), "product_query", ts))
                image = [r.gauss(0, 1) for _ in range(image_dim)]
                events.append({**_query(None, "image_query", ts), "image": image})
        sessions.append({"session_id": f"tb{i}", "events": events})
    return sessions


def _query(text, subject, ts):
    return {
        "action": "search",
        "timestamp": ts,
        "subject": subject,
        "item_id": None,
        "query": text,
        "image": None,
    }


def _int_tokens(text: str) -> list[int]:
    return [int(w) for w in text.split()]


def synthetic_store_sessions(n: int = 1_000):
    """Sessions of the tiny synthetic store that hold a query, and a word-id tokenizer over its vocabulary."""
    from session_transformers.data.synthetic import SyntheticStore, SyntheticStoreConfig, tokenize

    store = SyntheticStore(SyntheticStoreConfig.tiny(num_sessions=n))
    sessions = [s for s in store.iter_sessions(0, n) if any(e["subject"] != "item" for e in s["events"])]
    vocab: dict[str, int] = {}

    def to_ids(text: str) -> list[int]:
        return [vocab.setdefault(w, len(vocab)) for w in tokenize(text)]

    return sessions, to_ids, store.config.image_dim


# -- workloads ----------------------------------------------------------------------------------------------


def _transition_diginetica() -> Workload | None:
    if not DIGINETICA.exists():
        return None
    prefixes = diginetica_prefixes()
    return Workload(
        f"{len(prefixes):,} prefixes of the first 20,000 Diginetica train sessions ({DIGINETICA.name})",
        prefixes,
        session_transition_graph,
    )


def _transition_random() -> Workload:
    return Workload(
        "20,000 random item sequences, lengths 1..50 (mean ~4.5)",
        random_sequences(),
        session_transition_graph,
    )


def _muvcog(builder: Callable, source: str) -> Callable[[], Workload]:
    def make() -> Workload:
        if source == "taobao_like":
            sessions, tokenize, dim = taobao_like_sessions(), _int_tokens, 512
            data = (
                f"{len(sessions):,} random MM sessions with MUVCOG Table 1 (Clothes) statistics, 512-d images"
            )
        else:
            sessions, tokenize, dim = synthetic_store_sessions()
            data = f"{len(sessions):,} SyntheticStoreConfig.tiny() sessions that contain a query"
        return Workload(data, sessions, lambda s: builder(s, tokenize, image_dim=dim))

    return make


def _muvcog_batched(batch_size: int = 100) -> Workload:
    sessions = taobao_like_sessions()
    chunks = [sessions[i : i + batch_size] for i in range(0, len(sessions), batch_size)]

    def build(chunk):
        return batch_views_from_queries([session_queries(s, _int_tokens) for s in chunk], image_dim=512)

    data = f"the taobao_like sessions, both views built batched (batch_views_from_queries, {batch_size} per batch)"
    return Workload(data, chunks, build, batched=True)


def _ceres_synthetic(n: int = 5_000) -> Workload:
    from session_transformers.data.synthetic import SyntheticStore, SyntheticStoreConfig

    store = SyntheticStore(SyntheticStoreConfig(num_sessions=n))
    sessions = [s["events"] for s in store.iter_sessions(0, n)]
    return Workload(
        f"{n:,} sessions of the default synthetic store (queries, products, actions)",
        sessions,
        ceres_session_graph,
    )


WORKLOADS: dict[str, Callable[[], Workload | None]] = {
    "transition/diginetica_prefixes": _transition_diginetica,
    "transition/random_sequences": _transition_random,
    "muvcog_global/taobao_like": _muvcog(build_global_view, "taobao_like"),
    "muvcog_local/taobao_like": _muvcog(build_local_view, "taobao_like"),
    "muvcog_views/taobao_like": _muvcog(build_views, "taobao_like"),
    "muvcog_views/synthetic_store": _muvcog(build_views, "synthetic_store"),
    "muvcog_views_batched/taobao_like": _muvcog_batched,
    "ceres/synthetic_store": _ceres_synthetic,
}


# -- timing -------------------------------------------------------------------------------------------------


def _best_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Fastest of ``repeats`` calls of ``fn()`` in seconds (:func:`time_calls`, no warm-up), and the last result."""
    out = []
    measured = time_calls(lambda _: out.append(fn()), [None], repeats=repeats, warmup=0)
    return min(measured.times), out[-1]


def _graph_sizes(graphs: list[Any]) -> dict[str, float]:
    """Mean nodes and edges per graph (of the first graph of each tuple: the global view for MUVCOG)."""
    sample = [g[0] if isinstance(g, tuple) else g for g in graphs]
    nodes = sum(g.num_nodes for g in sample) / len(sample)
    edges = sum(g.num_edges for g in sample) / len(sample)
    return {"mean_nodes": round(nodes, 2), "mean_edges": round(edges, 2)}


def run_workload(workload: Workload, repeats: int, batch_size: int) -> dict[str, Any]:
    build, inputs = workload.build, workload.inputs
    for x in inputs[:100]:  # warm-up
        build(x)
    build_s, graphs = _best_time(lambda: [build(x) for x in inputs], repeats)
    if workload.batched:
        n = sum(map(len, inputs))
        return {
            "sessions": n,
            "build_seconds": round(build_s, 4),
            "sessions_per_second": round(n / build_s, 1),
            "microseconds_per_session": round(1e6 * build_s / n, 1),
            "batch_size": len(inputs[0]),
        }
    parts = list(zip(*graphs)) if isinstance(graphs[0], tuple) else [graphs]
    chunks = [[part[i : i + batch_size] for i in range(0, len(part), batch_size)] for part in parts]
    batch_s, _ = _best_time(lambda: [Batch.from_data_list(c) for cs in chunks for c in cs], repeats)
    n = len(inputs)
    return {
        "sessions": n,
        "build_seconds": round(build_s, 4),
        "sessions_per_second": round(n / build_s, 1),
        "microseconds_per_session": round(1e6 * build_s / n, 1),
        "batch_size": batch_size,
        "batching_sessions_per_second": round(n / batch_s, 1),
        "batching_microseconds_per_batch": round(1e6 * batch_s / sum(map(len, chunks)), 1),
        **_graph_sizes(graphs),
    }


def _write(figures: dict, data: dict) -> Path:
    from ._common import write_result

    return write_result("graph_building", figures, data)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="run the workloads whose name starts with this prefix")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--no-write", action="store_true", help="print only; do not write the result file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    load_at_start = os.getloadavg()[0]  # other processes on the machine inflate the timings
    figures, data = {}, {}
    for name, make in WORKLOADS.items():
        if not name.startswith(args.only):
            continue
        workload = make()
        if workload is None:
            print(f"{name}: skipped (data absent)")
            continue
        figures[name] = run_workload(workload, args.repeats, args.batch_size)
        data[name] = workload.data
        print(f"{name}: {json.dumps(figures[name])}", flush=True)
    if not args.no_write:
        context = {"torch_threads": 1, "load_average_1min_at_start": round(load_at_start, 2)}
        print(_write({"results": figures, **context}, data))
    return figures


if __name__ == "__main__":
    main()
