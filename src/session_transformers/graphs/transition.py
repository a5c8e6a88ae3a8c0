"""The SR-GNN / TAGNN session transition graph.

For a session of item indices ``[s_1, ..., s_n]`` the graph has one node per *unique* item (in order of
first appearance) and one directed edge ``u -> v`` per distinct consecutive pair ``(s_t, s_{t+1})``. As in
SR-GNN (Wu et al., 2019) the connection matrices are normalised by degree, with repeated transitions
counted:

- ``in_weight[e]`` for ``e = (u -> v)`` is ``count(u -> v) / sum_w count(w -> v)`` (the incoming matrix ``A_in``,
  normalised over ``v``'s in-edges);
- ``out_weight[e]`` is ``count(u -> v) / sum_w count(u -> w)`` (the outgoing matrix ``A_out``, normalised over
  ``u``'s out-edges).

``alias[t]`` is the node of position ``t``, so node states scatter back to the sequence with ``h[alias]``.
A length-1 session is one node with no edges. Graphs batch as a disjoint union with
``torch_geometric.data.Batch.from_data_list``; ``alias`` is offset by the node count like ``edge_index``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch_geometric.data import Batch, Data


class SessionGraph(Data):
    """A ``Data`` whose ``alias`` (positions -> nodes) is offset when graphs are batched.

    Attributes:
        x: ``(|V|,)`` item index of each node (the node input, looked up in the item embeddings).
        edge_index: ``(2, |E|)`` directed transitions ``source -> target``.
        in_weight: ``(|E|,)`` weight of each edge in the in-degree-normalised matrix.
        out_weight: ``(|E|,)`` weight of each edge in the out-degree-normalised matrix.
        alias: ``(L,)`` node index of each session position.
        length: ``(1,)`` session length ``L``.
    """

    def __inc__(self, key, value, *args, **kwargs):
        if key == "alias":
            return self.num_nodes
        return super().__inc__(key, value, *args, **kwargs)


def session_transition_graph(items: Sequence[int] | torch.Tensor) -> SessionGraph:
    """Build the transition graph of one session of item indices (see the module docstring)."""
    seq = torch.as_tensor(items, dtype=torch.long).flatten()
    if seq.numel() == 0:
        raise ValueError("a session needs at least one item to build its transition graph")
    nodes, alias = _unique_in_order(seq)
    src, dst = alias[:-1], alias[1:]
    num_nodes = nodes.numel()
    if src.numel():
        pair = src * num_nodes + dst
        uniq, counts = torch.unique(pair, return_counts=True)
        edge_index = torch.stack([uniq // num_nodes, uniq % num_nodes])
        counts = counts.float()
        in_deg = torch.zeros(num_nodes).index_add_(0, edge_index[1], counts)
        out_deg = torch.zeros(num_nodes).index_add_(0, edge_index[0], counts)
        in_weight = counts / in_deg[edge_index[1]]
        out_weight = counts / out_deg[edge_index[0]]
    else:
        edge_index = torch.empty(2, 0, dtype=torch.long)
        in_weight = out_weight = torch.empty(0)
    return SessionGraph(
        x=nodes,
        edge_index=edge_index,
        in_weight=in_weight,
        out_weight=out_weight,
        alias=alias,
        length=torch.tensor([seq.numel()]),
        num_nodes=num_nodes,
    )


def _unique_in_order(seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique values in order of first appearance, and each position's index into them."""
    uniq, inverse = torch.unique(seq, return_inverse=True)
    first = torch.full((uniq.numel(),), seq.numel(), dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(seq.numel()), reduce="amin")
    order = torch.argsort(first)  # rank of each unique value by first appearance
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel())
    return uniq[order], rank[inverse]


def batch_transition_graphs(sessions: Sequence[Sequence[int]]) -> Batch:
    """Build and batch the transition graphs of several sessions (a disjoint union, ``batch`` maps nodes to sessions)."""
    return Batch.from_data_list([session_transition_graph(s) for s in sessions])


__all__ = ["SessionGraph", "batch_transition_graphs", "session_transition_graph"]
