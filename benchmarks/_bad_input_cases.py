"""The bad-input corpus' records and cases (``bad_inputs.py`` runs them): valid records to mutate, the writers of
each file format, the hand-written kinds of broken input and the seeded random mutations."""

from __future__ import annotations

import copy
import gzip
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from session_transformers.data.schema import (
    SESSION_FEATURES,
)

ROOT = Path(__file__).resolve().parents[1]

IMAGE_DIM = 4
"""The image-query vectors' size in the corpus (the processors are built for it)."""
ITEMS = [f"item-{i}" for i in range(8)]


def _event(item: str | None, ts: float, action: str = "view") -> dict[str, Any]:
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


def rich_session(i: int = 0) -> dict[str, Any]:
    """A valid session with every subject: keyword, product and image queries and item events."""
    a, b = ITEMS[i % len(ITEMS)], ITEMS[(i + 3) % len(ITEMS)]
    return {
        "session_id": f"r{i}",
        "events": [
            _query("red shirt", 0.0),
            _event(a, 1.0),
            _query("cotton", 2.0, "product_query"),
            {**_query(None, 2.0), "subject": "image_query", "image": [0.5] * IMAGE_DIM},
            _event(b, 3.0, "click"),
            _event(b, 4.0, "add_to_cart"),
            _event(b, 5.0, "purchase"),
        ],
    }


# --- the hand-written kinds ----------------------------------------------------------------------------------
# Each case: (kind, what, file builder(tmp) -> (path, "sessions"|"catalogue"), expected outcome)
# expected: "refused" (raise mode raises InvalidRecordError naming the file), "accepted" (loads; processors
# stay safe).


def _query(text: Any, ts: float, subject: str = "keyword_query") -> dict[str, Any]:
    return {
        "action": "search",
        "timestamp": ts,
        "subject": subject,
        "item_id": None,
        "query": text,
        "image": None,
    }


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

    # --- what reaches the processors: text of queries and titles, image vectors, huge and foreign sessions ---
    def query_session(text: Any, subject: str = "keyword_query") -> dict:
        s = valid_session(6)
        s["events"].insert(1, _query(text, 0.5, subject))
        return s

    for what, text in [
        ("control characters in a query", "red\x00shirt\x07\x1b[31m"),
        ("mixed scripts in a query", "Рубашка シャツ قميص shirt 👕"),
        ("query of 100,000 characters", "shirt " * 16_667),
        ("right-to-left override in a product query", "\u202eshirt"),
    ]:
        subject = "product_query" if "product" in what else "keyword_query"
        add(
            "hostile text",
            what,
            sessions_file("hq.jsonl", query_session(text, subject)),
            "accepted",
        )
    add(
        "invalid UTF-8",
        "lone surrogate escape in a query",
        lambda tmp: (
            _raw(
                tmp / "qsurr.jsonl",
                (json.dumps(ok[0]) + "\n").encode()
                + json.dumps(query_session("red shirt")).replace("red shirt", "red \\ud800shirt").encode()
                + b"\n",
            ),
            "sessions",
        ),
        "refused",
    )
    add(
        "invalid UTF-8",
        "lone surrogate escape in a title",
        lambda tmp: (
            _raw(
                tmp / "tsurr.jsonl",
                (json.dumps(valid_item(0)) + "\n").encode()
                + json.dumps(valid_item(4)).replace("red cotton", "red \\udc80cotton").encode()
                + b"\n",
            ),
            "catalogue",
        ),
        "refused",
    )
    for what, title in [("title of spaces", "   "), ("title of stop words only", "the of and")]:
        add(
            "empty title",
            what,
            lambda tmp, title=title: (
                _jsonl(tmp / "t.jsonl", [valid_item(0), valid_item(5) | {"title": title}]),
                "catalogue",
            ),
            "accepted",
        )
    add(
        "empty title",
        "title null",
        lambda tmp: (_jsonl(tmp / "t.jsonl", [valid_item(0), valid_item(6) | {"title": None}]), "catalogue"),
        "refused",
    )
    for what, vec in [
        ("wrong-size image vector, loader told no size", [0.1, 0.2, 0.3]),
        ("inf in image vector, loader told no size", [0.1, float("inf"), 0.3, 0.4]),
    ]:
        bad = valid_session(7)
        bad["events"].insert(1, {**img, "image": vec})
        bad["events"][2]["timestamp"] = 2.0
        expected = "accepted" if "wrong-size" in what else "refused"
        add("bad image vector", what, sessions_file("img2.jsonl", bad), expected)
    add(
        "bad image vector",
        "NaN in a catalogue image",
        lambda tmp: (
            _jsonl(
                tmp / "cimg.jsonl", [valid_item(0), valid_item(1) | {"image": [0.1, float("nan"), 0.3, 0.4]}]
            ),
            "catalogue",
        ),
        "refused",
    )
    mixed = {
        "session_id": "mixed",
        "events": [
            _query(f"red shirt {j}", float(j)) if j % 2 else _event(ITEMS[j % 8], float(j))
            for j in range(10_000)
        ],
    }
    add(
        "huge input",
        "session of 10,000 events, half of them queries",
        lambda tmp: (_jsonl(tmp / "mixed.jsonl", [ok[0], mixed]), "sessions"),
        "accepted",
    )
    add(
        "item missing from catalogue",
        "unknown item ID (loader given no catalogue, processors given theirs)",
        sessions_file("unknown2.jsonl", _session_with(ev_item_id="item-999")),
        "accepted",
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
    """A valid session (items only, or with every kind of query) with one field replaced, deleted or added;
    returns (what, record)."""
    if rng.random() < 0.5:
        s = valid_session(rng.randrange(100), n=rng.randint(1, 6))
    else:
        s = rich_session(rng.randrange(100))
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
