"""CERES: Graph Conditioned Encoder Representations for Session Data (config, processor, models, tasks)."""

from .configuration_ceres import CeresConfig
from .modeling_ceres import (
    CeresCandidatePool,
    CeresForPreTraining,
    CeresForPreTrainingOutput,
    CeresForSessionRetrieval,
    CeresModel,
    CeresModelOutput,
    CeresPreTrainedModel,
    CeresSessionRetrievalOutput,
)
from .processing_ceres import CeresMaskingCollator, CeresProcessor

__all__ = [
    "CeresCandidatePool",
    "CeresConfig",
    "CeresForPreTraining",
    "CeresForPreTrainingOutput",
    "CeresForSessionRetrieval",
    "CeresMaskingCollator",
    "CeresModel",
    "CeresModelOutput",
    "CeresPreTrainedModel",
    "CeresProcessor",
    "CeresSessionRetrievalOutput",
]
