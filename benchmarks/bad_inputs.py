"""A corpus of broken inputs, run through the loaders and processors: every case is refused with the package's own
error naming file, record and field, or dropped and counted (skip mode), or accepted and handled safely. Nothing
crashes with another exception, and no processor hands a model NaN or an out-of-range index.

    python benchmarks/bad_inputs.py                       # -> benchmarks/results/bad_inputs.json
    python benchmarks/bad_inputs.py --random-cases 2000   # more seeded random mutations

Kinds (hand-written, each with several variants) plus seeded random mutations of valid records (wrong types,
deleted fields, NaN, control characters, invalid UTF-8, huge values). ``tests/test_bad_inputs.py`` runs the same
corpus at a small size and adds ``hypothesis`` property tests.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import random
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402

from session_transformers.data.io import load_catalogue, load_sessions  # noqa: E402
from session_transformers.data.schema import (  # noqa: E402
    SESSION_FEATURES,
    InvalidRecordError,
    SchemaSpec,
    ValidationReport,
)
from session_transformers.models.tagnn_pp import TagnnPPProcessor  # noqa: E402

ITEMS = [f"item-{i}" for i in range(8)]


def _event(item: str, ts: float, action: str = "view") -> dict[str, Any]:
    return {
        "action": action,
        "timestamp": ts,
        "subject": "item",
        "item_id": item,
        "query": None,
        "image": None,
    }


def valid_session(i: int = 0, n: int = 3) -> dict[str, Any]:
    return {
        "session_id": f"s{i}",
        "events": [_event(ITEMS[(i + j) % len(ITEMS)], float(j)) for j in range(n)],
    }


def valid_item(i: int = 0) -> dict[str, Any]:
    return {
        "item_id": ITEMS[i % len(ITEMS)],
        "title": f"red cotton shirt {i}",
        "description": None,
        "category": ["clothing", "shirts"],
        "brand": None,
        "attributes": [{"name": "colour", "value": "red"}],
        "image": None,
    }


# --- writers: a list of records (or raw bytes) -> a file -----------------------------------------------------


def _jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r, allow_nan=True) + "\n" for r in records), encoding="utf-8")
    return path


def _raw(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _parquet(path: Path, records: list[dict], features) -> Path:
    table = pa.Table.from_pylist(records, schema=features.arrow_schema)
    pq.write_table(table, path)
    return path


# --- the hand-written kinds ----------------------------------------------------------------------------------
# Each case: (kind, what, file builder(tmp) -> (path, "sessions"|"catalogue"), expected outcome)
# expected: "refused" (raise mode raises InvalidRecordError naming the file), "accepted" (loads; processors
# stay safe).


def _session_with(**changes) -> dict:
    s = valid_session(1)
    for key, value in changes.items():
        if key.startswith("ev_"):
            s["events"][1][key[3:]] = value
        else:
            s[key] = value
    return s


def hand_written_cases() -> list[tuple[str, str, Callable[[Path], tuple[Path, str]], str]]:
    ok = [valid_session(0), valid_session(2)]

    def sessions_file(name: str, bad: Any) -> Callable[[Path], tuple[Path, str]]:
        return lambda tmp: (_jsonl(tmp / name, [ok[0], bad, ok[1]]), "sessions")

    cases = []

    def add(kind, what, builder, expected):
        cases.append((kind, what, builder, expected))

    # truncated files
    add(
        "truncated file",
        "JSONL cut mid-record",
        lambda tmp: (
            _raw(tmp / "cut.jsonl", (json.dumps(ok[0]) + "\n" + json.dumps(ok[1])[:25]).encode()),
            "sessions",
        ),
        "refused",
    )
    add(
        "truncated file",
        "gzip JSONL cut mid-stream",
        lambda tmp: (
            _raw(tmp / "cut.jsonl.gz", gzip.compress(((json.dumps(ok[0]) + "\n") * 50).encode())[:60]),
            "sessions",
        ),
        "refused",
    )

    def cut_parquet(tmp: Path) -> tuple[Path, str]:
        path = _parquet(tmp / "full.parquet", [valid_session(i) for i in range(50)], SESSION_FEATURES)
        data = path.read_bytes()
        return _raw(tmp / "cut.parquet", data[: len(data) // 2]), "sessions"

    add("truncated file", "Parquet cut in half", cut_parquet, "refused")
    add(
        "truncated file",
        "not Parquet at all",
        lambda tmp: (_raw(tmp / "x.parquet", b"PAR1 nonsense"), "sessions"),
        "refused",
    )
    # wrong types
    for what, bad in [
        ("session_id a number", _session_with(session_id=17)),
        ("events a string", _session_with(events="view item-1")),
        ("event a list", _session_with(events=[["view", "item-1"]])),
        ("timestamp a string", _session_with(ev_timestamp="yesterday")),
        ("timestamp a boolean", _session_with(ev_timestamp=True)),
        ("item_id a number", _session_with(ev_item_id=5)),
        ("record a list", [1, 2, 3]),
        ("record null", None),
    ]:
        add("wrong type", what, sessions_file("types.jsonl", bad), "refused")
    add(
        "unknown action",
        "teleport",
        sessions_file("action.jsonl", _session_with(ev_action="teleport")),
        "refused",
    )
    add(
        "unknown action",
        "empty action",
        sessions_file("action.jsonl", _session_with(ev_action="")),
        "refused",
    )
    add(
        "unknown subject",
        "a video",
        sessions_file("subject.jsonl", _session_with(ev_subject="video")),
        "refused",
    )
    add(
        "item missing from catalogue",
        "unknown item ID (catalogue given)",
        sessions_file("unknown.jsonl", _session_with(ev_item_id="item-999")),
        "refused_with_catalogue",
    )
    add("empty session", "no events", sessions_file("empty.jsonl", _session_with(events=[])), "refused")
    add(
        "empty session",
        "empty session_id",
        sessions_file("empty.jsonl", _session_with(session_id="")),
        "refused",
    )
    add(
        "empty query",
        "keyword query of spaces",
        sessions_file(
            "q.jsonl",
            _session_with(ev_subject="keyword_query", ev_item_id=None, ev_query="   "),
        ),
        "refused",
    )
    long = {"session_id": "long", "events": [_event(ITEMS[j % 8], float(j)) for j in range(10_000)]}
    add(
        "huge input",
        "session of 10,000 events",
        lambda tmp: (_jsonl(tmp / "long.jsonl", [ok[0], long]), "sessions"),
        "accepted",
    )
    add(
        "timestamps backwards",
        "second event earlier",
        sessions_file("time.jsonl", _session_with(ev_timestamp=-5.0)),
        "refused",
    )
    add(
        "non-finite",
        "NaN timestamp",
        sessions_file("nan.jsonl", _session_with(ev_timestamp=float("nan"))),
        "refused",
    )
    add(
        "non-finite",
        "inf timestamp",
        sessions_file("inf.jsonl", _session_with(ev_timestamp=float("inf"))),
        "refused",
    )
    img = {"action": "search", "timestamp": 1.5, "subject": "image_query", "item_id": None, "query": None}
    for what, vec in [
        ("NaN in image vector", [0.1, float("nan"), 0.3, 0.4]),
        ("wrong-size image vector", [0.1, 0.2, 0.3]),
        ("empty image vector", []),
        ("image vector of strings", ["a", "b", "c", "d"]),
    ]:
        bad = valid_session(5)
        bad["events"].insert(1, {**img, "image": vec})
        bad["events"][2]["timestamp"] = 2.0
        add("bad image vector", what, sessions_file("img.jsonl", bad), "refused_with_image_dim")
    dup = [ok[0], valid_session(3), ok[0]]
    add(
        "duplicate IDs",
        "same session_id twice",
        lambda tmp: (_jsonl(tmp / "dup.jsonl", dup), "sessions"),
        "refused",
    )
    add(
        "duplicate IDs",
        "same item_id twice in the catalogue",
        lambda tmp: (
            _jsonl(tmp / "dupcat.jsonl", [valid_item(0), valid_item(1), valid_item(0)]),
            "catalogue",
        ),
        "refused",
    )
    # text: control characters, mixed scripts, invalid UTF-8, enormous titles, empty titles
    for what, title in [
        ("control characters", "red\x00shirt\x07\x1b[31m"),
        ("mixed scripts", "Рубашка シャツ قميص shirt 👕"),
        ("title of 100,000 characters", "shirt " * 16_667),
        ("right-to-left override", "\u202eshirt"),
    ]:
        rec = valid_item(2) | {"title": title}
        add(
            "hostile text",
            what,
            lambda tmp, rec=rec: (_jsonl(tmp / "text.jsonl", [valid_item(0), rec]), "catalogue"),
            "accepted",
        )
    add(
        "empty title",
        "empty string",
        lambda tmp: (_jsonl(tmp / "t.jsonl", [valid_item(0), valid_item(3) | {"title": ""}]), "catalogue"),
        "refused",
    )
    add(
        "invalid UTF-8",
        "a Latin-1 byte in a line",
        lambda tmp: (
            _raw(tmp / "latin.jsonl", (json.dumps(ok[0]) + "\n").encode() + b'{"session_id": "caf\xe9"}\n'),
            "sessions",
        ),
        "refused",
    )
    add(
        "invalid UTF-8",
        "lone surrogate escape",
        lambda tmp: (
            _raw(
                tmp / "surr.jsonl",
                (json.dumps(ok[0]) + "\n").encode()
                + json.dumps(ok[1]).replace('"s2"', '"s\\ud800"').encode()
                + b"\n",
            ),
            "sessions",
        ),
        "refused",
    )
    return cases


# --- seeded random mutations ----------------------------------------------------------------------------------

_JUNK: list[Any] = [
    None,
    "",
    " ",
    0,
    -1,
    1e308,
    float("nan"),
    float("inf"),
    True,
    [],
    {},
    "\x00",
    "x" * 5000,
    ["a"],
]


def random_mutation(rng: random.Random) -> tuple[str, dict | Any]:
    """A valid session with one field replaced, deleted or added; returns (what, record)."""
    s = valid_session(rng.randrange(100), n=rng.randint(1, 6))
    op = rng.choice(["replace", "delete", "add", "event_replace", "event_delete"])
    if op in ("replace", "delete"):
        key = rng.choice(["session_id", "events"])
        if op == "delete":
            del s[key]
        else:
            s[key] = copy.deepcopy(rng.choice(_JUNK))
        return f"{op} {key}", s
    if op == "add":
        s[rng.choice(["extra", "events2", "Session_ID"])] = rng.choice(_JUNK)
        return "add field", s
    ev = rng.choice(s["events"])
    key = rng.choice(["action", "timestamp", "subject", "item_id", "query", "image"])
    if op == "event_delete":
        del ev[key]
    else:
        ev[key] = copy.deepcopy(rng.choice(_JUNK))
    return f"{op} {key}", s


# --- running a case ---------------------------------------------------------------------------------------------


def _check_processors(records: list[dict], kind: str) -> None:
    """Processors given accepted records never produce NaN or out-of-range indices."""
    if kind != "sessions":
        return
    sessions = [[e["item_id"] for e in r["events"] if e.get("item_id")] for r in records]
    sessions = [s for s in sessions if s]
    if not sessions:
        return
    processor = TagnnPPProcessor(item_vocab=ITEMS, max_length=50)
    batch = processor(sessions)
    for name, t in batch.items():
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            assert torch.isfinite(t).all(), name
    assert int(batch["x"].max()) <= processor.num_items and int(batch["x"].min()) >= 0


def run_case(path: Path, kind: str, expected: str) -> dict[str, Any]:
    """Load ``path`` in raise and skip modes; returns the outcome (never raises)."""
    loader = load_sessions if kind == "sessions" else load_catalogue
    kwargs: dict[str, Any] = {}
    if expected == "refused_with_catalogue":
        kwargs["item_ids"] = set(ITEMS)
    if expected == "refused_with_image_dim":
        kwargs["spec"] = SchemaSpec(image_dim=4)
    out: dict[str, Any] = {}
    try:
        ds = loader(path, **kwargs)
        out["raise_mode"] = "accepted"
        _check_processors(list(ds), kind)
    except InvalidRecordError as err:
        named = str(path) in str(err) and "record" in str(err) and "field" in str(err)
        out["raise_mode"] = "refused" if named else "refused without naming file/record/field"
        out["error"] = str(err)[:300]
    except Exception as err:  # noqa: BLE001 - the corpus reports crashes instead of stopping
        out["raise_mode"] = f"CRASH {type(err).__name__}"
        out["error"] = repr(err)[:300]
    report = ValidationReport()
    try:
        ds = loader(path, on_error="skip", report=report, **kwargs)
        out["skip_mode"] = f"kept {len(ds)}, skipped {report.skipped}"
        out["skip_mode_ok"] = report.skipped > 0 or out["raise_mode"] == "accepted"
        _check_processors(list(ds), kind)
    except Exception as err:  # noqa: BLE001
        out["skip_mode"] = f"CRASH {type(err).__name__}"
        out["skip_mode_ok"] = False
        out["error_skip"] = repr(err)[:300]
    return out


def run_corpus(random_cases: int = 300, seed: int = 0) -> dict[str, Any]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i, (kind, what, build, expected) in enumerate(hand_written_cases()):
            case_dir = tmp / f"case{i}"
            case_dir.mkdir()
            path, data_kind = build(case_dir)
            out = run_case(path, data_kind, expected)
            want = "accepted" if expected == "accepted" else "refused"
            rows.append(
                {
                    "kind": kind,
                    "what": what,
                    "expected": want,
                    **out,
                    "as_expected": out["raise_mode"] == want,
                }
            )
        rng = random.Random(seed)
        for i in range(random_cases):
            what, record = random_mutation(rng)
            case_dir = tmp / f"random{i}"
            case_dir.mkdir()
            path = _jsonl(case_dir / "m.jsonl", [valid_session(0), record])
            out = run_case(path, "sessions", "either")
            ok = not out["raise_mode"].startswith("CRASH") and "without naming" not in out["raise_mode"]
            rows.append(
                {
                    "kind": "random mutation",
                    "what": what,
                    "expected": "refused or accepted",
                    **out,
                    "as_expected": ok and out["skip_mode_ok"],
                }
            )
    by_kind: dict[str, Counter] = {}
    for r in rows:
        by_kind.setdefault(r["kind"], Counter())[
            r["raise_mode"].split(" ")[0] if r["raise_mode"].startswith("CRASH") else r["raise_mode"]
        ] += 1
    return {
        "cases": len(rows),
        "as_expected": sum(r["as_expected"] for r in rows),
        "crashes": sum(
            r["raise_mode"].startswith("CRASH") or r["skip_mode"].startswith("CRASH") for r in rows
        ),
        "by_kind": {k: dict(v) for k, v in by_kind.items()},
        "unexpected": [r for r in rows if not r["as_expected"]][:20],
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> None:
    from _common import write_result

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--random-cases", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    result = run_corpus(args.random_cases, args.seed)
    hand = [r for r in result["rows"] if r["kind"] != "random mutation"]
    figures = {
        "cases": result["cases"],
        "as_expected": result["as_expected"],
        "crashes": result["crashes"],
        "by_kind": result["by_kind"],
        "hand_written": [
            {k: r[k] for k in ("kind", "what", "expected", "raise_mode", "skip_mode", "as_expected")}
            for r in hand
        ],
        "unexpected": result["unexpected"],
    }
    print(json.dumps({k: figures[k] for k in ("cases", "as_expected", "crashes", "by_kind")}, indent=1))
    print(
        write_result(
            "bad_inputs",
            figures,
            data=f"hand-written cases + {args.random_cases} seeded mutations (seed {args.seed})",
        )
    )


if __name__ == "__main__":
    main()
