"""MuvcogProcessor: word vectors, session encoding (against the per-session reference graphs), batching, masking,
save / load, errors. MUVCOG's inputs (keyword, product and image queries) exist only in the synthetic store."""

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch
from transformers import AutoProcessor

from session_transformers.data.schema import image_event, item_event, query_event
from session_transformers.graphs.muvcog import build_views
from session_transformers.models.muvcog import MuvcogConfig, MuvcogProcessor
from session_transformers.models.muvcog.processing_muvcog import (
    click_code,
    iter_corpus,
    mask_one_query,
    tokenize,
    train_word_vectors,
)


@pytest.fixture(scope="module")
def store_sessions(tiny_store):
    return [s for s in tiny_store.iter_sessions(0, 120) if any(e["subject"] != "item" for e in s["events"])]


@pytest.fixture(scope="module")
def processor(tiny_store, store_sessions):
    return MuvcogProcessor.from_corpus(
        iter_corpus(store_sessions, tiny_store.catalogue), image_dim=16, epochs=2
    )


def test_word_vectors_are_seeded_and_learn_co_occurrence():
    # two topics whose words only ever co-occur within their topic
    r = np.random.default_rng(0)
    a, b = ["red", "dress", "silk", "gown"], ["steel", "drill", "bolt", "nut"]
    sentences = [list(r.choice(a, 3)) for _ in range(300)] + [list(r.choice(b, 3)) for _ in range(300)]
    vocab, vectors = train_word_vectors(sentences, 16, epochs=5, seed=1)
    vocab2, vectors2 = train_word_vectors(sentences, 16, epochs=5, seed=1)
    assert vocab == vocab2 and torch.equal(vectors, vectors2)
    unit = torch.nn.functional.normalize(vectors, dim=1)
    idx = {w: i for i, w in enumerate(vocab)}
    within = np.mean([float(unit[idx[x]] @ unit[idx[y]]) for t in (a, b) for x in t for y in t if x != y])
    across = np.mean([float(unit[idx[x]] @ unit[idx[y]]) for x in a for y in b])
    assert within > across + 0.3, (within, across)


def test_encode_matches_the_reference_graphs(processor, store_sessions):
    """The processor's flat encoding + vectorised batching gives the per-session reference views, batched."""
    lookup = processor._index

    def ids(text):
        return [lookup[w] for w in tokenize(text) if w in lookup]

    sessions = store_sessions[:40]
    batch = processor(sessions)
    reference = [build_views(s, ids, image_dim=16) for s in sessions]
    for position, name in enumerate(("global_view", "local_view")):
        ref = Batch.from_data_list([r[position] for r in reference])
        view = batch[name]
        for node_type in view.node_types:
            for key in ("x", "batch", "ptr", "position"):
                if key in ref[node_type]:
                    assert torch.equal(view[node_type][key], ref[node_type][key]), (name, node_type, key)
        for edge_type in view.edge_types:
            assert torch.equal(view[edge_type].edge_index, ref[edge_type].edge_index), (name, edge_type)
    assert batch["num_queries"].tolist() == [processor.encode(s).num_queries for s in sessions]
    assert batch["global_view"]["IQ"].x.shape[1] == 16


def test_save_load_round_trip_and_auto_processor(processor, store_sessions, tmp_path):
    processor.set_item_vocab(["b", "a", "a"])
    processor.save_pretrained(tmp_path)
    assert (tmp_path / "word_vectors.safetensors").exists()
    assert "word_vectors" not in (tmp_path / "processor_config.json").read_text()
    loaded = MuvcogProcessor.from_pretrained(tmp_path)
    assert loaded.vocab == processor.vocab and torch.equal(loaded.word_vectors, processor.word_vectors)
    assert loaded.item_vocab == ["a", "b"] and loaded.item_index("b") == 1 and loaded.item_index("zz") == -100
    MuvcogConfig(vocab_size=loaded.vocab_size, image_dim=16).save_pretrained(tmp_path)
    auto = AutoProcessor.from_pretrained(tmp_path)
    assert type(auto) is MuvcogProcessor and auto.image_dim == 16
    a, b = processor(store_sessions[:5]), auto(store_sessions[:5])
    for et in a["global_view"].edge_types:
        assert torch.equal(a["global_view"][et].edge_index, b["global_view"][et].edge_index)


def test_word_vectors_file(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text("3 2\nred 0.5 1.0\ndress -1 2\nsilk 0 0\n")
    processor = MuvcogProcessor.from_word_vectors_file(path, image_dim=2)
    assert processor.vocab == ["red", "dress", "silk"] and processor.word_dim == 2
    assert processor.word_vectors[1].tolist() == [-1.0, 2.0]
    assert processor.word_ids("Red red SHOES dress") == [0, 1]
    path.write_text("red 0.5 1.0\ndress 1\n")
    with pytest.raises(ValueError, match="line 2"):
        MuvcogProcessor.from_word_vectors_file(path)


def test_query_types_grouping_and_text_only():
    processor = MuvcogProcessor(["red", "dress", "long"], np.eye(3, 4), image_dim=2)
    session = {
        "session_id": "s",
        "events": [
            query_event("search", "red dress", 0.0),
            item_event("click", "A", 1.0),
            query_event("search", "red long", 2.0, product=True),
            image_event("search", [1.0, 0.0], 2.0),  # same timestamp: one "search similar" query
            image_event("search", [1.0, 0.0], 3.0),  # the same image again: one IQ node
        ],
    }
    enc = processor.encode(session)
    assert enc.num_queries == 3
    assert enc.node_type.tolist() == [0, 0, 1, 1, 2, 2]  # "red" is a KQ node and a PQ node
    assert enc.key.tolist() == [0, 1, 0, 2, 0, 0] and enc.images.shape == (1, 2)
    text = MuvcogProcessor(["red", "dress", "long"], np.eye(3, 4), image_dim=2, text_only=True).encode(
        session
    )
    assert text.num_queries == 2 and 2 not in text.node_type.tolist()
    assert processor.clicked_items(session) == ["A"]
    assert click_code("A") == click_code("A") != click_code("B") and click_code("A") >= 0


def test_mask_one_query():
    processor = MuvcogProcessor(["red", "dress", "long"], np.eye(3, 4), image_dim=2)
    session = {
        "session_id": "s",
        "events": [query_event("search", "red", 0.0), query_event("search", "dress long", 1.0)],
    }
    enc = processor.encode(session)
    g = torch.Generator().manual_seed(0)
    masked = [mask_one_query(enc, g) for _ in range(20)]
    assert all(m.num_queries == 1 for m in masked)
    kept = {tuple(m.key.tolist()) for m in masked}
    assert kept == {(0,), (1, 2)}  # either whole query goes, with all its words
    assert all(m.query.tolist() == [0] * len(m.query) for m in masked)
    one = processor.encode({"session_id": "o", "events": [query_event("search", "dress long", 0.0)]})
    assert mask_one_query(one, g).key.size == 1  # one query: one node of it masked instead


def test_errors_name_the_record_and_field():
    processor = MuvcogProcessor(["red"], np.zeros((1, 50)), image_dim=4)
    with pytest.raises(ValueError, match=r"session 'x', event 0: field 'image' has size 2"):
        processor.encode({"session_id": "x", "events": [image_event("search", [1.0, 2.0])]})
    with pytest.raises(ValueError, match=r"session 'y'.*no query"):
        processor.encode({"session_id": "y", "events": [query_event("search", "blue shoes")]})
    with pytest.raises(ValueError, match=r"session 'z', event 0: field 'query'"):
        processor.encode({"session_id": "z", "events": [{**query_event("search", "red"), "query": None}]})
    with pytest.raises(ValueError, match="word_vectors"):
        MuvcogProcessor(["a", "b"], np.zeros((3, 5)))
    with pytest.raises(ValueError, match="grouping"):
        MuvcogProcessor(["a"], grouping="minute")


# --- bad records (benchmarks/bad_inputs.py): refused by name, never NaN or a foreign exception ---------------------


def test_non_finite_or_non_numeric_image_vectors_are_refused():
    """A NaN or inf image vector used to reach the model in ``IQ.x``; a vector of strings raised numpy's
    ValueError naming nothing."""
    from session_transformers.data.schema import InvalidRecordError

    processor = MuvcogProcessor(["red"], np.zeros((1, 8)), image_dim=4)
    ok = processor([{"session_id": "ok", "events": [image_event("search", [0.1, 0.2, 0.3, 0.4])]}])
    assert torch.isfinite(ok["global_view"]["IQ"].x).all()
    for vector in (
        [0.1, float("nan"), 0.3, 0.4],
        [float("inf")] * 4,
        [1e308] * 4,
        ["a", "b", "c", "d"],
        [[1.0]] * 4,
    ):
        event = {**image_event("search", [0.0] * 4), "image": vector}
        with pytest.raises(InvalidRecordError, match=r"session 'x'.*field 'events\[1\]\.image'"):
            processor([{"session_id": "x", "events": [query_event("search", "red"), event]}])
    with pytest.raises(ValueError, match=r"session 'y', event 0: field 'image' has size None"):
        processor([{"session_id": "y", "events": [{**image_event("search", [0.0]), "image": 5}]}])


def test_malformed_sessions_are_refused_naming_the_session_and_field():
    """Used to crash with AttributeError / TypeError (an unhashable subject), or name no field."""
    from session_transformers.data.schema import InvalidRecordError

    processor = MuvcogProcessor(["red"], np.zeros((1, 8)), image_dim=4)
    red = query_event("search", "red")
    for session, field in [
        (None, "events"),
        ({"session_id": "a", "events": "red"}, "events"),
        ({"session_id": "b", "events": [red, ["search", "red"]]}, "events[1]"),
        ({"session_id": "c", "events": [{**red, "query": ["red"]}]}, "events[0].query"),
    ]:
        with pytest.raises(InvalidRecordError) as err:
            processor([{"session_id": "ok", "events": [red]}, session])
        assert err.value.field == field and err.value.index == 1
    with pytest.raises(ValueError, match=r"session 'd', event 0: unknown field 'subject'"):
        processor.encode({"session_id": "d", "events": [{**red, "subject": ["keyword_query"]}]})
    with pytest.raises(ValueError, match=r"session 3: no query"):  # no ID: named by its place in the batch
        processor.encode({"session_id": None, "events": [item_event("view", "a")]}, 3)
