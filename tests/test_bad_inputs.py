"""Bad input never crashes mid-run and never passes silently (the reliability issue, item 1).

The hand-written corpus and seeded mutations live in ``benchmarks/bad_inputs.py`` (which reports the counts by
kind); here they run at a small size, and ``hypothesis`` adds property tests over the session schema.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from session_transformers.data.io import load_catalogue, load_sessions
from session_transformers.data.schema import InvalidRecordError, ValidationReport
from session_transformers.models.tagnn_pp import TagnnPPProcessor

ROOT = Path(__file__).resolve().parents[1]


def _corpus():
    spec = importlib.util.spec_from_file_location("bad_inputs", ROOT / "benchmarks" / "bad_inputs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bad_inputs"] = module
    spec.loader.exec_module(module)
    return module


def test_every_hand_written_case_and_mutation_is_refused_or_handled():
    result = _corpus().run_corpus(random_cases=60, seed=1)
    assert result["crashes"] == 0, result["unexpected"]
    assert result["as_expected"] == result["cases"], result["unexpected"]
    kinds = set(result["by_kind"])
    for kind in (
        "truncated file",
        "wrong type",
        "unknown action",
        "item missing from catalogue",
        "empty session",
        "huge input",
        "timestamps backwards",
        "bad image vector",
        "duplicate IDs",
        "hostile text",
        "invalid UTF-8",
        "random mutation",
    ):
        assert kind in kinds


# --- hypothesis: arbitrary JSON values where the schema expects fields -----------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
event = st.fixed_dictionaries(
    {
        "action": st.sampled_from(["view", "click", "add_to_cart", "purchase", "search", "teleport"])
        | json_values,
        "timestamp": st.floats(allow_nan=True, allow_infinity=True) | st.none() | json_values,
        "subject": st.sampled_from(["item", "keyword_query", "product_query", "image_query"]) | json_values,
        "item_id": st.sampled_from(["a", "b", "c", "zz"]) | st.none() | json_values,
        "query": st.text(max_size=30) | st.none(),
        "image": st.none() | st.lists(st.floats(allow_nan=True), max_size=5),
    }
)
session = st.fixed_dictionaries(
    {"session_id": st.text(max_size=10) | json_values, "events": st.lists(event, max_size=6) | json_values}
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(session, min_size=1, max_size=4))
def test_loaders_raise_our_error_or_return_valid_sessions(tmp_path, records):
    path = tmp_path / "fuzz.jsonl"
    path.write_text("".join(json.dumps(r, allow_nan=True) + "\n" for r in records), encoding="utf-8")
    try:
        ds = load_sessions(path, item_ids={"a", "b", "c"})
    except InvalidRecordError as err:
        assert str(path) in str(err) and err.field and err.index >= 0
    else:
        for rec in ds:
            assert rec["events"], "an empty session passed"
            items = [e["item_id"] for e in rec["events"] if e["subject"] == "item"]
            assert set(items) <= {"a", "b", "c"}
    report = ValidationReport()
    kept = load_sessions(path, on_error="skip", report=report, item_ids={"a", "b", "c"})
    assert len(kept) + report.skipped == report.seen == len(records)
    # What survives is safe for a processor: indices in range, nothing NaN.
    sessions = [[e["item_id"] for e in r["events"] if e["subject"] == "item"] for r in kept]
    sessions = [s for s in sessions if s]
    if sessions:
        batch = TagnnPPProcessor(item_vocab=["a", "b", "c"])(sessions)
        assert int(batch["x"].min()) >= 1 and int(batch["x"].max()) <= 3


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(title=st.text(max_size=300), brand=st.text(max_size=20) | st.none())
def test_catalogue_text_is_refused_or_kept_exactly(tmp_path, title, brand):
    record = {
        "item_id": "x1",
        "title": title,
        "description": None,
        "category": ["a"],
        "brand": brand,
        "attributes": [],
        "image": None,
    }
    path = tmp_path / "cat.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    try:
        ds = load_catalogue(path)
    except InvalidRecordError as err:
        assert err.field in ("title", "brand", "<utf-8>")
    else:
        assert ds[0]["title"] == title and ds[0]["brand"] == brand


def test_recommend_with_unknown_items_names_the_session():
    from session_transformers.models.tagnn_pp import TagnnPPConfig, TagnnPPForNextItemPrediction

    processor = TagnnPPProcessor(item_vocab=["a", "b", "c"], unknown_items="error")
    model = TagnnPPForNextItemPrediction(
        TagnnPPConfig(num_items=processor.num_items, hidden_size=8, num_attention_heads=2)
    ).eval()
    with pytest.raises(KeyError, match="session 1"):
        model.recommend([["a"], ["nope"]], top_k=2, processor=processor)
    dropping = TagnnPPProcessor(item_vocab=["a", "b", "c"])  # the default drops unknown items...
    top = model.recommend([["a", "nope"]], top_k=2, processor=dropping)[0]
    assert len(top) == 2 and all(i in {"a", "b", "c"} and torch.isfinite(torch.tensor(s)) for i, s in top)
    with pytest.raises(
        ValueError, match="session 0: all of its 1 items are unknown"
    ):  # ...but not all of them
        model.recommend([["nope"]], top_k=2, processor=dropping)
