"""Item embeddings to Parquet and to a FAISS index (session_transformers.export), on tiny checkpoints."""

import builtins

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from transformers import AutoModel, AutoProcessor

from session_transformers import AutoModelForSessionRetrieval, export
from test_pipelines import build_tiny_checkpoint


@pytest.fixture(scope="module")
def tagnn_path(tmp_path_factory):
    return build_tiny_checkpoint(tmp_path_factory.mktemp("tagnn") / "ckpt", "tagnn_pp")


@pytest.fixture(scope="module")
def ceres_path(tmp_path_factory):
    return build_tiny_checkpoint(tmp_path_factory.mktemp("ceres") / "ckpt", "ceres")


def test_parquet_round_trip_tagnn(tagnn_path, tmp_path):
    model = AutoModel.from_pretrained(tagnn_path, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(tagnn_path)
    path = export.export_item_embeddings(model, processor, tmp_path / "items.parquet")
    table = pq.read_table(path)
    assert table.column_names == ["item_id", "embedding"]
    assert (
        str(table.schema.field("embedding").type)
        == f"fixed_size_list<element: float>[{model.config.hidden_size}]"
    )
    ids, vectors = export.read_parquet(path)
    assert ids == processor.item_vocab
    assert np.array_equal(vectors, model.get_input_embeddings().weight.detach().numpy()[1:])
    with pytest.raises(ValueError, match=r"expected \(2, D\)"):
        export.write_parquet(tmp_path / "bad.parquet", ["a", "b"], np.zeros((3, 4)))


@pytest.mark.parametrize("metric", ["cosine", "inner_product", "l2"])
def test_faiss_index_finds_each_item_itself(tagnn_path, tmp_path, metric):
    model = AutoModel.from_pretrained(tagnn_path, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(tagnn_path)
    ids, vectors = export.item_embeddings(model, processor)
    index = export.ItemIndex.build(ids, vectors, metric=metric)
    index.save(tmp_path / "idx")
    loaded = export.ItemIndex.load(tmp_path / "idx")
    assert len(loaded) == len(ids) and loaded.metric == metric
    hits = loaded.search(vectors[:10], k=3)
    if metric != "inner_product":  # an item is its own nearest neighbour by cosine and by distance
        assert [row[0][0] for row in hits] == ids[:10]
    # the scores are the brute-force ones, best first
    query = vectors[5]
    if metric == "cosine":
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        brute = unit @ (query / np.linalg.norm(query))
    elif metric == "inner_product":
        brute = vectors @ query
    else:
        brute = -((vectors - query) ** 2).sum(1)
    top = loaded.search(query, k=5)[0]
    assert [i for i, _ in top] == [ids[j] for j in np.argsort(-brute, kind="stable")[:5]]
    assert np.allclose([s for _, s in top], np.sort(brute)[::-1][:5], atol=1e-4)


def test_faiss_missing_gives_a_clear_error(monkeypatch):
    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("No module named 'faiss'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    with pytest.raises(ImportError, match=r"session_transformers\[faiss\]"):
        export.ItemIndex.build(["a"], np.ones((1, 4), dtype=np.float32))


def test_ceres_retrieval_index_ranks_like_the_model(ceres_path, tiny_store, tmp_path):
    """A CERES retrieval head's item index, queried with its session embedding, ranks products as the model."""
    head = AutoModelForSessionRetrieval.from_pretrained(ceres_path, dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(ceres_path)
    catalogue = tiny_store.catalogue[:30]
    index = export.export_faiss_index(
        head, processor, tmp_path / "ceres-idx", catalogue=catalogue, metric="inner_product"
    )
    assert len(index) == 30
    session = head.encode_sessions(["item-000001", "item-000002"], processor=processor, catalogue=catalogue)
    top = index.search(session, k=30)[0]
    vectors = head.encode_items(catalogue, processor=processor)
    scores = vectors @ session
    assert np.allclose(sorted(scores, reverse=True), [s for _, s in top], atol=1e-5)
    _, parquet_vectors = export.read_parquet(
        export.export_item_embeddings(head, processor, tmp_path / "c.parquet", catalogue=catalogue)
    )
    assert np.allclose(parquet_vectors, vectors, atol=1e-6)
    with pytest.raises(ValueError, match="give item_ids or a catalogue"):
        export.item_embeddings(head, processor)
