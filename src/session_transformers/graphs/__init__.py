"""Sessions as torch_geometric graphs: the SR-GNN transition graph, the CERES relational graph, the MUVCOG views."""

from . import ceres, muvcog, transition
from .transition import SessionGraph, batch_transition_graphs, build_graph_batch, session_transition_graph

__all__ = [
    "SessionGraph",
    "batch_transition_graphs",
    "build_graph_batch",
    "ceres",
    "muvcog",
    "session_transition_graph",
    "transition",
]
