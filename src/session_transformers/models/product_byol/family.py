"""Product BYOL as one model family: its Auto classes, recipe, model card and harness settings (see
:mod:`session_transformers.families`)."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoModel, AutoModelForPreTraining, AutoModelForSequenceClassification

from ...families import ModelFamily, argv
from ...hub.cards import (
    BenchmarkTable,
    CardFamily,
    _verdict_table,
)
from .configuration_product_byol import ProductByolConfig
from .modeling_product_byol import (
    ProductByolForPreTraining,
    ProductByolForSequenceClassification,
    ProductByolModel,
)
from .processing_product_byol import ProductByolProcessor
from .recipe import RECIPE


def _product_byol_inputs(processor) -> dict:
    return dict(processor(["Organic Bananas", "Blue Cotton Shirt, Size L", "red ceramic coffee mug 350 ml"]))


def _product_byol_benchmark(result: dict) -> list[BenchmarkTable]:
    """The claims' verdicts, the validation AUC per loss weight alpha, and the downstream learning curves (test
    ROC-AUC mean +- std over subsamples, per labelled-set size) of each task."""
    figures = result.get("figures") or {}
    tables = []
    verdicts = {
        k: v for k, v in (figures.get("verdicts") or {}).items() if isinstance(v, str) and k[:1] == "C"
    }
    if verdicts:
        tables.append(_verdict_table("The paper's claims in this rerun", verdicts))
    by_alpha = (figures.get("verdicts") or {}).get("validation_auc_by_alpha") or {}
    if by_alpha:
        tables.append(
            BenchmarkTable(
                "Mean validation ROC-AUC of the downstream tasks per loss weight",
                ("validation ROC-AUC",),
                tuple((k, {"validation ROC-AUC": v}) for k, v in by_alpha.items()),
            )
        )
    for task, rows in (figures.get("learning_curves") or {}).items():
        columns = tuple(dict.fromkeys(k for row in rows.values() for k in row))
        tables.append(
            BenchmarkTable(
                f"{task}: test ROC-AUC by labelled training products",
                columns,
                tuple(rows.items()),
            )
        )
    return tables


_PRODUCT_BYOL_SMALL = argv(
    "--config embedding_size=64 num_filters=32 projection_hidden_size=256 projection_size=64"
)
"""Product BYOL's quickstart size (its recipe's ``TINY_CONFIG``)."""

CARD = CardFamily.from_yaml(
    Path(__file__).with_name("card.yaml"),  # the card's metadata; package data, beside card.md
    example_inputs=_product_byol_inputs,
    benchmark_tables=_product_byol_benchmark,
    real_data_builds={
        # BYOL pairs of products bought together, category = department (the claims run's setting), one epoch
        "instacart": (
            argv("--dataset instacart --vocab-size 2000 --batch-size 256 --learning-rate 0.45 --num-epochs 1")
            + _PRODUCT_BYOL_SMALL,
        )
    },
)
"""Product BYOL's model card (``card.md`` beside this file) and release builds."""

FAMILY = ModelFamily(
    model_type="product_byol",
    config=ProductByolConfig,
    models={
        AutoModel: ProductByolModel,
        AutoModelForPreTraining: ProductByolForPreTraining,
        AutoModelForSequenceClassification: ProductByolForSequenceClassification,
    },
    processor=ProductByolProcessor,
    recipe=RECIPE,
    card=CARD,
    order=50,
    tiny_flags=argv("--num-sessions 200 --vocab-size 300 --batch-size 16"),
    trial_flags=argv(
        "--num-sessions 600 --vocab-size 300 --batch-size 32 --learning-rate 0.05 --config embedding_size=16 "
        "num_filters=8 projection_hidden_size=32 projection_size=16"
    ),
)
"""The Product BYOL family, as :func:`session_transformers.families.discover` finds it."""

__all__ = ["CARD", "FAMILY"]
