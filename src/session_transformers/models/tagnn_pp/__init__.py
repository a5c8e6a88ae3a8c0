"""TAGNN++: gated GNN + Transformer with target-aware readout (Mitharan et al.) for next-item prediction."""

from .configuration_tagnn_pp import PAPER_ARCHITECTURE, TagnnPPConfig
from .modeling_tagnn_pp import (
    SoftAttentionReadout,
    SRGNNCell,
    TagnnPPForNextItemPrediction,
    TagnnPPModel,
    TagnnPPModelOutput,
    TagnnPPNextItemOutput,
    TagnnPPPreTrainedModel,
    TargetAwareReadout,
    binary_transition_weights,
)
from .processing_tagnn_pp import TagnnPPProcessor, build_graph_batch

__all__ = [
    "PAPER_ARCHITECTURE",
    "SRGNNCell",
    "SoftAttentionReadout",
    "TagnnPPConfig",
    "TagnnPPForNextItemPrediction",
    "TagnnPPModel",
    "TagnnPPModelOutput",
    "TagnnPPNextItemOutput",
    "TagnnPPPreTrainedModel",
    "TagnnPPProcessor",
    "TargetAwareReadout",
    "binary_transition_weights",
    "build_graph_batch",
]
