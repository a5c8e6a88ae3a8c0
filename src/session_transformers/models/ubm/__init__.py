"""UBM: User Behavior Model, a two-level Transformer with two-stage contrastive pretraining (config, processor,
augmentations, models)."""

from .collating_ubm import (
    BehaviourReordering,
    DropoutMasking,
    TokenMasking,
    UbmStage1Collator,
    UbmStage2Collator,
    next_item_pairs,
)
from .configuration_ubm import UbmConfig
from .modeling_ubm import (
    UbmCandidatePool,
    UbmForNextItem,
    UbmForNextItemPrediction,
    UbmForPreTraining,
    UbmForPreTrainingOutput,
    UbmForPurchaseIntent,
    UbmForRemainingLength,
    UbmModel,
    UbmModelOutput,
    UbmNextItemOutput,
    UbmPreTrainedModel,
    UbmSessionPredictionOutput,
)
from .processing_ubm import UbmProcessor

__all__ = [
    "BehaviourReordering",
    "DropoutMasking",
    "TokenMasking",
    "UbmCandidatePool",
    "UbmConfig",
    "UbmForNextItem",
    "UbmForNextItemPrediction",
    "UbmForPreTraining",
    "UbmForPreTrainingOutput",
    "UbmForPurchaseIntent",
    "UbmForRemainingLength",
    "UbmModel",
    "UbmModelOutput",
    "UbmNextItemOutput",
    "UbmPreTrainedModel",
    "UbmProcessor",
    "UbmSessionPredictionOutput",
    "UbmStage1Collator",
    "UbmStage2Collator",
    "next_item_pairs",
]
