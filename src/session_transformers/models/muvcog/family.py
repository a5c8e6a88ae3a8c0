"""MUVCOG as one model family: its Auto classes, recipe, model card and harness settings (see
:mod:`session_transformers.families`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from transformers import AutoModel, AutoModelForPreTraining

from ...auto import AutoModelForClickPrediction, AutoModelForQuerySuggestion
from ...families import ModelFamily, argv
from ...hub.cards import (
    BenchmarkTable,
    CardFamily,
)
from ...hub.records import BENCHMARK_RESULTS_DIR, _read_json
from .configuration_muvcog import MuvcogConfig
from .modeling_muvcog import (
    MuvcogForClickPrediction,
    MuvcogForPreTraining,
    MuvcogForQuerySuggestion,
    MuvcogModel,
)
from .processing_muvcog import MuvcogProcessor
from .recipe import RECIPE


def _muvcog_inputs(processor) -> dict:
    """Two multi-query sessions of the processor's own words (keyword, product and, unless the processor is
    text-only, image queries with a fixed image vector)."""
    from ...data.schema import image_event, item_event, query_event

    words = [w for w in processor.vocab if w.isalpha()] or list(processor.vocab)
    if len(words) < 6:
        raise ValueError(f"the processor knows {len(words)} words; the example sessions need 6")
    image = [((7 * i) % 13) / 13.0 - 0.5 for i in range(processor.image_dim)]
    sessions = [
        {
            "session_id": "a",
            "events": [
                query_event("search", f"{words[0]} {words[1]}", 1.0),
                image_event("search", image, 2.0),
                query_event("search", f"{words[2]} {words[3]}", 3.0, product=True),
                item_event("click", "p1", 4.0),
            ],
        },
        {
            "session_id": "b",
            "events": [
                query_event("search", words[4], 1.0),
                query_event("search", f"{words[4]} {words[5]}", 2.0),
            ],
        },
    ]
    return dict(processor(sessions))


def _muvcog_benchmark(result: dict) -> list[BenchmarkTable]:
    """Query suggestion (Table 3, with the trivial baselines), intent classification (Table 4), click prediction
    (Table 2) and the checked claims with their verdicts: over every seed of the setting where
    ``benchmarks.muvcog_claims_seeds`` has summarised them (``..._seeds.json`` beside ``..._seed0.json``), else
    this seed's."""
    figures = result.get("figures") or {}
    tables = []
    suggestion = dict(figures.get("table3_query_suggestion") or {})
    for name, row in ((figures.get("table3_baselines") or {}).get("mm") or {}).items():
        suggestion[f"{name} (baseline)"] = row
    if suggestion:
        columns = tuple(
            c for c in ("NDCG@10", "HR@10", "MRR@10", "Avg.Sim") if any(c in r for r in suggestion.values())
        )
        tables.append(
            BenchmarkTable("Query suggestion (Table 3), fractions", columns, tuple(suggestion.items()))
        )
    intent = figures.get("table4_intent") or {}
    if intent:
        columns = tuple(c for c in ("AUC", "Acc", "P", "R", "F1") if any(c in r for r in intent.values()))
        tables.append(
            BenchmarkTable("Intent classification (Table 4), fractions", columns, tuple(intent.items()))
        )
    click = {}
    for name, row in (figures.get("table2_click") or {}).items():
        nested = row.get(name) if isinstance(row.get(name), Mapping) else None
        click[f"{name} (baseline)" if nested else name] = nested or row
    if click:
        columns = tuple(c for c in ("NDCG@10", "HR@10", "MRR@10") if any(c in r for r in click.values()))
        tables.append(BenchmarkTable("Click prediction (Table 2), fractions", columns, tuple(click.items())))
    name = re.sub(r"\d+$", "", result.get("name") or "")  # muvcog_claims_mix_seed0 -> muvcog_claims_mix_seed
    seeds = _read_json(BENCHMARK_RESULTS_DIR / f"{name}s.json") if name.endswith("_seed") else None
    claims = figures.get("claims") or []
    if seeds and seeds.get("figures", {}).get("claims"):  # every seed of this setting: one verdict per claim
        over = seeds["figures"]
        rows = tuple(
            (
                claim,
                {**c, "mean": f"{c['mean']:+.4f}", "95% interval": f"[{c['low']:+.4f}, {c['high']:+.4f}]"},
            )
            for claim, c in over["claims"].items()
        )
        tables.append(
            BenchmarkTable(
                f"The paper's claims over {len(over['seeds'])} training seeds (mean difference, Student-t 95% "
                "interval over the seeds)",
                ("mean", "95% interval", "seeds", "verdict"),
                rows,
                note=f"`benchmarks/results/{seeds['name']}.json`: {seeds.get('command', '')}",
            )
        )
    elif claims:
        rows = tuple(
            (c["claim"], {k: c.get(k) for k in ("difference", "±95%", "n", "verdict")}) for c in claims
        )
        tables.append(
            BenchmarkTable("The paper's claims in this rerun", ("difference", "±95%", "n", "verdict"), rows)
        )
    return tables


CARD = CardFamily.from_yaml(
    Path(__file__).with_name("card.yaml"),  # the card's metadata; package data, beside card.md
    example_inputs=_muvcog_inputs,
    benchmark_tables=_muvcog_benchmark,
)
"""MUVCOG's model card (``card.md`` beside this file)."""

FAMILY = ModelFamily(
    model_type="muvcog",
    config=MuvcogConfig,
    models={
        AutoModel: MuvcogModel,
        AutoModelForPreTraining: MuvcogForPreTraining,
        AutoModelForQuerySuggestion: MuvcogForQuerySuggestion,
        AutoModelForClickPrediction: MuvcogForClickPrediction,
    },
    processor=MuvcogProcessor,
    recipe=RECIPE,
    card=CARD,
    order=40,
    tiny_flags=argv("--num-sessions 200 --batch-size 16 --word2vec-epochs 1"),
    trial_flags=argv(
        "--num-sessions 400 --word2vec-epochs 1 --batch-size 16 --learning-rate 1e-3 --select-best loss "
        "--config hidden_size=16"
    ),
)
"""The MUVCOG family, as :func:`session_transformers.families.discover` finds it."""

__all__ = ["CARD", "FAMILY"]
