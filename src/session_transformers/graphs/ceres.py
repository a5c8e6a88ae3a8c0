"""The CERES relational session graph (Section 2 of the CERES paper).

A session is a relational graph ``G = (V, E)``. The vertex set ``V = (Q, P)`` holds the session's **queries**
``Q = (q_1, ..., q_n)``, ordered by search time, and its **products** ``P`` (a set: a product acted on
several times is one node). The edge set has two kinds of edges:

- **query-query** edges ``(q_i, q_j), i < j``: one-directional, connecting each query to *every* earlier
  query. They are stored ``source = q_i`` (earlier), ``target = q_j`` (later), so that in message passing
  (torch_geometric aggregates at the target) each query gathers all of its previous queries.
- **query-product** edges ``(q_i, p_j, a_ij)``: bidirectional, typed by the action ``a_ij`` the customer took
  on product ``p_j`` retrieved by query ``q_i`` (``view``, ``click``, ``add_to_cart``, ``purchase``). The
  package schema does not say which query retrieved a product, so a product event is attached to the most
  recent preceding query of the session. A product acted on before any query has no query edge. Each distinct
  ``(query, product, action)`` triple gives one edge in each direction; repeated identical events add nothing.

Nodes are numbered in order of first appearance in the session (queries and products interleaved), and
``position`` is that order index, used for the item position embeddings of the position-aware GNN.

Image queries are skipped: CERES models text only. Graphs batch as a disjoint union with
``torch_geometric.data.Batch.from_data_list`` (``edge_index`` is offset, ``position`` is not).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch_geometric.data import Data

from ..data.schema import QUERY_SUBJECTS  # the subjects that become query nodes (image ones are skipped)

QUERY_QUERY_EDGE = "previous_query"
"""Name of the query-query relation (each query to every earlier query)."""

PRODUCT_ACTIONS: tuple[str, ...] = ("view", "click", "add_to_cart", "purchase")
"""Actions that type the query-product edges, in edge-type order after :data:`QUERY_QUERY_EDGE`."""

EDGE_TYPES: tuple[str, ...] = (QUERY_QUERY_EDGE, *PRODUCT_ACTIONS)
"""Edge type vocabulary: ``edge_type`` indexes this tuple."""

NODE_KINDS: tuple[str, ...] = ("query", "product")
"""Node kind vocabulary: ``node_kind`` indexes this tuple (0 = query, 1 = product)."""


def ceres_session_items(
    events: Sequence[Mapping[str, Any]], product_actions: Sequence[str] = PRODUCT_ACTIONS
) -> tuple[list[tuple[str, str]], list[tuple[int, int, str]]]:
    """The session's nodes and query-product interactions, without building tensors.

    Returns:
        ``items``: one ``(kind, key)`` per node in order of first appearance, where ``kind`` is ``"query"``
        (``key`` = query text; every query event is its own node) or ``"product"`` (``key`` = item id; one node
        per distinct item).
        ``interactions``: ``(query_node, product_node, action)`` triples, deduplicated, in order.
    """
    items: list[tuple[str, str]] = []
    product_node: dict[str, int] = {}
    interactions: list[tuple[int, int, str]] = []
    seen: set[tuple[int, int, str]] = set()
    last_query: int | None = None
    for ev in events:
        subject = ev.get("subject")
        if subject in QUERY_SUBJECTS:
            last_query = len(items)
            items.append(("query", ev["query"]))
        elif subject == "item":
            item_id = ev["item_id"]
            if item_id not in product_node:
                product_node[item_id] = len(items)
                items.append(("product", item_id))
            action = ev.get("action")
            if last_query is None or action not in product_actions:
                continue
            triple = (last_query, product_node[item_id], action)
            if triple not in seen:
                seen.add(triple)
                interactions.append(triple)
    return items, interactions


def ceres_session_graph(
    events: Sequence[Mapping[str, Any]], product_actions: Sequence[str] = PRODUCT_ACTIONS
) -> Data:
    """Build the CERES relational graph of one session (see the module docstring).

    Args:
        events: the session's events in the package schema (``session["events"]``).
        product_actions: actions that create query-product edges, in edge-type order (edge type ``1 + index``).

    Returns:
        A ``Data`` with ``edge_index`` ``(2, |E|)``, ``edge_type`` ``(|E|,)`` (indexes ``("previous_query",
        *product_actions)``), ``position`` ``(|V|,)``, ``node_kind`` ``(|V|,)`` (0 query, 1 product) and
        ``item_keys``: the list of ``(kind, key)`` per node.

    Raises:
        ValueError: if the session has no text item (e.g. only image queries).
    """
    items, interactions = ceres_session_items(events, product_actions)
    if not items:
        raise ValueError(
            "a CERES session graph needs at least one query or product (image queries are skipped)"
        )
    kinds = torch.tensor([NODE_KINDS.index(kind) for kind, _ in items], dtype=torch.long)
    queries = torch.nonzero(kinds == 0).flatten()
    # Query-query: every (earlier, later) pair, source = earlier query.
    earlier, later = torch.triu_indices(queries.numel(), queries.numel(), offset=1)
    qq = torch.stack([queries[earlier], queries[later]])
    # Query-product: both directions, typed by the action.
    if interactions:
        q, p, acts = zip(*interactions)
        q, p = torch.tensor(q), torch.tensor(p)
        act_type = torch.tensor([1 + list(product_actions).index(a) for a in acts])
        qp = torch.cat([torch.stack([q, p]), torch.stack([p, q])], dim=1)
        qp_type = torch.cat([act_type, act_type])
    else:
        qp = torch.empty(2, 0, dtype=torch.long)
        qp_type = torch.empty(0, dtype=torch.long)
    edge_index = torch.cat([qq, qp], dim=1).long()
    edge_type = torch.cat([torch.zeros(qq.size(1), dtype=torch.long), qp_type])
    return Data(
        edge_index=edge_index,
        edge_type=edge_type,
        position=torch.arange(len(items)),
        node_kind=kinds,
        item_keys=items,
        num_nodes=len(items),
    )


__all__ = [
    "EDGE_TYPES",
    "NODE_KINDS",
    "PRODUCT_ACTIONS",
    "QUERY_QUERY_EDGE",
    "QUERY_SUBJECTS",
    "ceres_session_graph",
    "ceres_session_items",
]
