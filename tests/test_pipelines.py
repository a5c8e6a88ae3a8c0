"""The registered pipelines and the models' encode_sessions / encode_items, on tiny checkpoints built here."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoProcessor, pipeline
from transformers.pipelines import PIPELINE_REGISTRY

import session_transformers
from session_transformers import AutoModelForNextItemPrediction, AutoModelForSessionRetrieval
from session_transformers.pipelines import SessionFeatureExtractionPipeline, SessionRecommendationPipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "trainers"))
import pretrain

TAGNN_TINY = ["--config", "hidden_size=16", "num_attention_heads=2", "score_chunk_size=64"]
CERES_TINY = [
    "--config",
    "hidden_size=32",
    "num_hidden_layers=1",
    "num_attention_heads=2",
    "intermediate_size=64",
    "num_cross_attention_layers=1",
    "retrieval_projection_size=16",
]


def build_tiny_checkpoint(out: Path, model: str, steps: int = 2) -> Path:
    """A tiny checkpoint of ``model`` (``trainers/pretrain.py`` on the tiny synthetic store)."""
    from accelerate.state import AcceleratorState

    flags = TAGNN_TINY if model == "tagnn_pp" else CERES_TINY
    pretrain.main(
        ["--model", model, "--store-preset", "tiny", "--max-steps", str(steps), "--batch-size", "16", *flags]
        + ["--output-dir", str(out)]
    )
    AcceleratorState._reset_state(reset_partial_state=True)
    return out


@pytest.fixture(scope="module")
def tagnn_path(tmp_path_factory) -> Path:
    return build_tiny_checkpoint(tmp_path_factory.mktemp("tagnn") / "ckpt", "tagnn_pp", steps=30)


@pytest.fixture(scope="module")
def ceres_path(tmp_path_factory) -> Path:
    return build_tiny_checkpoint(tmp_path_factory.mktemp("ceres") / "ckpt", "ceres")


def test_tasks_are_registered_on_import():
    tasks = PIPELINE_REGISTRY.get_supported_tasks()
    assert "session-recommendation" in tasks and "session-feature-extraction" in tasks
    session_transformers.pipelines.register_pipelines()  # idempotent
    impl = PIPELINE_REGISTRY.check_task("session-recommendation")[1]["impl"]
    assert impl is SessionRecommendationPipeline


def test_recommendation_pipeline_matches_recommend(tagnn_path):
    recommend = pipeline("session-recommendation", model=str(tagnn_path), device="cpu")
    assert isinstance(recommend, SessionRecommendationPipeline)
    head = AutoModelForNextItemPrediction.from_pretrained(tagnn_path, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(tagnn_path)
    session = ["item-000017", "item-000004"]
    out = recommend(session, top_k=5)
    expected = head.recommend([session], top_k=5, processor=processor)[0]
    assert [r["item_id"] for r in out] == [i for i, _ in expected]
    assert np.allclose([r["score"] for r in out], [s for _, s in expected], atol=1e-5)
    scores = [r["score"] for r in out]
    assert scores == sorted(scores, reverse=True) and len(out) == 5
    # a batch gives one list per session, equal to the sessions one by one
    sessions = [session, ["item-000005"], ["item-000030", "item-000031", "item-000030"]]
    batch = recommend(sessions, top_k=3)
    assert len(batch) == 3
    for row, s in zip(batch, sessions):
        single = recommend(s, top_k=3)
        assert [r["item_id"] for r in row] == [r["item_id"] for r in single]


def test_recommendation_pipeline_refuses_item_ids_that_are_not_strings(tagnn_path, ubm_path, tiny_store):
    rec = pipeline("session-recommendation", model=str(tagnn_path), device="cpu")
    with pytest.raises(TypeError, match=r"session 0: item ID 1 must be a string"):
        rec(["item-000001", ["item-000002"]])
    text = pipeline(
        "session-recommendation", model=str(ubm_path), device="cpu", catalogue=tiny_store.catalogue
    )
    with pytest.raises(TypeError, match=r"session 1: item ID 0 must be a string"):
        text([["item-000001"], [{"id": 1}]])


def test_recommendation_pipeline_unknown_items(tagnn_path):
    recommend = pipeline("session-recommendation", model=str(tagnn_path), device="cpu")
    with pytest.raises(KeyError, match=r"unknown item IDs \['item-17'\].*look like \['item-000000'"):
        recommend(["item-17", "item-000004"])
    skipped = recommend(["item-17", "item-000004"], unknown_items="skip", top_k=4)
    assert [r["item_id"] for r in skipped] == [r["item_id"] for r in recommend(["item-000004"], top_k=4)]
    with pytest.raises(KeyError, match="none of its 1 item IDs is known"):
        recommend(["nope"], unknown_items="skip")
    with pytest.raises(TypeError, match="not a string"):
        recommend("item-000004")
    with pytest.raises(ValueError, match="unknown_items"):
        recommend(["item-000004"], unknown_items="drop-silently")


def test_feature_extraction_pipeline_tagnn(tagnn_path):
    embed = pipeline("session-feature-extraction", model=str(tagnn_path), device="cpu")
    assert isinstance(embed, SessionFeatureExtractionPipeline)
    processor = AutoProcessor.from_pretrained(tagnn_path)
    head = AutoModelForNextItemPrediction.from_pretrained(tagnn_path, dtype=torch.float32)
    session = ["item-000017", "item-000004"]
    vector = embed(session)
    assert vector.shape == (2 * head.config.hidden_size,) and vector.dtype == np.float32
    assert np.allclose(vector, head.encode_sessions(session, processor=processor), atol=1e-6)
    matrix = embed([session, ["item-000005"]])
    assert matrix.shape == (2, 2 * head.config.hidden_size)
    assert np.allclose(matrix[0], vector, atol=1e-6)
    items = embed(["item-000017", "item-000004"], embed="items")
    weights = head.get_input_embeddings().weight.detach().numpy()
    rows = [processor.item_vocab.index(i) + 1 for i in ("item-000017", "item-000004")]
    assert np.array_equal(items, weights[rows])
    assert np.array_equal(head.encode_items(processor=processor), weights[1:])  # every item, vocab order
    with pytest.raises(KeyError, match="unknown item IDs"):
        embed(["item-17"], embed="items")


def test_feature_extraction_pipeline_ceres(ceres_path, tiny_store):
    catalogue = tiny_store.catalogue
    embed = pipeline("session-feature-extraction", model=str(ceres_path), device="cpu", catalogue=catalogue)
    base = AutoModel.from_pretrained(ceres_path, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(ceres_path)
    raw = next(iter(tiny_store.iter_sessions(0, 1)))
    session = {"session_id": "s", "events": [{**ev, "image": None} for ev in raw["events"]]}
    vector = embed(session)
    expected = base(**processor([session], catalogue)).session_embeddings[0].detach().numpy()
    assert vector.shape == (base.config.hidden_size,)
    assert np.allclose(vector, expected, atol=1e-5)
    # a list of product IDs is a session of views
    ids = ["item-000003", "item-000010"]
    views = {"events": [{"action": "view", "subject": "item", "item_id": i, "query": None} for i in ids]}
    assert np.allclose(embed(ids), embed(views), atol=1e-6)
    items = embed(["item-000003", {"query": "blue shirt"}], embed="items")
    assert items.shape == (2, base.config.hidden_size)
    # records carry their own text: no catalogue needed
    record = next(r for r in catalogue if r["item_id"] == "item-000003")
    assert np.allclose(base.encode_items([record], processor=processor)[0], items[0], atol=1e-5)
    with pytest.raises(KeyError, match="not in the catalogue"):
        base.encode_items(["item-000003"], processor=processor)


def test_ceres_retrieval_head_embeddings_rank_like_the_model(ceres_path, tiny_store):
    """The retrieval head's encode_sessions / encode_items are the vectors its forward compares (cosine)."""
    head = AutoModelForSessionRetrieval.from_pretrained(ceres_path, dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(ceres_path)
    catalogue = tiny_store.catalogue
    ids = [r["item_id"] for r in catalogue[:6]]
    sessions = [["item-000001", "item-000002"], ["item-000040"]]
    s = head.encode_sessions(sessions, processor=processor, catalogue=catalogue)
    v = head.encode_items(ids, processor=processor, catalogue=catalogue)
    assert np.allclose(np.linalg.norm(s, axis=1), 1.0, atol=1e-5)
    batch = processor(
        [
            {"events": [{"action": "view", "subject": "item", "item_id": i, "query": None} for i in x]}
            for x in sessions
        ],
        catalogue,
    )
    candidates = processor.encode_candidates([{"item_id": i} for i in ids], catalogue)
    with torch.no_grad():
        logits = head(**batch, **candidates).logits.numpy()
    assert np.allclose(s @ v.T, logits, atol=1e-5)


@pytest.fixture(scope="module")
def ubm_path(tmp_path_factory, tiny_store) -> Path:
    """A tiny UbmForNextItemPrediction checkpoint (random weights: the pipeline must rank exactly as ``recommend``)."""
    from session_transformers.models.ubm import UbmConfig, UbmForNextItemPrediction, UbmProcessor
    from session_transformers.models.ubm.processing_ubm import iter_corpus
    from session_transformers.processing_utils import catalogue_attribute_names

    sessions = [tiny_store.session(i) for i in range(200)]
    catalogue = {r["item_id"]: r for r in tiny_store.catalogue}
    names = catalogue_attribute_names(catalogue)
    processor = UbmProcessor.train_tokenizer(iter_corpus(sessions, catalogue), 400, attribute_names=names)
    config = UbmConfig(
        vocab_size=len(processor.tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_session_layers=1,
        session_num_attention_heads=2,
        session_intermediate_size=64,
    )
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("ubm") / "ckpt"
    UbmForNextItemPrediction(config).save_pretrained(out)
    processor.save_pretrained(out)
    return out


def test_recommendation_pipeline_ubm_reads_items_as_text(ubm_path, tiny_store):
    catalogue = tiny_store.catalogue
    ids = [r["item_id"] for r in catalogue]
    rec = pipeline("session-recommendation", model=str(ubm_path), device="cpu", catalogue=catalogue)
    assert type(rec.model).__name__ == "UbmForNextItemPrediction"
    session = ids[3:6]
    got = rec(session, top_k=5)
    assert len(got) == 5 and [g["score"] for g in got] == sorted((g["score"] for g in got), reverse=True)
    # exactly what the model's recommend gives on the same session read as views, over every catalogue item
    as_views = rec.preprocess(
        session_transformers.pipelines._Batch([session]), catalogue=rec._preprocess_params["catalogue"]
    )
    expected = rec.model.recommend(
        as_views["sessions"],
        ids,
        top_k=5,
        processor=rec.processor,
        catalogue={r["item_id"]: r for r in catalogue},
    )[0]
    assert [(g["item_id"], pytest.approx(g["score"], abs=1e-5)) for g in got] == [
        (i, pytest.approx(s, abs=1e-5)) for i, s in expected
    ]
    # a candidate list restricts the ranking; the same list again reuses the tokenised pool
    few = ids[10:14]
    ranked = rec(session, top_k=10, candidates=few)
    assert sorted(g["item_id"] for g in ranked) == sorted(few)
    pool = rec._pool_cache[1]
    rec(session, candidates=few)
    assert rec._pool_cache[1] is pool
    # a new item, unseen in training, is recommended from its text alone
    new = {**catalogue[0], "item_id": "brand-new-item"}
    ranked = rec([session], candidates=["brand-new-item", *few], catalogue=[*catalogue, new], top_k=5)
    assert "brand-new-item" in {g["item_id"] for g in ranked[0]}
    with pytest.raises(KeyError, match="not in the catalogue"):
        rec(["no-such-item", *session])
    assert len(rec(["no-such-item", *session], unknown_items="skip", top_k=3)) == 3
    with pytest.raises(KeyError, match="not in the catalogue"):
        rec(session, candidates=["no-such-item"])


def test_recommendation_pipeline_ubm_needs_a_catalogue_and_tagnn_refuses_one(
    ubm_path, tagnn_path, tiny_store
):
    rec = pipeline("session-recommendation", model=str(ubm_path), device="cpu")
    with pytest.raises(ValueError, match="catalogue="):
        rec(["item-000001"])
    tagnn = pipeline("session-recommendation", model=str(tagnn_path), device="cpu")
    with pytest.raises(TypeError, match="text models"):
        tagnn(["item-000001"], catalogue=tiny_store.catalogue)
