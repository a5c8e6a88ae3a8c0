"""CERES's retrieval baselines (``Task.baseline``): random, popularity and BM25 on the test split's fixed pool."""

from types import SimpleNamespace

import pytest
from datasets import Dataset

from session_transformers.models.ceres import retrieval
from session_transformers.models.ceres.processing_ceres import candidate_key
from session_transformers.recipes import RECIPES, resolve_data_arguments, training_parser

CATALOGUE = {
    "p0": {
        "title": "red cotton dress",
        "description": None,
        "brand": "Acme",
        "category": ["women", "dresses"],
    },
    "p1": {
        "title": "blue denim jeans",
        "description": "slim fit",
        "brand": "Zed",
        "category": ["men", "jeans"],
    },
    "p2": {"title": "leather walking boots", "description": None, "brand": "Acme", "category": ["shoes"]},
    "p3": {"title": "plain white tee", "description": None, "brand": "Zed", "category": ["men", "tops"]},
}


def _query(text: str) -> dict:
    return {"action": "search", "subject": "keyword_query", "query": text, "item_id": None}


def _view(item: str) -> dict:
    return {"action": "view", "subject": "item", "query": None, "item_id": item}


def _prepared(test_rows: list[dict], train_targets: list[str]) -> SimpleNamespace:
    """The parts of a PreparedData that ``retrieval_baselines`` reads: a product-search test split, its pool (every
    catalogue product) and the training targets."""
    pool = [{"item_id": i} for i in CATALOGUE]
    collate = SimpleNamespace(
        pools={"test": pool},
        _index={"test": {candidate_key(c): n for n, c in enumerate(pool)}},
        catalogue=CATALOGUE,
    )
    test = Dataset.from_list(
        [
            {
                "session_id": str(n),
                "events": r["events"],
                "targets": [{"item_id": r["target"]}],
                "evaluate": "test",
            }
            for n, r in enumerate(test_rows)
        ]
    )
    train = Dataset.from_list([{"targets": [{"item_id": t}]} for t in train_targets])
    return SimpleNamespace(test_dataset=test, collate_fn=collate, train_dataset=train)


def test_candidate_and_session_text():
    assert retrieval.candidate_text({"item_id": "p1"}, CATALOGUE) == "blue denim jeans slim fit Zed men jeans"
    assert retrieval.candidate_text({"query": "red dress"}, CATALOGUE) == "red dress"
    assert retrieval.candidate_text({"attribute": "colour", "value": "red"}, CATALOGUE) == "red"
    events = [_view("p2"), _query("red dress"), _view("p0"), _query("cotton")]
    assert retrieval.session_text(events, CATALOGUE) == "red dress cotton"  # its queries, in order
    assert (
        retrieval.session_text([_view("p2"), _view("p3")], CATALOGUE)
        == "leather walking boots plain white tee"
    )


def test_bm25_ranks_by_the_sessions_words_popularity_by_training_targets():
    rows = [
        {"events": [_query("red dress")], "target": "p0"},
        {"events": [_query("jeans"), _view("p3")], "target": "p1"},  # the query, not the viewed product
        {"events": [_view("p2")], "target": "p2"},  # no query: the session's products' titles
    ]
    out = retrieval.retrieval_baselines(_prepared(rows, train_targets=["p3", "p3", "p2"]))
    assert set(out) == {"random", "popularity", "BM25"}
    assert out["BM25"]["MAP@1"] == out["BM25"]["Recall@1"] == 100.0
    # popularity ranks p3 (2 training targets), p2 (1), then p0 and p1 (0) in either order: ranks 3 and 4, and 2
    assert out["popularity"]["MAP@1"] == 0.0
    assert out["popularity"]["MAP@32"] == pytest.approx(100.0 * (1 / 3 + 1 / 4 + 1 / 2) / 3, rel=1e-6)
    assert set(out["BM25"]) == set(out["popularity"]) == set(out["random"])  # the task's metric names


def test_bm25_ties_are_broken_at_random_not_pessimistically():
    # a query that matches no candidate: all four tie at 0; pessimistic ties would rank the target last (4)
    rows = [{"events": [_query("umbrella")], "target": f"p{n % 4}"} for n in range(40)]
    out = retrieval.retrieval_baselines(_prepared(rows, train_targets=["p0"]))
    assert 5.0 < out["BM25"]["MAP@1"] < 50.0  # about a quarter of the sessions rank their target first
    assert (
        out["BM25"]["MAP@1"] == retrieval.retrieval_baselines(_prepared(rows, ["p0"]))["BM25"]["MAP@1"]
    )  # seeded


def test_every_retrieval_task_reports_bm25_beside_popularity():
    argv_base = [
        "--model",
        "ceres",
        "--store-preset",
        "tiny",
        "--num-sessions",
        "200",
        "--max-eval-samples",
        "20",
    ]
    for task in ("product_search", "query_search", "entity_linking"):
        argv = [*argv_base, "--task", task]
        parser, found, _ = training_parser("test", argv, with_task=True)
        args = resolve_data_arguments(parser, parser.parse_args(argv), found)
        data = RECIPES["ceres"].finetune[task].prepare(args)
        out = RECIPES["ceres"].finetune[task].baseline(data)
        assert {"random", "popularity", "BM25"} <= set(out), task
        for k in retrieval.CERES_KS:
            assert 0.0 <= out["BM25"][f"MAP@{k}"] <= 100.0
        assert out["BM25"]["pool_size"] == len(data.collate_fn.pools["test"])
