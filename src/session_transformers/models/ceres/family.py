"""CERES as one model family: its Auto classes, recipe, model card and harness settings (see
:mod:`session_transformers.families`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import AutoModel, AutoModelForPreTraining

from ...auto import AutoModelForSessionRetrieval
from ...families import ModelFamily, argv
from ...hub.cards import (
    BenchmarkTable,
    CardFamily,
    _fmt,
)
from ...hub.records import BENCHMARK_RESULTS_DIR, _read_json
from .configuration_ceres import CeresConfig
from .modeling_ceres import CeresForPreTraining, CeresForSessionRetrieval, CeresModel
from .processing_ceres import CeresProcessor
from .recipe import RECIPE


def _ceres_inputs(processor) -> dict:
    from ...data.schema import item_event, query_event

    def product(pid: str, title: str, description: str, category: list[str], brand: str) -> dict:
        return {
            "item_id": pid,
            "title": title,
            "description": description,
            "category": category,
            "brand": brand,
            "attributes": [],
            "image": None,
        }

    catalogue = {
        "p1": product("p1", "blue cotton shirt", "a soft shirt for summer", ["apparel", "shirts"], "acme"),
        "p2": product("p2", "red ceramic mug", "a large mug for coffee", ["home", "kitchen"], "brewco"),
    }
    sessions = [
        {
            "session_id": "a",
            "events": [
                query_event("search", "cotton shirt"),
                item_event("view", "p1"),
                item_event("view", "p2"),
            ],
        },
        {"session_id": "b", "events": [item_event("view", "p2")]},
    ]
    return dict(processor(sessions, catalogue))


def _ceres_benchmark(result: dict) -> list[BenchmarkTable]:
    figures = result["figures"]
    tables = []
    data = result.get("data") or {}
    for source, by_task in (figures.get("results") or {}).items():
        for i, (task, rows) in enumerate(by_task.items()):
            columns = tuple(
                c for c in ("MAP@1", "MAP@32", "Recall@32", "Recall@64") if any(c in r for r in rows.values())
            )
            note = (data.get(source, "") if isinstance(data, dict) else str(data)) if i == 0 else ""
            tables.append(BenchmarkTable(f"{source}: {task}", columns, tuple(rows.items()), note=note))
    homedepot = _read_json(BENCHMARK_RESULTS_DIR / "product_search_homedepot.json")  # real search terms
    if homedepot:
        tables.append(_homedepot_table(homedepot))
    return tables


def _homedepot_table(result: dict) -> BenchmarkTable:
    """Home Depot product search (real search terms against all product titles): every row with its interval."""
    figures = result["figures"]
    test = next(v for k, v in figures.items() if k.startswith("test"))
    metrics = ("NDCG@10", "MRR@10", "Recall@100")
    rows = []
    for name, row in test.items():
        cells: dict[str, Any] = {}
        for m in metrics:  # three decimals: these are fractions, and the rows differ in the third
            low, _, high = str(row.get(f"{m} 95% CI", "")).partition("-")
            value = row.get(m)
            try:
                cells[m] = f"{value:.3f} [{float(low):.3f}, {float(high):.3f}]"
            except (TypeError, ValueError):
                cells[m] = f"{value:.3f}" if isinstance(value, int | float) else value
        rows.append((name, cells))
    goal = figures.get("goal") or {}
    verdict = (
        f"Our best row by validation NDCG@10 ({goal.get('our best row (by validation NDCG@10)')}): test NDCG@10 "
        f"{_fmt(goal.get('its test NDCG@10'))} against BM25's {_fmt(goal.get('BM25 test NDCG@10'))}; "
        f"beats BM25 with separated intervals: {'yes' if goal.get('beats BM25 with separated intervals') else 'no'}. "
        if goal
        else ""
    )
    return BenchmarkTable(
        "Home Depot product search: real search terms ranked against every product title (test terms)",
        metrics,
        tuple(rows),
        note=f"{verdict}{result.get('data', '')}. `benchmarks/results/product_search_homedepot.json`: "
        f"{result.get('command', '')}",
    )


_CERES_SMALL = argv(
    "--config hidden_size=64 num_hidden_layers=2 num_attention_heads=2 intermediate_size=128 "
    "num_cross_attention_layers=1 retrieval_projection_size=64"
)
"""CERES's ``--full`` quickstart size (its recipe's ``_FULL_SIZES``): 2 item-encoder layers of 64, from nothing."""

CARD = CardFamily.from_yaml(
    Path(__file__).with_name("card.yaml"),  # the card's metadata; package data, beside card.md
    example_inputs=_ceres_inputs,
    benchmark_tables=_ceres_benchmark,
    build_flags=(
        argv("--num-sessions 1500 --max-steps 60 --batch-size 16 --learning-rate 5e-4 --max-eval-samples 200")
        + _CERES_SMALL,
    ),
    real_data_builds={
        # Home Depot search terms: masked-LM pretraining on the training terms' sessions (the search, then views
        # of the products judged for it), then product search fine-tuned on (training term, product graded
        # >= 2) pairs; every validation / test term ranks all 54,667 titles, BM25 over the titles beside it
        "homedepot": (
            argv(
                "--dataset homedepot --max-steps 200 --batch-size 32 --learning-rate 5e-4 --max-eval-samples 256"
            )
            + _CERES_SMALL,
            argv(
                "--task product_search --dataset homedepot --max-steps 600 --batch-size 64 --learning-rate 5e-4 "
                "--eval-steps 200 --max-validation-samples 500 "
                "--select-best NDCG@10"  # the data's graded metric (the benchmark's choice too)
            ),
        )
    },
)
"""CERES's model card (``card.md`` beside this file) and release builds."""

FAMILY = ModelFamily(
    model_type="ceres",
    config=CeresConfig,
    models={
        AutoModel: CeresModel,
        AutoModelForPreTraining: CeresForPreTraining,
        AutoModelForSessionRetrieval: CeresForSessionRetrieval,
    },
    processor=CeresProcessor,
    recipe=RECIPE,
    card=CARD,
    order=20,
    tiny_flags=argv(
        "--num-sessions 200 --batch-size 8 --max-eval-samples 16 --config hidden_size=32 num_hidden_layers=1 "
        "num_attention_heads=2 intermediate_size=64 num_cross_attention_layers=1 num_latent_tokens=2 "
        "retrieval_projection_size=16 max_position_embeddings=160"
    ),
    trial_flags=argv(
        "--store-preset tiny --num-sessions 120 --batch-size 8 --learning-rate 1e-3 --select-best loss "
        "--config hidden_size=32 num_hidden_layers=1 num_attention_heads=2 intermediate_size=64 "
        "num_cross_attention_layers=1 retrieval_projection_size=32"
    ),
)
"""The CERES family, as :func:`session_transformers.families.discover` finds it."""

__all__ = ["CARD", "FAMILY"]
