"""The session schema: validation errors name file, record and field; JSONL/Parquet round trips; streaming."""

import json

import pytest
from datasets import Dataset, IterableDataset

from session_transformers.data.io import load_catalogue, load_sessions, write_catalogue, write_sessions
from session_transformers.data.schema import (
    InvalidRecordError,
    SchemaSpec,
    ValidationReport,
    image_event,
    item_event,
    query_event,
    session_item_ids,
    validate_item,
    validate_session,
)


def _sessions():
    return [
        {
            "session_id": "s1",
            "events": [
                query_event("search", "red shoes", 1.0),
                item_event("view", "a", 2.0),
                item_event("view", "a", 3.0),
                item_event("purchase", "a", 9.0),
            ],
        },
        {"session_id": "s2", "events": [item_event("view", "b")]},
        {
            "session_id": "s3",
            "events": [
                image_event("search", [0.1, 0.2, 0.3]),
                query_event("search", "blue", product=True),
                item_event("click", "c"),
            ],
        },
    ]


def _catalogue():
    return [
        {
            "item_id": i,
            "title": f"title {i}",
            "description": None,
            "category": ["shoes", "running"],
            "brand": "acme" if i != "c" else None,
            "attributes": [{"name": "color", "value": "red"}],
            "image": [0.0, 1.0, 0.5] if i == "a" else None,
        }
        for i in ("a", "b", "c")
    ]


def test_valid_records_pass():
    for i, s in enumerate(_sessions()):
        validate_session(s, i, item_ids={"a", "b", "c"}, spec=SchemaSpec(image_dim=3))
    for i, item in enumerate(_catalogue()):
        validate_item(item, i, spec=SchemaSpec(image_dim=3))
    assert session_item_ids(_sessions()[0]) == ["a", "a", "a"]


@pytest.mark.parametrize(
    ("mutate", "field", "words"),
    [
        (lambda s: s.pop("session_id"), "session_id", "missing"),
        (lambda s: s.update(events=[]), "events", "empty"),
        (lambda s: s["events"][1].update(action="wishlist"), "events[1].action", "unknown action"),
        (lambda s: s["events"][1].update(item_id="zzz"), "events[1].item_id", "not in the catalogue"),
        (lambda s: s["events"][0].update(query=""), "events[0].query", "empty"),
        (lambda s: s["events"][0].update(subject="video"), "events[0].subject", "unknown subject"),
        (lambda s: s["events"][2].update(timestamp=0.5), "events[2].timestamp", "back in time"),
        (lambda s: s["events"][1].update(query="x"), "events[1].query", "must be None"),
    ],
)
def test_bad_session_names_record_and_field(mutate, field, words):
    s = _sessions()[0]
    mutate(s)
    with pytest.raises(InvalidRecordError) as err:
        validate_session(s, 7, source="f.jsonl", item_ids={"a", "b", "c"})
    assert err.value.field == field and err.value.index == 7 and err.value.source == "f.jsonl"
    assert words in str(err.value) and "f.jsonl: record 7" in str(err.value)


def test_wrong_image_size():
    s = _sessions()[2]
    with pytest.raises(InvalidRecordError, match=r"events\[0\].image.*length 3, expected 4"):
        validate_session(s, 0, spec=SchemaSpec(image_dim=4))
    s["events"][0]["image"] = [0.1, float("nan"), 0.0]
    with pytest.raises(InvalidRecordError, match="non-finite"):
        validate_session(s, 0)


def test_bad_item():
    item = _catalogue()[0]
    item["category"] = []
    with pytest.raises(InvalidRecordError, match="record 3: field 'category'"):
        validate_item(item, 3)


@pytest.mark.parametrize("ext", ["jsonl", "parquet"])
def test_round_trip(tmp_path, ext):
    write_sessions(_sessions(), tmp_path / f"s.{ext}")
    write_catalogue(_catalogue(), tmp_path / f"c.{ext}")
    sessions = load_sessions(tmp_path / f"s.{ext}", item_ids={"a", "b", "c"})
    catalogue = load_catalogue(tmp_path / f"c.{ext}")
    assert isinstance(sessions, Dataset) and len(sessions) == 3
    assert sessions[0]["events"][0]["query"] == "red shoes"
    assert sessions[2]["events"][0]["image"] == pytest.approx([0.1, 0.2, 0.3])
    assert catalogue[2]["brand"] is None and catalogue[0]["attributes"] == [{"name": "color", "value": "red"}]
    streamed = load_sessions(tmp_path / f"s.{ext}", streaming=True)
    assert isinstance(streamed, IterableDataset)
    assert [r["session_id"] for r in streamed] == ["s1", "s2", "s3"]


def test_file_errors_name_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    rows = _sessions()
    rows[1]["events"][0]["action"] = "teleport"
    lines = [json.dumps(r) for r in rows]
    lines.insert(2, "{not json")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidRecordError) as err:
        load_sessions(path)
    assert err.value.source == str(path) and err.value.index == 1 and err.value.field == "events[0].action"
    report = ValidationReport()
    # Skip mode drops the bad action record and the broken JSON line (a truncated record), and counts both.
    ds = load_sessions(path, on_error="skip", report=report)
    assert len(ds) == 2 and report.skipped == 2 and report.seen == 4
    assert any("record 2: field '<json>'" in e for e in report.examples)
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    report = ValidationReport()
    ds = load_sessions(path, on_error="skip", report=report)
    assert len(ds) == 2 and report.skipped == 1 and report.seen == 3
    assert "unknown action" in str(report)


def test_streaming_validates_lazily(tmp_path):
    rows = _sessions()
    rows[2]["events"] = []
    write_sessions(rows, tmp_path / "s.jsonl")
    stream = load_sessions(tmp_path / "s.jsonl", streaming=True)
    it = iter(stream)
    assert next(it)["session_id"] == "s1"
    with pytest.raises(InvalidRecordError, match="record 2: field 'events'"):
        list(it)


def test_writer_is_atomic(tmp_path):
    target = tmp_path / "s.parquet"
    write_sessions(_sessions(), target)
    before = target.read_bytes()

    def broken():
        yield _sessions()[0]
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_sessions(broken(), target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.parquet"]


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_sessions("does/not/exist.jsonl")


def test_written_files_have_normal_permissions(tmp_path):
    import os
    import stat

    path = tmp_path / "s.jsonl"
    write_sessions(_sessions(), path)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_extra_columns_load_with_a_superset_schema(tmp_path):
    from datasets import Features, Value

    from session_transformers.data.schema import SESSION_FEATURES

    rows = [{**s, "purchased": i == 0} for i, s in enumerate(_sessions())]
    features = Features({**SESSION_FEATURES, "purchased": Value("bool")})
    write_sessions(rows, tmp_path / "s.parquet", features=features)
    ds = load_sessions(tmp_path / "s.parquet", features=features)
    assert ds["purchased"] == [True, False, False]
