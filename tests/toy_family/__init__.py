"""A sixth model family that lives only in the tests: config, model, processor, recipe and descriptor in one folder,
with no edit anywhere else (``tests/test_families.py`` registers it and runs it through the package)."""

from .configuration_toy import ToyConfig
from .modeling_toy import (
    ToyForNextItemPrediction,
    ToyModel,
    ToyModelOutput,
    ToyNextItemOutput,
    ToyPreTrainedModel,
)
from .processing_toy import ToyProcessor

__all__ = [
    "ToyConfig",
    "ToyForNextItemPrediction",
    "ToyModel",
    "ToyModelOutput",
    "ToyNextItemOutput",
    "ToyPreTrainedModel",
    "ToyProcessor",
]
