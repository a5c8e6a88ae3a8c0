"""Known-answer tests for the SR-GNN / TAGNN session transition graph."""

import pytest
import torch

from session_transformers.graphs.transition import (
    SessionGraph,
    batch_transition_graphs,
    session_transition_graph,
)


def edge_weights(graph: SessionGraph) -> dict[tuple[int, int], tuple[float, float]]:
    """``{(u, v): (in_weight, out_weight)}``, independent of edge order."""
    src, dst = graph.edge_index.tolist()
    return {
        (u, v): (wi, wo)
        for u, v, wi, wo in zip(src, dst, graph.in_weight.tolist(), graph.out_weight.tolist(), strict=True)
    }


def dense_reference(items: list[int]) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """SR-GNN's dense construction: count matrix, then divide by out-degree (rows) and in-degree (columns)."""
    nodes = list(dict.fromkeys(items))
    index = {item: i for i, item in enumerate(nodes)}
    counts = torch.zeros(len(nodes), len(nodes))
    for a, b in zip(items[:-1], items[1:]):
        counts[index[a], index[b]] += 1
    a_out = counts / counts.sum(1, keepdim=True).clamp(min=1)
    a_in = counts / counts.sum(0, keepdim=True).clamp(min=1)
    return nodes, a_in, a_out


def test_repeated_items_known_answer():
    graph = session_transition_graph([5, 7, 5, 9, 9])
    assert graph.x.tolist() == [5, 7, 9]  # unique items in order of first appearance
    assert graph.alias.tolist() == [0, 1, 0, 2, 2]
    assert graph.num_nodes == 3
    assert graph.length.tolist() == [5]
    # transitions 5->7, 7->5, 5->9, 9->9 each once; in-degrees (node 0,1,2) = 1,1,2, out-degrees = 2,1,1
    assert edge_weights(graph) == {
        (0, 1): (1.0, 0.5),
        (1, 0): (1.0, 1.0),
        (0, 2): (0.5, 0.5),
        (2, 2): (0.5, 1.0),
    }
    assert graph.x.dtype == graph.alias.dtype == graph.edge_index.dtype == torch.long


def test_repeated_transitions_are_counted():
    # 1->2 twice, 2->1 twice, 1->3 once: out-degree of node 0 is 3, in-degree of node 0 is 2
    graph = session_transition_graph([1, 2, 1, 2, 1, 3])
    assert graph.x.tolist() == [1, 2, 3]
    assert graph.alias.tolist() == [0, 1, 0, 1, 0, 2]
    weights = edge_weights(graph)
    assert set(weights) == {(0, 1), (1, 0), (0, 2)}
    assert weights[(0, 1)] == pytest.approx((1.0, 2 / 3))
    assert weights[(1, 0)] == pytest.approx((1.0, 1.0))
    assert weights[(0, 2)] == pytest.approx((1.0, 1 / 3))


def test_length_one_session_has_one_node_and_no_edges():
    graph = session_transition_graph([42])
    assert graph.x.tolist() == [42]
    assert graph.alias.tolist() == [0]
    assert graph.edge_index.shape == (2, 0)
    assert graph.in_weight.numel() == graph.out_weight.numel() == 0
    assert graph.num_nodes == 1


def test_self_loop_from_a_repeated_consecutive_item():
    graph = session_transition_graph([3, 3])
    assert graph.x.tolist() == [3]
    assert graph.alias.tolist() == [0, 0]
    assert edge_weights(graph) == {(0, 0): (1.0, 1.0)}

    graph = session_transition_graph([3, 3, 3, 4])  # 3->3 twice, 3->4 once
    weights = edge_weights(graph)
    assert weights[(0, 0)] == pytest.approx((1.0, 2 / 3))
    assert weights[(0, 1)] == pytest.approx((1.0, 1 / 3))


def test_tensor_input_and_node_states_scatter_back_to_positions():
    graph = session_transition_graph(torch.tensor([[8, 6, 8]]))  # flattened
    assert graph.x.tolist() == [8, 6]
    h = torch.tensor([[10.0], [20.0]])  # one state per node
    assert h[graph.alias].flatten().tolist() == [10.0, 20.0, 10.0]


@pytest.mark.parametrize("seed", range(5))
def test_matches_dense_srgnn_matrices(seed):
    generator = torch.Generator().manual_seed(seed)
    items = torch.randint(1, 6, (12,), generator=generator).tolist()
    graph = session_transition_graph(items)
    nodes, a_in, a_out = dense_reference(items)
    assert graph.x.tolist() == nodes
    n = len(nodes)
    dense_in = torch.zeros(n, n).index_put_(tuple(graph.edge_index), graph.in_weight)
    dense_out = torch.zeros(n, n).index_put_(tuple(graph.edge_index), graph.out_weight)
    torch.testing.assert_close(dense_in, a_in)
    torch.testing.assert_close(dense_out, a_out)


def test_batching_offsets_alias_and_edge_index():
    batch = batch_transition_graphs([[5, 7, 5, 9, 9], [3, 3], [1]])
    assert batch.num_graphs == 3
    assert batch.x.tolist() == [5, 7, 9, 3, 1]
    assert batch.batch.tolist() == [0, 0, 0, 1, 2]
    assert batch.ptr.tolist() == [0, 3, 4, 5]
    assert batch.alias.tolist() == [0, 1, 0, 2, 2, 3, 3, 4]  # second session offset by 3 nodes, third by 4
    assert batch.length.tolist() == [5, 2, 1]
    edges = set(map(tuple, batch.edge_index.t().tolist()))
    assert edges == {(0, 1), (1, 0), (0, 2), (2, 2), (3, 3)}
    # node states gathered through alias give each position its own item
    assert batch.x[batch.alias].tolist() == [5, 7, 5, 9, 9, 3, 3, 1]
    # the session of each position, recovered from the node -> graph map
    assert batch.batch[batch.alias].tolist() == [0] * 5 + [1] * 2 + [2]


def test_a_session_alone_equals_the_same_session_in_a_batch():
    alone = session_transition_graph([2, 4, 2])
    batch = batch_transition_graphs([[9, 9, 9], [2, 4, 2]])
    second = batch.get_example(1)
    assert second.x.tolist() == alone.x.tolist()
    assert second.alias.tolist() == alone.alias.tolist()
    assert edge_weights(second) == edge_weights(alone)


def test_empty_session_raises():
    with pytest.raises(ValueError, match="at least one item"):
        session_transition_graph([])
    with pytest.raises(ValueError, match="at least one item"):
        batch_transition_graphs([[1, 2], []])
