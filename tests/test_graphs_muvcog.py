"""Known-answer tests for the MUVCOG attentive global view and hierarchical local view."""

import pytest
import torch
from torch_geometric.data import Batch

from session_transformers.data.schema import image_event, item_event, query_event
from session_transformers.graphs.muvcog import (
    GLOBAL_EDGE_TYPES,
    LOCAL_EDGE_TYPES,
    MuvcogQuery,
    batch_views_from_queries,
    build_global_view,
    build_local_view,
    build_views,
    session_queries,
    views_from_queries,
)

VOCAB = {"red": 1, "dress": 2, "long": 3, "cotton": 4, "summer": 5}
CATALOGUE = {
    "A": {"title": "Cotton Summer dress", "image": [0.0, 1.0]},
    "B": {"title": "long", "image": None},
}


def three_query_session():
    """keyword "red dress" -> (click) -> product query "red long dress" + its image query -> "red dress dress cotton"."""
    return {
        "session_id": "s1",
        "events": [
            query_event("search", "red dress", 0.0),
            item_event("click", "A", 1.0),
            query_event("search", "red long dress", 2.0, product=True),
            # same timestamp as the product query: one multi-modal query
            image_event("search", [1.0, 0.0], 2.0),
            query_event("search", "red dress dress cotton", 3.0),
        ],
    }


def one_query_session():
    return {
        "session_id": "s2",
        "events": [query_event("search", "red dress", 0.0), item_event("view", "B", 1.0)],
    }


def edges(data, edge_type):
    return [tuple(e) for e in data[edge_type].edge_index.t().tolist()]


def all_pairs(n):
    return [(a, b) for a in range(n) for b in range(n) if a != b]


def test_session_queries():
    queries = session_queries(three_query_session(), VOCAB)
    assert queries == [
        MuvcogQuery(keyword_words=(1, 2)),
        MuvcogQuery(product_words=(1, 3, 2), images=((1.0, 0.0),)),
        MuvcogQuery(keyword_words=(1, 2, 4)),  # the repeated "dress" counts once
    ]
    by_event = session_queries(three_query_session(), VOCAB, grouping="event")
    assert [q.nodes() for q in by_event[1:3]] == [[("PQ", 1), ("PQ", 3), ("PQ", 2)], [("IQ", (1.0, 0.0))]]
    # a callable tokenizer gives the same result as the vocabulary
    tokenize = lambda text: [VOCAB[w] for w in text.lower().split() if w in VOCAB]  # noqa: E731
    assert session_queries(three_query_session(), tokenize) == queries


def test_global_view_known_answer():
    data = build_global_view(three_query_session(), VOCAB)
    assert set(data.node_types) == {"KQ", "PQ", "IQ"}
    assert set(data.edge_types) == set(GLOBAL_EDGE_TYPES)
    # "red" is both a KQ node and a PQ node; each distinct word of a type is one node
    assert data["KQ"].x.tolist() == [1, 2, 4]  # red, dress, cotton
    assert data["PQ"].x.tolist() == [1, 3, 2]  # red, long, dress
    assert data["IQ"].x.tolist() == [[1.0, 0.0]]
    assert data.num_queries.tolist() == [3]
    # co-occur: both directions between distinct words of the same query (q0 and q2 for KQ, q1 for PQ)
    assert edges(data, ("KQ", "CO", "KQ")) == all_pairs(3)
    assert edges(data, ("PQ", "CO", "PQ")) == all_pairs(3)
    assert edges(data, ("KQ", "CO", "PQ")) == edges(data, ("PQ", "CO", "KQ")) == []
    # refine: every node of a query to every node of the next query only
    assert edges(data, ("KQ", "RF", "PQ")) == [(a, b) for a in range(2) for b in range(3)]  # q0 -> q1 words
    assert edges(data, ("KQ", "RF", "IQ")) == [(0, 0), (1, 0)]  # q0 -> q1 image
    assert edges(data, ("PQ", "RF", "KQ")) == [(a, b) for a in range(3) for b in range(3)]  # q1 -> q2
    assert edges(data, ("IQ", "RF", "KQ")) == [(0, 0), (0, 1), (0, 2)]
    assert edges(data, ("KQ", "RF", "KQ")) == []  # q0 and q2 are not consecutive
    assert edges(data, ("IQ", "RF", "IQ")) == edges(data, ("PQ", "RF", "PQ")) == []
    data.validate()


def test_global_view_refine_self_loops_and_event_grouping():
    session = {
        "session_id": "s3",
        "events": [query_event("search", "red dress", 0.0), query_event("search", "red cotton dress", 1.0)],
    }
    data = build_global_view(session, VOCAB)
    # "red" and "dress" survive the refinement: node 0 -> 0 and 1 -> 1 are refine edges too
    assert edges(data, ("KQ", "RF", "KQ")) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    by_event = build_global_view(three_query_session(), VOCAB, grouping="event")
    assert by_event.num_queries.tolist() == [4]
    assert edges(by_event, ("PQ", "RF", "IQ")) == [(0, 0), (1, 0), (2, 0)]
    assert edges(by_event, ("PQ", "RF", "KQ")) == []  # the image query now sits between them


def test_local_view_known_answer():
    data = build_local_view(three_query_session(), VOCAB)
    assert set(data.node_types) == {"KQ", "PQ", "IQ", "VQ"}
    assert set(data.edge_types) == set(LOCAL_EDGE_TYPES)
    assert data["KQ"].x.tolist() == [1, 2, 4] and data["PQ"].x.tolist() == [1, 3, 2]
    assert data["VQ"].num_nodes == 3
    assert data["VQ"].position.tolist() == [0, 1, 2]
    # each word / image -> the virtual node of every query it belongs to
    assert edges(data, ("KQ", "CO", "VQ")) == [(0, 0), (0, 2), (1, 0), (1, 2), (2, 2)]
    assert edges(data, ("PQ", "CO", "VQ")) == [(0, 1), (1, 1), (2, 1)]
    assert edges(data, ("IQ", "CO", "VQ")) == [(0, 1)]
    assert edges(data, ("VQ", "RF", "VQ")) == [(0, 1), (1, 2)]
    data.validate()


def test_both_views_share_nodes():
    views = build_views(three_query_session(), VOCAB)
    for node_type in ("KQ", "PQ", "IQ"):
        assert torch.equal(views.global_view[node_type].x, views.local_view[node_type].x)


def test_one_query_session():
    views = build_views(one_query_session(), VOCAB, image_dim=2)
    agv, hlv = views
    assert agv["KQ"].x.tolist() == [1, 2]
    assert agv["PQ"].x.shape == (0,) and agv["IQ"].x.shape == (0, 2)
    assert edges(agv, ("KQ", "CO", "KQ")) == [(0, 1), (1, 0)]
    assert all(agv[et].edge_index.shape == (2, 0) for et in GLOBAL_EDGE_TYPES if et[1] == "RF")
    assert hlv["VQ"].num_nodes == 1
    assert edges(hlv, ("KQ", "CO", "VQ")) == [(0, 0), (1, 0)]
    assert edges(hlv, ("VQ", "RF", "VQ")) == []


def test_image_only_session_and_repeated_images():
    session = {
        "session_id": "s4",
        "events": [image_event("search", [0.5, 0.5], 0.0), image_event("search", [0.5, 0.5], 1.0)],
    }
    agv, hlv = build_views(session, VOCAB)
    assert agv["IQ"].x.tolist() == [[0.5, 0.5]]  # one node per distinct image
    assert edges(agv, ("IQ", "RF", "IQ")) == [(0, 0)]
    assert edges(hlv, ("IQ", "CO", "VQ")) == [(0, 0), (0, 1)]


def test_item_actions_extension():
    queries = session_queries(three_query_session(), VOCAB, CATALOGUE, item_actions=("click",))
    assert queries[1] == MuvcogQuery(product_words=(4, 5, 2), images=((0.0, 1.0),))
    assert len(queries) == 4
    agv = build_global_view(three_query_session(), VOCAB, CATALOGUE, item_actions=("click",))
    assert agv["PQ"].x.tolist() == [4, 5, 2, 1, 3]  # the clicked title's words come first
    assert agv["IQ"].x.tolist() == [[0.0, 1.0], [1.0, 0.0]]
    with pytest.raises(KeyError, match="not in the catalogue"):
        session_queries(three_query_session(), VOCAB, {}, item_actions=("click",))


def test_batching_views_of_many_sessions():
    sessions = [three_query_session(), one_query_session()]
    views = [build_views(s, VOCAB, image_dim=2) for s in sessions]
    agv = Batch.from_data_list([v.global_view for v in views])
    assert agv.num_graphs == 2
    assert agv["KQ"].x.tolist() == [1, 2, 4, 1, 2]
    assert agv["KQ"].batch.tolist() == [0, 0, 0, 1, 1]
    assert agv["IQ"].x.shape == (1, 2) and agv["IQ"].batch.tolist() == [0]
    co = edges(agv, ("KQ", "CO", "KQ"))
    assert co == all_pairs(3) + [(3, 4), (4, 3)]  # the second session's nodes are offset by 3
    assert agv.num_queries.tolist() == [3, 1]
    hlv = Batch.from_data_list([v.local_view for v in views])
    assert hlv["VQ"].batch.tolist() == [0, 0, 0, 1]
    assert edges(hlv, ("VQ", "RF", "VQ")) == [(0, 1), (1, 2)]
    assert edges(hlv, ("KQ", "CO", "VQ"))[-2:] == [(3, 3), (4, 3)]
    assert hlv["VQ"].position.tolist() == [0, 1, 2, 0]
    # one session out of the batch equals the session built alone
    alone = views[1].local_view
    second = hlv.get_example(1)
    for et in LOCAL_EDGE_TYPES:
        assert torch.equal(second[et].edge_index, alone[et].edge_index)
    assert agv.metadata() == views[0].global_view.metadata()


def test_direct_batching_equals_batch_from_data_list():
    sessions = [three_query_session(), one_query_session(), three_query_session()]
    queries = [session_queries(s, VOCAB) for s in sessions]
    direct = batch_views_from_queries(queries)  # image_dim inferred from the sessions that have images
    views = [views_from_queries(q, image_dim=2) for q in queries]
    for position, view in enumerate(direct):
        reference = Batch.from_data_list([v[position] for v in views])
        assert set(view.node_types) == set(reference.node_types)
        assert set(view.edge_types) == set(reference.edge_types)
        for node_type in view.node_types:
            for key in ("x", "batch", "ptr", "position"):
                if key in reference[node_type]:
                    assert torch.equal(view[node_type][key], reference[node_type][key]), (node_type, key)
            assert view[node_type].num_nodes == reference[node_type].num_nodes
        for edge_type in view.edge_types:
            assert torch.equal(view[edge_type].edge_index, reference[edge_type].edge_index), edge_type
        assert torch.equal(view.num_queries, reference.num_queries)
    with pytest.raises(ValueError, match="at least one session"):
        batch_views_from_queries([])


def test_masked_query_positive():
    queries = session_queries(three_query_session(), VOCAB)
    masked = views_from_queries(queries[:1] + queries[2:])  # the paper's positive: one query removed
    assert masked.global_view.num_queries.tolist() == [2]
    assert masked.global_view["PQ"].x.numel() == 0 and masked.global_view["IQ"].x.shape[0] == 0
    assert edges(masked.global_view, ("KQ", "RF", "KQ")) == [(a, b) for a in range(2) for b in range(3)]


def test_errors():
    no_query = {"session_id": "s5", "events": [item_event("view", "A")]}
    with pytest.raises(ValueError, match="at least one query"):
        build_global_view(no_query, VOCAB)
    unknown_words = {"session_id": "s6", "events": [query_event("search", "blue shoes")]}
    with pytest.raises(ValueError, match="at least one query"):
        build_local_view(unknown_words, VOCAB)
    with pytest.raises(ValueError, match="grouping"):
        session_queries(three_query_session(), VOCAB, grouping="minute")
    with pytest.raises(ValueError, match="different sizes"):
        build_global_view(three_query_session(), VOCAB, image_dim=3)
    with pytest.raises(TypeError, match="tokenize"):
        session_queries(three_query_session(), 42)


def _random_sessions(n: int, seed: int, image_dim: int = 4):
    """Random sessions with repeated words, repeated and shared images, one-query and image-only sessions."""
    import random

    from session_transformers.data.schema import image_event, item_event, query_event

    r = random.Random(seed)
    words = list(VOCAB) + ["blue", "shoes"]  # two unknown words: dropped
    images = [[r.choice([0.0, 1.0]) for _ in range(image_dim)] for _ in range(3)]
    sessions = []
    for i in range(n):
        events, ts = [], 0.0
        for _ in range(r.choice([1, 1, 2, 3, 5, 8])):
            ts += r.choice([0.0, 1.0, 1.0])  # 0: the next query event shares the timestamp (one query)
            kind = r.random()
            if kind < 0.45:
                events.append(query_event("search", " ".join(r.choices(words, k=r.randint(1, 4))), ts))
            elif kind < 0.75:
                events.append(
                    query_event("search", " ".join(r.choices(words, k=r.randint(1, 6))), ts, product=True)
                )
            else:
                events.append(image_event("search", r.choice(images), ts))
            if r.random() < 0.3:
                events.append(item_event("click", "A", ts + 0.5))
        sessions.append({"session_id": f"r{i}", "events": events})
    return sessions


@pytest.mark.parametrize("grouping", ["timestamp", "event"])
def test_vectorised_batching_equals_per_session_reference(grouping):
    """The vectorised builder (numpy over the whole batch) against the per-session dense builder + Batch."""
    sessions = [
        q for s in _random_sessions(120, seed=3) if (q := session_queries(s, VOCAB, grouping=grouping))
    ]
    assert any(len(q) == 1 for q in sessions) and any(len(q) >= 5 for q in sessions)
    direct = batch_views_from_queries(sessions, image_dim=4)
    views = [views_from_queries(q, image_dim=4) for q in sessions]
    for position, view in enumerate(direct):
        reference = Batch.from_data_list([v[position] for v in views])
        for node_type in view.node_types:
            for key in ("x", "batch", "ptr", "position"):
                if key in reference[node_type]:
                    assert torch.equal(view[node_type][key], reference[node_type][key]), (node_type, key)
        for edge_type in view.edge_types:
            assert torch.equal(view[edge_type].edge_index, reference[edge_type].edge_index), edge_type
        assert torch.equal(view.num_queries, reference.num_queries)


def test_encoded_sessions_batch_like_queries():
    from session_transformers.graphs.muvcog import batch_encoded_views, encode_queries

    queries = [session_queries(s, VOCAB) for s in (three_query_session(), one_query_session())]
    encoded = [encode_queries(q, image_dim=2) for q in queries]
    assert encoded[0].num_queries == 3 and encoded[0].images.shape == (1, 2)
    assert encoded[0].node_type.tolist() == [0, 0, 1, 1, 1, 2, 0, 0, 0]
    a, b = batch_encoded_views(encoded), batch_views_from_queries(queries)
    for view_a, view_b in zip(a, b):
        for edge_type in view_a.edge_types:
            assert torch.equal(view_a[edge_type].edge_index, view_b[edge_type].edge_index)
    with pytest.raises(ValueError, match="different sizes"):
        batch_encoded_views(encoded, image_dim=3)
