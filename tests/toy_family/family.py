"""The toy family's descriptor: everything the package, its trainers and its harnesses need, from this folder alone.

A test registers it (``session_transformers.families.register_family(FAMILY)``), or a process started later finds it
through ``SESSION_TRANSFORMERS_FAMILIES=toy_family.family`` with ``tests/`` on ``PYTHONPATH``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModel, AutoModelForPreTraining

from session_transformers.auto import AutoModelForNextItemPrediction
from session_transformers.families import ModelFamily
from session_transformers.hub import CardFamily

from .configuration_toy import ToyConfig
from .modeling_toy import ToyForNextItemPrediction, ToyModel
from .processing_toy import ToyProcessor
from .recipe import RECIPE


def example_inputs(processor: ToyProcessor) -> dict:
    """Two short sessions of the processor's first items (``hub.verify_release``'s example batch)."""
    items = processor.item_vocab
    return dict(processor([[items[0], items[1]], [items[2]]]))


def bad_input_check(suite):
    """``benchmarks/bad_inputs.py``'s hook: a toy processor over the corpus's items; each record's item IDs (a
    session's) go through it and its collator, whose outputs must be indices of the vocabulary."""
    processor = ToyProcessor(item_vocab=list(suite.items))

    def check(record, catalogue, kind: str) -> str:
        ids = suite.event_item_ids(record) if kind == "sessions" else None
        if ids is None:
            return "n/a"
        for batch in (
            processor([ids]),
            processor.collate([{"item_ids": ids, "target": ids[-1] if ids else ""}]),
        ):
            suite.check_in_range("input_ids", batch["input_ids"], processor.num_items)
            suite.check_in_range("attention_mask", batch["attention_mask"], 2)
        return "ok"

    return check


def merge_batches(a: dict, b: dict, pad_id: int = 0) -> dict:
    """``benchmarks/process_parity.py``'s hook: two collated halves as one batch (sessions padded to the longer)."""
    width = max(a["input_ids"].size(1), b["input_ids"].size(1))

    def padded(t: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(t, (0, width - t.size(1)), value=0)

    out = {k: torch.cat([padded(a[k]), padded(b[k])]) for k in ("input_ids", "attention_mask")}
    out["labels"] = torch.cat([a["labels"], b["labels"]])
    return out


CARD = CardFamily.from_yaml(
    Path(__file__).with_name("card.yaml"),  # the card's metadata
    template=str(Path(__file__).with_name("toy.md")),
    example_inputs=example_inputs,
)

TINY = ("--store-preset", "tiny", "--num-sessions", "120", "--batch-size", "8", "--config", "hidden_size=8")

FAMILY = ModelFamily(
    model_type="toy",
    config=ToyConfig,
    models={
        AutoModel: ToyModel,
        AutoModelForNextItemPrediction: ToyForNextItemPrediction,
        AutoModelForPreTraining: ToyForNextItemPrediction,
    },
    processor=ToyProcessor,
    recipe=RECIPE,
    card=CARD,
    tiny_flags=TINY[2:],
    trial_flags=(*TINY, "--learning-rate", "1e-2"),
    bad_inputs=bad_input_check,
    merge_batches=merge_batches,
    parity_flags=TINY,
)

__all__ = ["CARD", "FAMILY"]
