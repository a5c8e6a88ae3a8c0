"""UBM as one model family: its Auto classes, recipe, model card and harness settings (see
:mod:`session_transformers.families`)."""

from __future__ import annotations

from transformers import AutoModel, AutoModelForPreTraining

from ...auto import AutoModelForNextItemPrediction, AutoModelForPurchaseIntent, AutoModelForRemainingLength
from ...families import ModelFamily
from ...hub import CardFamily, Paper, _ubm_benchmark, _ubm_inputs
from .configuration_ubm import UbmConfig
from .modeling_ubm import (
    UbmForNextItem,
    UbmForPreTraining,
    UbmForPurchaseIntent,
    UbmForRemainingLength,
    UbmModel,
)
from .processing_ubm import UbmProcessor
from .recipe import RECIPE

_UBM_SMALL = (
    "--config",
    "hidden_size=64",
    "num_hidden_layers=2",
    "num_attention_heads=2",
    "intermediate_size=128",
    "num_session_layers=2",
    "session_num_attention_heads=2",
    "session_intermediate_size=128",
    "interaction_pooling=mean",
)
"""UBM's quickstart size (its recipe's ``_TINY``): a small encoder trained from nothing."""

CARD = CardFamily(
    model_type="ubm",
    name="UBM",
    template="ubm.md",
    # its head and the card's example are next-item recommendation over the item text (the Hub's "graph-ml"
    # fits item-graph models such as TAGNN++, not a text Transformer): session and item embeddings
    pipeline_tag="feature-extraction",
    tags=(
        "session-understanding",
        "contrastive-learning",
        "next-item-prediction",
        "purchase-intent",
        "e-commerce",
    ),
    paper=Paper(
        title="Contrastive Pre-training for Deep Session Data Understanding",
        authors=("Zixuan Li", "Yunshan Ma", "Lizi Liao", "Tat-Seng Chua"),
        year=2022,
        venue="preprint (ACM conference format)",
        bibtex_key="li2022ubm",
    ),
    task_type="feature-extraction",
    task_name="Contrastive session pretraining (stage 2: reordering and masking views)",
    metrics=("loss", "loss3", "loss4"),
    lower_is_better=("loss", "loss1", "loss2", "loss3", "loss4"),
    head_auto_class="AutoModelForNextItemPrediction",
    example_inputs=_ubm_inputs,
    benchmark="ubm_claims_cpu_minilm",
    benchmark_tables=_ubm_benchmark,
    real_data_builds={
        # both stages on REES46's sample with the quickstart's small encoder trained from nothing (MiniLM as
        # the interaction encoder needs --interaction-encoder-from and hours of this CPU)
        "rees46": (
            ("--dataset", "rees46", "--vocab-size", "2000", "--max-steps", "60", "--batch-size", "64")
            + ("--learning-rate", "5e-4", "--eval-batch-size", "64", *_UBM_SMALL),
            ("--dataset", "rees46", "--vocab-size", "2000", "--max-steps", "60", "--batch-size", "16")
            + ("--learning-rate", "5e-4", "--eval-batch-size", "64"),
        )
    },
    datasets={"synthetic": "session-transformers-synthetic-store", "rees46": "rees46"},
)
"""UBM's model card (``hub_cards/ubm.md``) and release builds."""

FAMILY = ModelFamily(
    model_type="ubm",
    config=UbmConfig,
    models={
        AutoModel: UbmModel,
        AutoModelForPreTraining: UbmForPreTraining,
        AutoModelForPurchaseIntent: UbmForPurchaseIntent,
        AutoModelForRemainingLength: UbmForRemainingLength,
        AutoModelForNextItemPrediction: UbmForNextItem,
    },
    processor=UbmProcessor,
    recipe=RECIPE,
    card=CARD,
    order=30,
    tiny_flags=(  # appended to both quickstart stages (stage 1 sets the tiny model sizes)
        "--num-sessions", "200", "--vocab-size", "400", "--batch-size", "8", "--eval-batch-size", "16",
        "--max-eval-samples", "16", "--max-validation-samples", "16",
    ),
    trial_flags=(
        "--stage", "1", "--num-sessions", "300", "--vocab-size", "400", "--batch-size", "16",
        "--eval-batch-size", "32", "--learning-rate", "5e-4", "--max-validation-samples", "64",
        "--max-eval-samples", "64", "--select-best", "loss",
        "--config", "hidden_size=32", "num_hidden_layers=1", "num_attention_heads=2", "intermediate_size=64",
        "num_session_layers=1", "session_num_attention_heads=2", "session_intermediate_size=64",
    ),
)  # fmt: skip
"""The UBM family, as :func:`session_transformers.families.discover` finds it."""

__all__ = ["CARD", "FAMILY"]
