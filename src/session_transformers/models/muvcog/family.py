"""MUVCOG as one model family: its Auto classes, recipe, model card and harness settings (see
:mod:`session_transformers.families`)."""

from __future__ import annotations

from transformers import AutoModel, AutoModelForPreTraining

from ...auto import AutoModelForClickPrediction, AutoModelForQuerySuggestion
from ...families import ModelFamily
from ...hub import CardFamily, Paper, _muvcog_benchmark, _muvcog_inputs
from .configuration_muvcog import MuvcogConfig
from .modeling_muvcog import (
    MuvcogForClickPrediction,
    MuvcogForPreTraining,
    MuvcogForQuerySuggestion,
    MuvcogModel,
)
from .processing_muvcog import MuvcogProcessor
from .recipe import RECIPE

CARD = CardFamily(
    model_type="muvcog",
    name="MUVCOG",
    template="muvcog.md",
    pipeline_tag="feature-extraction",
    tags=(
        "session-understanding",
        "multi-modal-search",
        "graph-neural-network",
        "contrastive-learning",
        "e-commerce",
    ),
    paper=Paper(
        title="Pretraining Representations of Multi-modal Multi-query E-commerce Search",
        authors=(
            "Xinyi Liu",
            "Wanxian Guan",
            "Lianyun Li",
            "Hui Li",
            "Chen Lin",
            "Xubin Li",
            "Si Chen",
            "Jian Xu",
            "Hongbo Deng",
            "Bo Zheng",
        ),
        year=2022,
        venue="Proceedings of the 28th ACM SIGKDD Conference on Knowledge Discovery and Data Mining (KDD '22)",
        url="https://doi.org/10.1145/3534678.3539200",
        bibtex_key="liu2022muvcog",
    ),
    task_type="feature-extraction",
    task_name="Multi-view contrastive session pretraining",
    metrics=("loss", "pair_accuracy"),
    lower_is_better=("loss", "selection_loss"),
    head_auto_class="AutoModelForPreTraining",
    example_inputs=_muvcog_inputs,
    benchmark="muvcog_claims_warmup",
    benchmark_tables=_muvcog_benchmark,
    datasets={"synthetic": "session-transformers-synthetic-store"},
)
"""MUVCOG's model card (``hub_cards/muvcog.md``)."""

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
    tiny_flags=("--num-sessions", "200", "--batch-size", "16", "--word2vec-epochs", "1"),
    trial_flags=(
        "--num-sessions", "400", "--word2vec-epochs", "1", "--batch-size", "16",
        "--learning-rate", "1e-3", "--select-best", "loss", "--config", "hidden_size=16",
    ),
)  # fmt: skip
"""The MUVCOG family, as :func:`session_transformers.families.discover` finds it."""

__all__ = ["CARD", "FAMILY"]
