"""TAGNN++ as one model family: its Auto classes, recipe, model card and harness settings (see
:mod:`session_transformers.families`)."""

from __future__ import annotations

from transformers import AutoModel, AutoModelForPreTraining

from ...auto import AutoModelForNextItemPrediction
from ...families import ModelFamily
from ...hub import CardFamily, Paper, _tagnn_pp_benchmark, _tagnn_pp_inputs
from .configuration_tagnn_pp import TagnnPPConfig
from .modeling_tagnn_pp import TagnnPPForNextItemPrediction, TagnnPPModel
from .processing_tagnn_pp import TagnnPPProcessor
from .recipe import RECIPE

CARD = CardFamily(
    model_type="tagnn_pp",
    name="TAGNN++",
    template="tagnn_pp.md",
    pipeline_tag="graph-ml",
    tags=(
        "session-recommendation",
        "next-item-prediction",
        "recommender-system",
        "graph-neural-network",
        "e-commerce",
    ),
    paper=Paper(
        title="Improved Representation Learning for Session-based Recommendation",
        authors=("Sai Mitharan", "Abhinav Java", "Surya Kant Sahu", "Arshad Shaikh"),
        year=2021,
        venue="arXiv preprint",
        bibtex_key="mitharan2021tagnnpp",
    ),
    task_type="session-recommendation",
    task_name="Next-item prediction",
    metrics=("HR@10", "MRR@10", "HR@20", "MRR@20"),
    head_auto_class="AutoModelForNextItemPrediction",
    example_inputs=_tagnn_pp_inputs,
    benchmark="tagnn_pp_diginetica",
    benchmark_tables=_tagnn_pp_benchmark,
    build_flags=(
        (
            "--num-sessions",
            "4000",
            "--max-steps",
            "200",
            "--batch-size",
            "100",
            "--learning-rate",
            "1e-3",
            "--weight-decay",
            "1e-5",
        ),
    ),
    real_data_builds={
        # the best settings measured (benchmarks/tagnn_pp_peer.py, Diginetica top 3,000 items; its result file's
        # default_variant): today's default architecture (the authors' code's) at the code's size (hidden 100, 2
        # heads) and optimiser (Adam 1e-3, L2 1e-5, batch 50, random batches), three epochs with the code's
        # schedule (1e-3 in epochs 1-2, 1e-4 in epoch 3: the peer run's best test figures are after epoch 3); a
        # validation split of the training sessions (5,000 of its samples scored after each epoch) picks the
        # weights by HR@20, where the peer run kept the last ones
        "diginetica": (
            (
                "--dataset",
                "diginetica",
                "--top-items",
                "3000",
                "--batch-size",
                "50",
                "--learning-rate",
                "1e-3",
            )
            + ("--weight-decay", "1e-5", "--lr-scheduler-type", "step", "--lr-decay-epochs", "2")
            + ("--lr-decay-rate", "0.1", "--num-epochs", "3", "--max-validation-samples", "5000")
            + ("--config", "hidden_size=100", "num_attention_heads=2"),
        )
    },
    datasets={"synthetic": "session-transformers-synthetic-store", "diginetica": "diginetica"},
)
"""TAGNN++'s model card (``hub_cards/tagnn_pp.md``) and release builds."""

FAMILY = ModelFamily(
    model_type="tagnn_pp",
    config=TagnnPPConfig,
    models={
        AutoModel: TagnnPPModel,
        AutoModelForNextItemPrediction: TagnnPPForNextItemPrediction,
        # TAGNN++ trains on next-item cross-entropy, so its pre-training head is the prediction head.
        AutoModelForPreTraining: TagnnPPForNextItemPrediction,
    },
    processor=TagnnPPProcessor,
    recipe=RECIPE,
    card=CARD,
    order=10,
    tiny_flags=(
        "--num-sessions", "240", "--batch-size", "16",
        "--config", "hidden_size=16", "num_attention_heads=2", "score_chunk_size=64",
    ),
    trial_flags=(
        "--store-preset", "tiny", "--num-sessions", "240", "--batch-size", "16",
        "--learning-rate", "1e-3", "--select-best", "HR@20",
        "--config", "hidden_size=16", "num_attention_heads=2", "score_chunk_size=64",
    ),
)  # fmt: skip
"""The TAGNN++ family, as :func:`session_transformers.families.discover` finds it."""

__all__ = ["CARD", "FAMILY"]
