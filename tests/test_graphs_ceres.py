"""Known-answer tests of the CERES relational session graph."""

import pytest
import torch
from torch_geometric.data import Batch

from session_transformers.data.schema import image_event, item_event, query_event
from session_transformers.graphs.ceres import EDGE_TYPES, ceres_session_graph

Q, V, C, A, P = (EDGE_TYPES.index(n) for n in ("previous_query", "view", "click", "add_to_cart", "purchase"))


def _edges(graph) -> set[tuple[int, int, int]]:
    return {(s, d, t) for (s, d), t in zip(graph.edge_index.T.tolist(), graph.edge_type.tolist())}


def test_queries_products_and_a_repeated_product():
    events = [
        query_event("search", "harry"),  # node 0
        item_event("view", "razor"),  # node 1
        query_event("search", "harry potter"),  # node 2
        item_event("view", "dvd"),  # node 3
        item_event("view", "dvd"),  # repeated: same node, same edge
        item_event("click", "dvd"),  # same node, a new edge type
        query_event("search", "harry potter book"),  # node 4
        item_event("add_to_cart", "book"),  # node 5
        item_event("purchase", "book"),
    ]
    g = ceres_session_graph(events)
    assert g.num_nodes == 6
    assert g.item_keys == [
        ("query", "harry"),
        ("product", "razor"),
        ("query", "harry potter"),
        ("product", "dvd"),
        ("query", "harry potter book"),
        ("product", "book"),
    ]
    assert g.node_kind.tolist() == [0, 1, 0, 1, 0, 1]
    assert g.position.tolist() == [0, 1, 2, 3, 4, 5]
    expected = {
        # every query to every earlier query, stored earlier -> later
        (0, 2, Q),
        (0, 4, Q),
        (2, 4, Q),
        # query-product edges in both directions, typed by the action
        (0, 1, V),
        (1, 0, V),
        (2, 3, V),
        (3, 2, V),
        (2, 3, C),
        (3, 2, C),
        (4, 5, A),
        (5, 4, A),
        (4, 5, P),
        (5, 4, P),
    }
    assert _edges(g) == expected
    assert g.edge_index.size(1) == len(expected)  # no duplicate edges


def test_length_one_session():
    g = ceres_session_graph([item_event("view", "p1")])
    assert g.num_nodes == 1 and g.edge_index.shape == (2, 0) and g.edge_type.shape == (0,)
    assert g.position.tolist() == [0] and g.node_kind.tolist() == [1]


def test_session_without_query_has_no_edges():
    g = ceres_session_graph([item_event("view", "a"), item_event("view", "b"), item_event("purchase", "a")])
    assert g.num_nodes == 2 and g.edge_index.size(1) == 0
    assert g.item_keys == [("product", "a"), ("product", "b")]


def test_products_before_the_first_query_are_not_linked_and_image_queries_are_skipped():
    events = [
        item_event("view", "a"),
        image_event("search", [0.1, 0.2]),
        query_event("search", "x"),
        item_event("view", "b"),
        query_event("search", "shoes like this", product=True),
    ]
    g = ceres_session_graph(events)
    assert g.item_keys == [("product", "a"), ("query", "x"), ("product", "b"), ("query", "shoes like this")]
    assert _edges(g) == {(1, 2, V), (2, 1, V), (1, 3, Q)}


def test_only_image_queries_raise():
    with pytest.raises(ValueError, match="at least one query or product"):
        ceres_session_graph([image_event("search", [0.0, 1.0])])


def test_batching_offsets_edges_not_positions():
    g1 = ceres_session_graph([query_event("search", "a"), item_event("view", "p")])
    g2 = ceres_session_graph([query_event("search", "b"), query_event("search", "c")])
    batch = Batch.from_data_list([g1, g2])
    assert batch.edge_index.tolist() == [[0, 1, 2], [1, 0, 3]]
    assert batch.edge_type.tolist() == [V, V, Q]
    assert batch.position.tolist() == [0, 1, 0, 1]
    assert batch.batch.tolist() == [0, 0, 1, 1]
    assert torch.equal(batch.node_kind, torch.tensor([0, 1, 0, 0]))


def test_query_subjects_are_defined_once_in_the_schema():
    import re
    from pathlib import Path

    import session_transformers
    from session_transformers.data import schema
    from session_transformers.graphs import ceres as ceres_graphs
    from session_transformers.models.ceres import tasks

    assert schema.QUERY_SUBJECTS == ("keyword_query", "product_query")
    assert (
        ceres_graphs.QUERY_SUBJECTS is schema.QUERY_SUBJECTS and tasks.QUERY_SUBJECTS is schema.QUERY_SUBJECTS
    )
    package = Path(session_transformers.__file__).parent
    defined = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if re.search(r"^QUERY_SUBJECTS\b[^=\n]*=", path.read_text(), flags=re.MULTILINE)
    ]
    assert defined == ["data/schema.py"]
