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

import numpy as np
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


def build_graph_batch(sessions: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
    """The disjoint union of the sessions' transition graphs, as numpy arrays (see the module docstring).

    Nodes in order of first appearance, edges sorted by ``(source, target)`` within each session, repeated
    transitions counted in the weights, node indices offset session by session (a disjoint union); ``alias``
    padded to ``(B, L)`` with node 0, and its ``attention_mask``. This is the one builder of the graph: the
    TAGNN++ processor batches with it and :func:`session_transition_graph` wraps one session of it.
    """
    x: list[int] = []
    src: list[int] = []
    dst: list[int] = []
    w_in: list[float] = []
    w_out: list[float] = []
    flat_alias: list[int] = []
    lengths: list[int] = []
    for seq in sessions:
        n, offset = len(seq), len(x)
        lengths.append(n)
        if len(set(seq)) == n:  # fast path, most sessions: a chain of distinct items, all weights 1
            x.extend(seq)
            flat_alias.extend(range(offset, offset + n))
            src.extend(range(offset, offset + n - 1))
            dst.extend(range(offset + 1, offset + n))
            w_in.extend([1.0] * (n - 1))
            w_out.extend([1.0] * (n - 1))
            continue
        node: dict[int, int] = {}
        for item in seq:
            node.setdefault(item, len(node))
        local = [node[item] for item in seq]
        x.extend(node)
        flat_alias.extend(offset + i for i in local)
        counts: dict[tuple[int, int], int] = {}
        for pair in zip(local, local[1:]):
            counts[pair] = counts.get(pair, 0) + 1
        in_deg = [0] * len(node)
        out_deg = [0] * len(node)
        for (u, v), c in counts.items():
            out_deg[u] += c
            in_deg[v] += c
        for (u, v), c in sorted(counts.items()):
            src.append(offset + u)
            dst.append(offset + v)
            w_in.append(c / in_deg[v])
            w_out.append(c / out_deg[u])
    lengths_np = np.array(lengths, dtype=np.int64)
    attention_mask = np.arange(max(lengths, default=0))[None, :] < lengths_np[:, None]  # (B, L)
    alias = np.zeros(attention_mask.shape, dtype=np.int64)
    alias[attention_mask] = flat_alias  # row-major order = session by session, position by position
    return {
        "x": np.array(x, dtype=np.int64),
        "edge_index": np.array([src, dst], dtype=np.int64).reshape(2, -1),
        "in_weight": np.array(w_in, dtype=np.float32),
        "out_weight": np.array(w_out, dtype=np.float32),
        "alias": alias,
        "attention_mask": attention_mask.astype(np.int64),
    }


def session_transition_graph(items: Sequence[int] | torch.Tensor) -> SessionGraph:
    """Build the transition graph of one session of item indices (see the module docstring)."""
    seq = torch.as_tensor(items, dtype=torch.long).flatten().tolist()
    if not seq:
        raise ValueError("a session needs at least one item to build its transition graph")
    arrays = build_graph_batch([seq])
    return SessionGraph(
        x=torch.from_numpy(arrays["x"]),
        edge_index=torch.from_numpy(arrays["edge_index"]),
        in_weight=torch.from_numpy(arrays["in_weight"]),
        out_weight=torch.from_numpy(arrays["out_weight"]),
        alias=torch.from_numpy(arrays["alias"][0]),
        length=torch.tensor([len(seq)]),
        num_nodes=int(arrays["x"].shape[0]),
    )


def batch_transition_graphs(sessions: Sequence[Sequence[int]]) -> Batch:
    """Build and batch the transition graphs of several sessions (a disjoint union, ``batch`` maps nodes to sessions)."""
    return Batch.from_data_list([session_transition_graph(s) for s in sessions])


__all__ = ["SessionGraph", "batch_transition_graphs", "build_graph_batch", "session_transition_graph"]
