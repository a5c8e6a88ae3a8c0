"""UBM as one model family: its Auto classes, recipe, model card and harness settings (see
:mod:`session_transformers.families`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from transformers import AutoModel, AutoModelForPreTraining

from ...auto import AutoModelForNextItemPrediction, AutoModelForPurchaseIntent, AutoModelForRemainingLength
from ...families import ModelFamily, argv
from ...hub.cards import (
    BenchmarkTable,
    CardFamily,
    _interval,
    _verdict_table,
    example_catalogue,
)
from ...hub.records import BENCHMARK_RESULTS_DIR, _read_json
from .configuration_ubm import UbmConfig
from .modeling_ubm import (
    UbmForNextItemPrediction,
    UbmForPreTraining,
    UbmForPurchaseIntent,
    UbmForRemainingLength,
    UbmModel,
)
from .processing_ubm import UbmProcessor
from .recipe import RECIPE


def _ubm_inputs(processor) -> dict:
    """Two text sessions and, for the next-item head, three candidate items as rows (``UbmModel`` ignores them)."""
    from ...data.schema import item_event, query_event

    catalogue = example_catalogue()
    sessions = [
        {
            "session_id": "a",
            "events": [
                query_event("search", "cotton shirt"),
                item_event("view", "p1"),
                item_event("add_to_cart", "p1"),
                item_event("view", "p2"),
            ],
        },
        {"session_id": "b", "events": [item_event("view", "p3"), item_event("purchase", "p3")]},
    ]
    inputs = dict(processor(sessions, catalogue))
    candidates = processor.encode_items(["p1", "p2", "p3"], catalogue)
    inputs["candidate_input_ids"] = candidates["input_ids"]
    inputs["candidate_attention_mask"] = candidates["attention_mask"]
    return inputs


UBM_SYNTHETIC_BENCHMARK = "ubm_claims_cpu_scratch"
"""The UBM card's second result: the synthetic store, the only data here where all three tasks can be measured
(REES46's sample has too few purchases and long sessions in its test period), run with a small encoder trained
from nothing because MiniLM on the synthetic store's titles would take ~11 h of the CPU box."""


def _ubm_tables(result: dict, first_note: str) -> list[BenchmarkTable]:
    """One claims result: per dataset, each task's figures (value and bootstrap 95% interval; next item in percent), the
    representation alignment / uniformity, and the paper's orderings with their verdicts."""
    figures = result.get("figures") or {}
    tables: list[BenchmarkTable] = []
    for source, block in figures.items():
        if not isinstance(block, Mapping) or "tasks" not in block:
            continue
        for task, rows in (block.get("tasks") or {}).items():
            columns = tuple(
                dict.fromkeys(k for row in rows.values() for k in row if not k.startswith("num_"))
            )
            tables.append(
                BenchmarkTable(
                    f"{source}: {task} ({'percent, ' if task == 'next_item' else ''}bootstrap 95% interval)",
                    columns,
                    tuple((name, {c: _interval(row.get(c)) for c in columns}) for name, row in rows.items()),
                    note=first_note if not tables else "",
                )
            )
        geometry = block.get("alignment / uniformity") or {}
        if geometry:
            tables.append(
                BenchmarkTable(
                    f"{source}: session-embedding alignment / uniformity (lower is better for both)",
                    ("alignment", "uniformity"),
                    tuple(geometry.items()),
                )
            )
        if block.get("orderings"):
            tables.append(
                _verdict_table(f"{source}: the paper's orderings in this rerun", block["orderings"])
            )
    return tables


def _ubm_benchmark(result: dict) -> list[BenchmarkTable]:
    """The card's result (:func:`_ubm_tables`); the ablation run beside it (``<name>_ablations.json``), when there,
    adds its orderings; the synthetic-store run (:data:`UBM_SYNTHETIC_BENCHMARK`), when there, its tables."""
    tables = _ubm_tables(result, str((result.get("figures") or {}).get("scale", "")))
    ablations = _read_json(BENCHMARK_RESULTS_DIR / f"{result.get('name', '')}_ablations.json")
    for source, block in ((ablations or {}).get("figures") or {}).items():
        if isinstance(block, Mapping) and block.get("orderings"):
            tables.append(
                _verdict_table(
                    f"{source}: loss ablations (the paper's Table 2 orderings)",
                    block["orderings"],
                    note=f"`benchmarks/results/{ablations['name']}.json`: {ablations.get('command', '')}",
                )
            )
    synthetic = _read_json(BENCHMARK_RESULTS_DIR / f"{UBM_SYNTHETIC_BENCHMARK}.json")
    if synthetic and synthetic.get("name") != result.get("name"):
        scale = (synthetic.get("figures") or {}).get("scale", "")
        tables += _ubm_tables(
            synthetic,
            f"`benchmarks/results/{synthetic['name']}.json`: {synthetic.get('command', '')}. {scale}",
        )
    return tables


_UBM_SMALL = argv(
    "--config hidden_size=64 num_hidden_layers=2 num_attention_heads=2 intermediate_size=128 num_session_layers=2 "
    "session_num_attention_heads=2 session_intermediate_size=128 interaction_pooling=mean"
)
"""UBM's quickstart size (its recipe's ``_TINY``): a small encoder trained from nothing."""

CARD = CardFamily.from_yaml(
    Path(__file__).with_name("card.yaml"),  # the card's metadata; package data, beside card.md
    example_inputs=_ubm_inputs,
    benchmark_tables=_ubm_benchmark,
    real_data_builds={
        # both stages on REES46's sample with the quickstart's small encoder trained from nothing (MiniLM as
        # the interaction encoder needs --interaction-encoder-from and hours of this CPU)
        "rees46": (
            argv("--dataset rees46 --vocab-size 2000 --max-steps 60 --batch-size 64 --learning-rate 5e-4")
            + argv("--eval-batch-size 64")
            + _UBM_SMALL,
            argv("--dataset rees46 --vocab-size 2000 --max-steps 60 --batch-size 16 --learning-rate 5e-4")
            + argv("--eval-batch-size 64"),
            # then next item on REES46 (the REES46 learning test's settings), so that the card sets the model's
            # figures beside the baselines a practitioner tries first (popularity; the session's own items). The
            # sample is too small for purchase intent: 25 test prefixes, none ending in a purchase
            argv(
                "--task next_item --dataset rees46 --max-steps 150 --batch-size 32 --learning-rate 1e-3 "
                "--eval-batch-size 64 --config next_item_similarity=cosine"
            ),
        )
    },
)
"""UBM's model card (``card.md`` beside this file) and release builds."""

FAMILY = ModelFamily(
    model_type="ubm",
    config=UbmConfig,
    models={
        AutoModel: UbmModel,
        AutoModelForPreTraining: UbmForPreTraining,
        AutoModelForPurchaseIntent: UbmForPurchaseIntent,
        AutoModelForRemainingLength: UbmForRemainingLength,
        AutoModelForNextItemPrediction: UbmForNextItemPrediction,
    },
    processor=UbmProcessor,
    recipe=RECIPE,
    card=CARD,
    order=30,
    tiny_flags=argv(  # appended to both quickstart stages (stage 1 sets the tiny model sizes)
        "--num-sessions 200 --vocab-size 400 --batch-size 8 --eval-batch-size 16 --max-eval-samples 16 "
        "--max-validation-samples 16"
    ),
    trial_flags=argv(
        "--stage 1 --num-sessions 300 --vocab-size 400 --batch-size 16 --eval-batch-size 32 --learning-rate 5e-4 "
        "--max-validation-samples 64 --max-eval-samples 64 --select-best loss --config hidden_size=32 "
        "num_hidden_layers=1 num_attention_heads=2 intermediate_size=64 num_session_layers=1 "
        "session_num_attention_heads=2 session_intermediate_size=64"
    ),
)
"""The UBM family, as :func:`session_transformers.families.discover` finds it."""

__all__ = ["CARD", "FAMILY"]
