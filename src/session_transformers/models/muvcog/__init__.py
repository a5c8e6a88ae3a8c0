"""MUVCOG: multi-view contrastive heterogeneous graph network for multi-modal multi-query search sessions."""

from .configuration_muvcog import MuvcogConfig
from .modeling_muvcog import (
    MuvcogClickPredictionOutput,
    MuvcogForClickPrediction,
    MuvcogForPreTraining,
    MuvcogForPreTrainingOutput,
    MuvcogForQuerySuggestion,
    MuvcogModel,
    MuvcogModelOutput,
    MuvcogPreTrainedModel,
    MuvcogQuerySuggestionOutput,
)
from .processing_muvcog import MuvcogProcessor

__all__ = [
    "MuvcogClickPredictionOutput",
    "MuvcogConfig",
    "MuvcogForClickPrediction",
    "MuvcogForPreTraining",
    "MuvcogForPreTrainingOutput",
    "MuvcogForQuerySuggestion",
    "MuvcogModel",
    "MuvcogModelOutput",
    "MuvcogPreTrainedModel",
    "MuvcogProcessor",
    "MuvcogQuerySuggestionOutput",
]
