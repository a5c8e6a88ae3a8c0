"""CERES as one model family: its Auto classes, recipe, model card and harness settings (see
:mod:`session_transformers.families`)."""

from __future__ import annotations

from transformers import AutoModel, AutoModelForPreTraining

from ...auto import AutoModelForSessionRetrieval
from ...families import ModelFamily
from ...hub import CardFamily, CardTask, Paper, _ceres_benchmark, _ceres_inputs
from .configuration_ceres import CeresConfig
from .modeling_ceres import CeresForPreTraining, CeresForSessionRetrieval, CeresModel
from .processing_ceres import CeresProcessor
from .recipe import RECIPE

_CERES_SMALL = (
    "--config",
    "hidden_size=64",
    "num_hidden_layers=2",
    "num_attention_heads=2",
    "intermediate_size=128",
    "num_cross_attention_layers=1",
    "retrieval_projection_size=64",
)
"""CERES's ``--full`` quickstart size (its recipe's ``_FULL_SIZES``): 2 item-encoder layers of 64, from nothing."""

CARD = CardFamily(
    model_type="ceres",
    name="CERES",
    template="ceres.md",
    pipeline_tag="feature-extraction",
    tags=(
        "session-understanding",
        "product-search",
        "graph-neural-network",
        "masked-language-modeling",
        "e-commerce",
    ),
    paper=Paper(
        title="CERES: Pretraining of Graph-Conditioned Transformer for Semi-Structured Session Data",
        authors=("Rui Feng", "Chen Luo", "Qingyu Yin", "Bing Yin", "Tuo Zhao", "Chao Zhang"),
        year=2022,
        venue="arXiv preprint arXiv:2204.04303 (NAACL 2022)",
        url="https://arxiv.org/abs/2204.04303",
        bibtex_key="feng2022ceres",
    ),
    task_type="fill-mask",
    task_name="Graph-conditioned masked language modelling",
    metrics=("loss", "mlm_accuracy", "gmlm_accuracy"),
    lower_is_better=("loss", "mlm_loss", "gmlm_loss"),
    head_auto_class="AutoModelForPreTraining",
    example_inputs=_ceres_inputs,
    benchmark="ceres_claims",
    benchmark_tables=_ceres_benchmark,
    build_flags=(
        (
            "--num-sessions",
            "1500",
            "--max-steps",
            "60",
            "--batch-size",
            "16",
            "--learning-rate",
            "5e-4",
            "--max-eval-samples",
            "200",
            *_CERES_SMALL,
        ),
    ),
    real_data_builds={
        # Home Depot search terms: masked-LM pretraining on the training terms' sessions (the search, then views
        # of the products judged for it), then product search fine-tuned on (training term, product graded
        # >= 2) pairs; every validation / test term ranks all 54,667 titles, BM25 over the titles beside it
        "homedepot": (
            (
                "--dataset",
                "homedepot",
                "--max-steps",
                "200",
                "--batch-size",
                "32",
                "--learning-rate",
                "5e-4",
            )
            + ("--max-eval-samples", "256", *_CERES_SMALL),
            (
                "--task",
                "product_search",
                "--dataset",
                "homedepot",
                "--max-steps",
                "600",
                "--batch-size",
                "64",
            )
            + ("--learning-rate", "5e-4", "--eval-steps", "200", "--max-validation-samples", "500")
            + ("--select-best", "NDCG@10"),  # the data's graded metric (the benchmark's choice too)
        )
    },
    datasets={
        "synthetic": "session-transformers-synthetic-store",
        "rees46": "rees46",
        "homedepot": "homedepot",
    },
    tasks={
        "product_search": CardTask(
            task_type="text-retrieval",
            task_name="Product search (session-to-product retrieval)",
            metrics=("MAP@1", "MAP@32", "Recall@32", "Recall@64", "NDCG@10", "MRR@10"),
            head_auto_class="AutoModelForSessionRetrieval",
        )
    },
)
"""CERES's model card (``hub_cards/ceres.md``) and release builds."""

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
    tiny_flags=(
        "--num-sessions", "200", "--batch-size", "8", "--max-eval-samples", "16",
        "--config", "hidden_size=32", "num_hidden_layers=1", "num_attention_heads=2", "intermediate_size=64",
        "num_cross_attention_layers=1", "num_latent_tokens=2", "retrieval_projection_size=16",
        "max_position_embeddings=160",
    ),
    trial_flags=(
        "--store-preset", "tiny", "--num-sessions", "120", "--batch-size", "8",
        "--learning-rate", "1e-3", "--select-best", "loss",
        "--config", "hidden_size=32", "num_hidden_layers=1", "num_attention_heads=2", "intermediate_size=64",
        "num_cross_attention_layers=1", "retrieval_projection_size=32",
    ),
)  # fmt: skip
"""The CERES family, as :func:`session_transformers.families.discover` finds it."""

__all__ = ["CARD", "FAMILY"]
