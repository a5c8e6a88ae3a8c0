"""Loaders that turn public e-commerce data sets into the package's session and catalogue schema.

Each loader reads files from a path the user gives (the package ships none of this data) and returns
``datasets.Dataset`` objects in :data:`~session_transformers.data.schema.SESSION_FEATURES` or
:data:`~session_transformers.data.schema.CATALOGUE_FEATURES`, sometimes with extra columns that each
loader documents. Every record goes through the schema validators; item IDs in sessions must exist in the
loader's catalogue. Bad input raises :class:`~session_transformers.data.schema.InvalidRecordError` naming the
file, the record and the field; ``on_error="skip"`` drops bad records and counts them in a
:class:`~session_transformers.data.schema.ValidationReport` instead.

Record indices in errors: for line-oriented text files (``.txt``, ``.tsv``, ``.csv``) the index is the 1-based
line number an editor shows (the header is line 1); for Parquet files, and for every table read by
:func:`load_catalogue_table`, it is the 0-based data row.

========================  ================================================================================
data set                  loaders
========================  ================================================================================
Diginetica (SR-GNN)       :func:`load_next_item_dataset`, :func:`load_next_item_sessions`,
                          :func:`next_item_catalogue_ids`, :func:`next_item_statistics`
REES46 events             :func:`load_rees46`
Instacart                 :func:`load_instacart_catalogue`, :func:`load_instacart_baskets`,
                          :func:`instacart_product_pairs`
UCI Online Retail         :func:`load_online_retail`
Home Depot search         :func:`load_homedepot`
any product table         :func:`load_catalogue_table`
========================  ================================================================================
"""

from __future__ import annotations

import csv
import gzip
import logging
import math
import os
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from datasets import Dataset, DatasetInfo, Features, List, Value
from datasets.table import InMemoryTable

from .schema import (
    CATALOGUE_FEATURES,
    DEFAULT_ACTIONS,
    SESSION_FEATURES,
    ErrorMode,
    InvalidRecordError,
    SchemaSpec,
    ValidationReport,
    item_event,
    iter_valid,
    query_event,
    validate_item,
    validate_session,
)

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike

NEXT_ITEM_FEATURES = Features(
    {"session_id": Value("string"), "item_ids": List(Value("string")), "target": Value("string")}
)
"""Schema of a next-item sample: the session it comes from, the items seen so far, and the next item."""

UNKNOWN_CATEGORY = "unknown"
"""Category path element used when a source has no category for an item."""


# ----------------------------------------------------------------------------------------------- helpers


def _check_mode(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")


def _fail(err: InvalidRecordError, on_error: ErrorMode, report: ValidationReport) -> None:
    """Raise ``err`` in ``"raise"`` mode; count it in ``report`` in ``"skip"`` mode."""
    if on_error == "raise":
        raise err
    report.add(err)


def _resolve(path: PathLike, default_name: str) -> Path:
    """``path`` itself when it is a file, ``path / default_name`` when it is a folder; it must exist."""
    path = Path(path)
    if path.is_dir():
        path = path / default_name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return path


def _sibling(path: Path, name: str) -> Path:
    target = path.parent / name
    if not target.is_file():
        raise FileNotFoundError(f"{target}: no such file (expected beside {path.name})")
    return target


def _to_dataset(records: list[dict[str, Any]], features: Features) -> Dataset:
    """Build an in-memory ``Dataset`` from records through Arrow directly (much faster than ``from_list``)."""
    table = pa.Table.from_pylist(records, schema=features.arrow_schema)
    return Dataset(InMemoryTable(table), info=DatasetInfo(features=features))


def _table_dataset(table: pa.Table, features: Features) -> Dataset:
    return Dataset(InMemoryTable(table.cast(features.arrow_schema)), info=DatasetInfo(features=features))


def _merge_skips(report: ValidationReport, other: ValidationReport) -> None:
    """Add ``other``'s skips to ``report`` without counting its records as read (they are derived records)."""
    report.skipped += other.skipped
    report.reasons.update(other.reasons)
    report.examples.extend(other.examples[: max(0, 5 - len(report.examples))])


def _valid_sessions(
    records: Iterable[dict[str, Any]],
    source: str,
    on_error: ErrorMode,
    report: ValidationReport,
    item_ids: Any,
    spec: SchemaSpec | None = None,
) -> list[dict[str, Any]]:
    """Sessions built from the file's lines that pass :func:`validate_session` (``report.seen`` unchanged)."""
    own = ValidationReport()
    valid = list(
        iter_valid(
            records,
            validate_session,
            on_error=on_error,
            report=own,
            source=source,
            spec=spec or SchemaSpec(),
            item_ids=item_ids,
        )
    )
    _merge_skips(report, own)
    return valid


def _valid_items(
    records: Iterable[dict[str, Any]], source: str, on_error: ErrorMode, report: ValidationReport
) -> list[dict[str, Any]]:
    """Catalogue records built from the file's lines that pass :func:`validate_item` (``report.seen``
    unchanged)."""
    own = ValidationReport()
    valid = list(iter_valid(records, validate_item, on_error=on_error, report=own, source=source))
    _merge_skips(report, own)
    return valid


def _catalogue_record(
    item_id: str,
    title: str | None,
    category: Sequence[str] | None,
    *,
    brand: str | None = None,
    description: str | None = None,
    attributes: Iterable[tuple[str, str]] = (),
) -> dict[str, Any]:
    return {
        "item_id": item_id,
        "title": title,
        "description": description,
        "category": list(category) if category else [UNKNOWN_CATEGORY],
        "brand": brand or None,
        "attributes": [{"name": n, "value": v} for n, v in attributes],
        "image": None,
    }


def _open_text(path: Path):
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _csv_rows(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str] | list[str]]]:
    """Yield ``(line_number, row)`` for each data row of a CSV file, checking the header first.

    ``row`` is a ``dict`` by column name when the row has as many fields as the header, otherwise the raw list
    (so that callers can report the wrong column count).
    """
    with _open_text(path) as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: the file is empty (expected a header row)")
        header = [h.strip().lstrip("\ufeff") for h in header]
        for column in required:
            if column not in header:
                raise ValueError(f"{path}: required column '{column}' is missing (header: {header})")
        for row in reader:
            if not row:
                continue
            yield reader.line_num, (dict(zip(header, row, strict=True)) if len(row) == len(header) else row)


def _ends_with_newline(path: Path) -> bool:
    if path.name.endswith(".gz"):
        return True
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        if fh.tell() == 0:
            return True
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) in (b"\n", b"\r")


# ------------------------------------------------------------------------------ Diginetica (SR-GNN format)

_TRAIN_FILE = "train_sessions.txt"
_TEST_FILE = "test.tsv"


def _bad_token(tokens: list[str]) -> int | None:
    """Position of the first token that is not a non-negative decimal integer, or ``None``."""
    for pos, tok in enumerate(tokens):
        if not (tok.isascii() and tok.isdigit()):
            return pos
    return None


def _normalise(tokens: list[str]) -> list[str]:
    """Strip leading zeros so that ``"007"`` and ``"7"`` name the same item."""
    return [str(int(t)) if len(t) > 1 and t[0] == "0" else t for t in tokens]


def _check_tokens(tokens: list[str], source: str, line: int, field: str) -> list[str]:
    pos = _bad_token(tokens)
    if pos is not None:
        name = f"{field}[{pos}]" if field in ("items", "prefix") else field
        raise InvalidRecordError(
            source,
            line,
            name,
            f"line {line}: token {tokens[pos]!r} is not an integer item ID: this format (--dataset session_lines, "
            "or diginetica) takes integer IDs; for other IDs write session files in the package schema with a "
            "catalogue and train with --dataset sessions (README: Train on your own sessions)",
        )
    return _normalise(tokens)


def _read_train_sessions(
    path: Path, on_error: ErrorMode, report: ValidationReport
) -> tuple[list[int], list[list[str]]]:
    """Parse ``train_sessions.txt``: returns the 1-based line number and the item IDs of each valid
    session."""
    source, lines, sessions = str(path), [], []
    pending_empty: list[int] = []
    with open(path, encoding="utf-8") as fh:
        for number, text in enumerate(fh, start=1):
            tokens = text.split()
            if not tokens:
                pending_empty.append(number)
                continue
            for empty in pending_empty:  # an empty line followed by a session: a hole in the file
                report.seen += 1
                _fail(
                    InvalidRecordError(
                        source, empty, "items", f"line {empty} is empty (in the middle of the file)"
                    ),
                    on_error,
                    report,
                )
            pending_empty.clear()
            report.seen += 1
            try:
                sessions.append(_check_tokens(tokens, source, number, "items"))
            except InvalidRecordError as err:
                _fail(err, on_error, report)
                continue
            lines.append(number)
    return lines, sessions


def _read_test_cases(
    path: Path, on_error: ErrorMode, report: ValidationReport
) -> tuple[list[list[str]], list[str]]:
    """Parse ``test.tsv`` (header ``prefix<TAB>target``): returns the prefixes and targets of valid cases."""
    source, prefixes, targets = str(path), [], []
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\r\n")
        if header.split("\t") != ["prefix", "target"]:
            raise InvalidRecordError(
                source, 1, "header", f"line 1: expected 'prefix<TAB>target', got {header!r}"
            )
        for number, text in enumerate(fh, start=2):
            text = text.rstrip("\r\n")
            if not text.strip():
                continue
            report.seen += 1
            cols = text.split("\t")
            try:
                if len(cols) != 2:
                    raise InvalidRecordError(
                        source,
                        number,
                        "<columns>",
                        f"line {number}: expected 2 tab-separated columns (prefix, target), got {len(cols)}",
                    )
                prefix, target = cols[0].split(), cols[1].split()
                if not prefix:
                    raise InvalidRecordError(source, number, "prefix", f"line {number}: empty prefix")
                if len(target) != 1:
                    raise InvalidRecordError(
                        source, number, "target", f"line {number}: expected one item ID, got {cols[1]!r}"
                    )
                prefix = _check_tokens(prefix, source, number, "prefix")
                target = _check_tokens(target, source, number, "target")
            except InvalidRecordError as err:
                _fail(err, on_error, report)
                continue
            prefixes.append(prefix)
            targets.append(target[0])
    return prefixes, targets


def _test_session_index(prefixes: Sequence[list[str]], targets: Sequence[str]) -> np.ndarray:
    """Recover which test session each (already expanded) test case comes from.

    SR-GNN writes the cases of one test session longest prefix first; case ``j + 1`` continues case ``j``
    when its
    prefix is case ``j``'s prefix without the last item and its target is that last item.
    """
    index = np.zeros(len(prefixes), dtype=np.int64)
    current = -1
    for j, (prefix, target) in enumerate(zip(prefixes, targets, strict=True)):
        continues = j > 0 and prefixes[j - 1][:-1] == prefix and prefixes[j - 1][-1] == target
        if not continues:
            current += 1
        index[j] = current
    return index


def _flat_strings(sequences: Sequence[list[str]]) -> tuple[np.ndarray, pa.Array]:
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    flat = pa.array([tok for s in sequences for tok in s], type=pa.string())
    return lengths, flat


def _expand_prefixes(sequences: Sequence[list[str]], session_ids: pa.Array) -> pa.Table:
    """All (prefix, next item) samples of each sequence, built with vectorised Arrow/NumPy gathers.

    For a sequence ``[i1..in]`` the samples are ``([i1..ik], i(k+1))`` for ``k = 1..n-1``.
    """
    lengths, flat = _flat_strings(sequences)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    per_seq = np.maximum(lengths - 1, 0)
    seq_of_sample = np.repeat(np.arange(len(lengths)), per_seq)
    first_sample = np.cumsum(per_seq) - per_seq
    k = np.arange(int(per_seq.sum()), dtype=np.int64) - np.repeat(first_sample, per_seq) + 1
    base = starts[seq_of_sample]
    offsets = np.concatenate([[0], np.cumsum(k)]).astype(np.int64)
    gather = np.arange(int(offsets[-1]), dtype=np.int64) - np.repeat(offsets[:-1], k) + np.repeat(base, k)
    items = pa.LargeListArray.from_arrays(pa.array(offsets), flat.take(pa.array(gather)))
    return pa.table(
        {
            "session_id": session_ids.take(pa.array(seq_of_sample)),
            "item_ids": items,
            "target": flat.take(pa.array(base + k)),
        }
    )


def next_item_samples(sequences: Sequence[list[str]], session_ids: Sequence[str] | None = None) -> Dataset:
    """The protocol's training samples of any item sequences, as a ``Dataset`` (``session_id``, ``item_ids``, ``target``).

    Every prefix of every sequence with its next item: ``[i1..in]`` gives ``([i1..ik], i(k+1))`` for
    ``k = 1..n-1``; sequences of length 1 give none. ``session_ids`` default to the sequences' positions.
    """
    ids = [str(i) for i in range(len(sequences))] if session_ids is None else list(session_ids)
    return _table_dataset(_expand_prefixes(sequences, pa.array(ids, type=pa.string())), NEXT_ITEM_FEATURES)


def _prefixed_ids(prefix: str, numbers: Iterable[int]) -> pa.Array:
    return pa.array([f"{prefix}:{n}" for n in numbers], type=pa.string())


def load_next_item_dataset(
    path: PathLike,
    split: Literal["train", "test"] = "train",
    *,
    on_error: ErrorMode = "raise",
    report: ValidationReport | None = None,
    train_file: str = _TRAIN_FILE,
    test_file: str = _TEST_FILE,
) -> Dataset:
    """Next-item samples of a data set in the SR-GNN two-file format (e.g. Diginetica).

    The folder ``path`` holds ``train_sessions.txt`` (one training session per line, item IDs separated by
    spaces) and ``test.tsv`` (header ``prefix<TAB>target``, one test case per line, already expanded).

    * ``split="train"``: every prefix of every training session with its next item: a session ``[a, b, c]``
      gives ``([a], b)`` and ``([a, b], c)``. Built with vectorised gathers (about a second for Diginetica's
      719,470 samples). ``session_id`` is ``"train:<line number>"``.
    * ``split="test"``: the cases of ``test.tsv`` as they are. ``session_id`` is ``"test:<n>"``, the test
      session the case was cut from (see :func:`_test_session_index`).

    Returns:
        A ``Dataset`` with :data:`NEXT_ITEM_FEATURES`: ``session_id`` (str), ``item_ids`` (list of str, the
        prefix) and ``target`` (str).

    Raises:
        InvalidRecordError: on a malformed line (non-integer token, empty line in the middle of the training
            file, wrong column count or empty prefix in ``test.tsv``), naming the file, line and field; with
            ``on_error="skip"`` such lines are dropped and counted in ``report``.
    """
    _check_mode(on_error)
    report = report if report is not None else ValidationReport()
    if split == "train":
        path = _resolve(path, train_file)
        lines, sessions = _read_train_sessions(path, on_error, report)
        table = _expand_prefixes(sessions, _prefixed_ids("train", lines))
    elif split == "test":
        path = _resolve(path, test_file)
        prefixes, targets = _read_test_cases(path, on_error, report)
        table = pa.table(
            {
                "session_id": _prefixed_ids("test", _test_session_index(prefixes, targets).tolist()),
                "item_ids": pa.array(prefixes, type=pa.large_list(pa.string())),
                "target": pa.array(targets, type=pa.string()),
            }
        )
    else:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return _table_dataset(table, NEXT_ITEM_FEATURES)


def _test_sessions(prefixes: list[list[str]], targets: list[str]) -> list[list[str]]:
    """Whole test sessions: the longest prefix of each test session followed by its target."""
    index = _test_session_index(prefixes, targets)
    first = np.flatnonzero(np.diff(index, prepend=-1))
    return [prefixes[j] + [targets[j]] for j in first.tolist()]


def load_next_item_sessions(
    path: PathLike,
    split: Literal["train", "test"] = "train",
    *,
    on_error: ErrorMode = "raise",
    report: ValidationReport | None = None,
    train_file: str = _TRAIN_FILE,
    test_file: str = _TEST_FILE,
) -> Dataset:
    """The raw sessions of an SR-GNN-format data set in :data:`SESSION_FEATURES` (every event a ``"view"``).

    ``split="train"`` gives the training sessions (``session_id`` ``"train:<line number>"``); ``split="test"``
    the test sessions recovered from the expanded test cases (longest prefix plus its target,
    ``session_id`` ``"test:<n>"`` as in :func:`load_next_item_dataset`). Timestamps are ``None``: the format
    has none.
    """
    _check_mode(on_error)
    report = report if report is not None else ValidationReport()
    if split == "train":
        path = _resolve(path, train_file)
        lines, sessions = _read_train_sessions(path, on_error, report)
        ids = [f"train:{n}" for n in lines]
    elif split == "test":
        path = _resolve(path, test_file)
        sessions = _test_sessions(*_read_test_cases(path, on_error, report))
        ids = [f"test:{n}" for n in range(len(sessions))]
    else:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    records = (
        {"session_id": sid, "events": [item_event("view", item) for item in items]}
        for sid, items in zip(ids, sessions, strict=True)
    )
    valid = _valid_sessions(records, str(path), on_error, report, item_ids=None)
    return _to_dataset(valid, SESSION_FEATURES)


def _all_ids(path: PathLike, on_error: ErrorMode, train_file: str, test_file: str) -> tuple[set[str], dict]:
    report = ValidationReport()
    _, train = _read_train_sessions(_resolve(path, train_file), on_error, report)
    prefixes, targets = _read_test_cases(_resolve(path, test_file), on_error, report)
    ids = {i for s in train for i in s} | {i for p in prefixes for i in p} | set(targets)
    test_sessions = _test_sessions(prefixes, targets)
    stats = {
        "train_sessions": len(train),
        "train_samples": sum(max(len(s) - 1, 0) for s in train),
        "test_samples": len(targets),
        "test_sessions": len(test_sessions),
        "items": len(ids),
        "clicks": sum(len(s) for s in train) + sum(len(s) for s in test_sessions),
    }
    return ids, stats


def next_item_catalogue_ids(
    path: PathLike,
    *,
    on_error: ErrorMode = "raise",
    train_file: str = _TRAIN_FILE,
    test_file: str = _TEST_FILE,
) -> list[str]:
    """Every item ID of an SR-GNN-format data set (training sessions, test prefixes and targets), sorted
    numerically. This is the candidate set of full-catalogue evaluation (43,097 items for Diginetica)."""
    _check_mode(on_error)
    ids, _ = _all_ids(path, on_error, train_file, test_file)
    return sorted(ids, key=int)


def next_item_statistics(
    path: PathLike,
    *,
    on_error: ErrorMode = "raise",
    train_file: str = _TRAIN_FILE,
    test_file: str = _TEST_FILE,
) -> dict[str, int]:
    """The counts papers report for an SR-GNN-format data set.

    ``clicks`` is the number of item views in all sessions: the lengths of the training sessions plus the
    lengths
    of the test sessions recovered from the test cases (for Diginetica 906,140 + 76,821 = 982,961, the figure
    of the SR-GNN paper). Also ``train_sessions``, ``train_samples``, ``test_samples``, ``test_sessions`` and
    ``items``.
    """
    _check_mode(on_error)
    _, stats = _all_ids(path, on_error, train_file, test_file)
    return stats


@dataclass
class NextItemSplits:
    """Train / validation / test next-item samples of an SR-GNN-format data set (see :func:`load_next_item_splits`)."""

    train: Dataset
    validation: Dataset | None
    test: Dataset
    catalogue_ids: list[str]
    """The candidate set ranked at evaluation: every item of the data set, or the kept items when reduced."""
    statistics: dict[str, int]


def _top_items(sessions: Sequence[list[str]], top_items: int) -> set[str]:
    """The ``top_items`` most frequent item IDs of ``sessions`` (ties broken by the smaller numeric ID)."""
    counts: dict[str, int] = {}
    for s in sessions:
        for i in s:
            counts[i] = counts.get(i, 0) + 1
    ranked = sorted(counts, key=lambda i: (-counts[i], int(i) if i.isdigit() else 0, i))
    return set(ranked[:top_items])


def load_next_item_splits(
    path: PathLike,
    *,
    validation_fraction: float = 0.1,
    validation_seed: int = 0,
    top_items: int | None = None,
    on_error: ErrorMode = "raise",
    train_file: str = _TRAIN_FILE,
    test_file: str = _TEST_FILE,
) -> NextItemSplits:
    """Train, validation and test samples of an SR-GNN-format data set (e.g. Diginetica), with no leak.

    * **Validation** is ``validation_fraction`` of the *training sessions* (a seeded permutation of whole
      sessions, as the TAGNN++ paper holds out 10 %), so no session has prefixes on both sides. Its samples are
      every prefix of the held-out sessions, like training. ``validation_fraction=0`` gives ``validation=None``.
    * **Test** is ``test.tsv`` as it is: score it once, at the end.
    * **The catalogue** (the candidates ranked, and a model's vocabulary) is every item of the training file
      (``train_file``, the validation sessions included): items that appear only in ``test.tsv`` are not in it
      (``statistics["test_only_items"]``); a test target among them is a miss, counted as an unknown target
      (``statistics["test_unknown_targets"]``). SR-GNN's preprocessing leaves none in Diginetica.
    * ``top_items=K`` reduces the data set to its ``K`` most frequent training items (a CPU-sized benchmark):
      other items are removed from every session, sessions left shorter than 2 are dropped, and test cases
      whose target is outside, or whose whole prefix is, are dropped. The catalogue is then the kept items.

    ``statistics`` counts sessions and samples of each split (and the test cases dropped by the reduction).
    """
    _check_mode(on_error)
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction={validation_fraction} must be in [0, 1)")
    report = ValidationReport()
    lines, sessions = _read_train_sessions(_resolve(path, train_file), on_error, report)
    prefixes, targets = _read_test_cases(_resolve(path, test_file), on_error, report)
    stats: dict[str, int] = {}
    if top_items is not None:
        if top_items < 1:
            raise ValueError(f"top_items={top_items} must be >= 1")
        keep = _top_items(sessions, top_items)
        reduced = [[i for i in s if i in keep] for s in sessions]
        lines, sessions = map(list, zip(*[(n, s) for n, s in zip(lines, reduced) if len(s) >= 2]) or ([], []))
        kept_cases = [
            (p2, t) for p, t in zip(prefixes, targets) if t in keep and (p2 := [i for i in p if i in keep])
        ]
        stats["test_cases_dropped"] = len(targets) - len(kept_cases)
        prefixes, targets = [p for p, _ in kept_cases], [t for _, t in kept_cases]
        catalogue = sorted(keep, key=lambda i: (int(i) if i.isdigit() else 0, i))
    else:
        # the items of the training file only: an item seen only in test.tsv was never trained, so it is not a
        # candidate; test targets outside the catalogue count as misses (``num_unknown_targets``)
        known = {i for s in sessions for i in s}
        catalogue = sorted(known, key=lambda i: (int(i) if i.isdigit() else 0, i))
        stats["test_only_items"] = len(
            {i for p in prefixes for i in p if i not in known} | set(targets) - known
        )
        stats["test_unknown_targets"] = sum(t not in known for t in targets)
    order = np.random.default_rng(validation_seed).permutation(len(sessions))
    n_val = int(round(validation_fraction * len(sessions)))
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])

    def _samples(idx: np.ndarray) -> Dataset:
        seqs = [sessions[i] for i in idx.tolist()]
        return _table_dataset(
            _expand_prefixes(seqs, _prefixed_ids("train", [lines[i] for i in idx.tolist()])),
            NEXT_ITEM_FEATURES,
        )

    train = _samples(train_idx)
    validation = _samples(val_idx) if n_val else None
    test = _table_dataset(
        pa.table(
            {
                "session_id": _prefixed_ids("test", _test_session_index(prefixes, targets).tolist()),
                "item_ids": pa.array(prefixes, type=pa.large_list(pa.string())),
                "target": pa.array(targets, type=pa.string()),
            }
        ),
        NEXT_ITEM_FEATURES,
    )
    stats.update(
        train_sessions=len(train_idx),
        train_samples=len(train),
        validation_sessions=n_val,
        validation_samples=len(validation) if validation is not None else 0,
        test_samples=len(test),
        items=len(catalogue),
    )
    return NextItemSplits(train, validation, test, catalogue, stats)


# ----------------------------------------------------------------------------------------------- REES46

REES46_ACTIONS: dict[str, str] = {"view": "view", "cart": "add_to_cart", "purchase": "purchase"}
"""REES46 ``event_type`` -> package action."""

PRICE_BANDS: tuple[float, ...] = (10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0)
"""Upper edges (in dollars) of the price bands used in REES46 item texts."""

_REES46_COLUMNS = (
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
)


def price_band(price: float | None) -> str:
    """A readable price band: ``"under $10"``, ``"$10 to $25"``, ..., ``"$1000 and over"``, or ``"price
    unknown"``
    for a missing, zero or negative price."""
    if price is None or not math.isfinite(price) or price <= 0:
        return "price unknown"
    low = 0.0
    for edge in PRICE_BANDS:
        if price < edge:
            return f"under ${edge:g}" if low == 0 else f"${low:g} to ${edge:g}"
        low = edge
    return f"${low:g} and over"


def _parse_time(text: str, cache: dict[str, float]) -> float:
    """``"2019-10-01 00:00:00 UTC"`` (or any ISO 8601 time) -> seconds since the epoch, UTC if no zone."""
    value = cache.get(text)
    if value is None:
        stamp = datetime.fromisoformat(text.removesuffix(" UTC").strip())
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        value = cache[text] = stamp.timestamp()
    return value


def _rees46_event(row: dict[str, str], source: str, line: int, cache: dict[str, float]) -> dict[str, Any]:
    """Check and convert one REES46 row; raise :class:`InvalidRecordError` naming the bad field."""
    action = REES46_ACTIONS.get(row["event_type"].strip())
    if action is None:
        raise InvalidRecordError(
            source,
            line,
            "event_type",
            f"line {line}: unknown event type {row['event_type']!r}; expected one of {list(REES46_ACTIONS)}",
        )
    for name in ("product_id", "user_session", "user_id"):
        if not row[name].strip():
            raise InvalidRecordError(source, line, name, f"line {line}: missing")
    try:
        timestamp = _parse_time(row["event_time"], cache)
    except ValueError:
        raise InvalidRecordError(
            source, line, "event_time", f"line {line}: not a time: {row['event_time']!r}"
        ) from None
    try:
        price = float(row["price"]) if row["price"].strip() else None
    except ValueError:
        raise InvalidRecordError(
            source, line, "price", f"line {line}: not a number: {row['price']!r}"
        ) from None
    return {
        "action": action,
        "timestamp": timestamp,
        "item_id": row["product_id"].strip(),
        "price": price,
        "session": row["user_session"].strip(),
        "user_id": row["user_id"].strip(),
        "category_code": row["category_code"].strip(),
        "category_id": row["category_id"].strip(),
        "brand": row["brand"].strip(),
    }


def _read_rees46(
    path: Path, on_error: ErrorMode, report: ValidationReport, drop_truncated_last_line: bool
) -> list[dict[str, Any]]:
    source, events, cache = str(path), [], {}
    truncated_tail = not _ends_with_newline(path)
    rows = list(_csv_rows(path, _REES46_COLUMNS))
    for position, (line, row) in enumerate(rows):
        report.seen += 1
        try:
            if isinstance(row, list):
                raise InvalidRecordError(
                    source,
                    line,
                    "<columns>",
                    f"line {line}: expected {len(_REES46_COLUMNS)} columns, got {len(row)}",
                )
            events.append(_rees46_event(row, source, line, cache))
        except InvalidRecordError as err:
            if drop_truncated_last_line and truncated_tail and position == len(rows) - 1:
                logger.warning(
                    "%s: dropping the last line, cut off without a line end (%s)", source, err.reason
                )
                report.add(err)
                continue
            _fail(err, on_error, report)
    return events


def _rees46_item(event: dict[str, Any]) -> dict[str, Any]:
    code = event["category_code"]
    path = [p for p in code.split(".") if p] if code else []
    words = " ".join(w for part in path for w in part.split("_"))
    band = price_band(event["price"])
    title = " ".join(t for t in (event["brand"], words or "product") if t) + f", {band}"
    attributes = [("price_band", band), ("category_id", event["category_id"])]
    return _catalogue_record(event["item_id"], title, path, brand=event["brand"], attributes=attributes)


def _group_sessions(
    events: list[dict[str, Any]], key: str, extra: Callable[[dict[str, Any]], dict[str, Any]]
) -> list[dict[str, Any]]:
    """Group events by ``event[key]`` (first-appearance order), each group sorted stably by timestamp."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        groups.setdefault(event[key], []).append(event)
    sessions = []
    for sid, group in groups.items():
        group.sort(key=lambda e: -math.inf if e["timestamp"] is None else e["timestamp"])
        sessions.append(
            {
                "session_id": sid,
                "events": [item_event(e["action"], e["item_id"], e["timestamp"]) for e in group],
                **extra(group[0]),
            }
        )
    return sessions


def load_rees46(
    path: PathLike,
    *,
    on_error: ErrorMode = "raise",
    report: ValidationReport | None = None,
    drop_truncated_last_line: bool = True,
) -> tuple[Dataset, Dataset]:
    """Sessions and catalogue from a REES46 events CSV (``event_time, event_type, product_id, category_id,
    category_code, brand, price, user_id, user_session``).

    Events are grouped by ``user_session`` and ordered by ``event_time`` (seconds since the epoch, UTC;
    ties keep
    file order). ``view`` -> ``"view"``, ``cart`` -> ``"add_to_cart"``, ``purchase`` -> ``"purchase"``; any
    other event type is an error. The data has no product titles, so each product's text is composed from what
    its first event says: title = brand + the words of ``category_code`` + a price band (e.g.
    ``"samsung electronics smartphone, $100 to $250"``), category = ``category_code`` split on ``"."`` (or
    ``["unknown"]``), brand, attributes ``price_band`` (see :func:`price_band`) and ``category_id``;
    description ``None``.

    Files cut with ``head`` usually end in a partial line without a line end; with
    ``drop_truncated_last_line=True`` (default) such a last line, when malformed, is dropped with a warning
    and
    counted in ``report`` even in ``"raise"`` mode.

    Returns:
        ``(sessions, catalogue)``: sessions have :data:`SESSION_FEATURES` plus a ``user_id`` column (str);
        the catalogue has :data:`CATALOGUE_FEATURES`, one record per product.
    """
    _check_mode(on_error)
    report = report if report is not None else ValidationReport()
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("*.csv"))
        if len(found) != 1:
            raise FileNotFoundError(
                f"{path}: expected exactly one events .csv file in the folder, found {len(found)}"
            )
        path = found[0]
    path = _resolve(path, "")
    events = _read_rees46(path, on_error, report, drop_truncated_last_line)
    items: dict[str, dict[str, Any]] = {}
    for event in events:
        if event["item_id"] not in items:
            items[event["item_id"]] = _rees46_item(event)
    catalogue = _valid_items(items.values(), f"{path} (catalogue)", on_error, report)
    sessions = _group_sessions(events, "session", lambda e: {"user_id": e["user_id"]})
    known = {item["item_id"] for item in catalogue}
    sessions = _valid_sessions(sessions, f"{path} (sessions)", on_error, report, item_ids=known)
    features = Features({**SESSION_FEATURES, "user_id": Value("string")})
    return _to_dataset(sessions, features), _to_dataset(catalogue, CATALOGUE_FEATURES)


# --------------------------------------------------------------------------------------------- Instacart


def _read_lookup(path: Path, id_column: str, name_column: str) -> dict[str, str]:
    lookup = {}
    for line, row in _csv_rows(path, (id_column, name_column)):
        if isinstance(row, list):
            raise InvalidRecordError(str(path), line, "<columns>", f"line {line}: wrong number of columns")
        lookup[row[id_column].strip()] = row[name_column].strip()
    return lookup


def _instacart_product(
    row: dict[str, str] | list[str],
    source: str,
    line: int,
    aisles: dict[str, str],
    departments: dict[str, str],
) -> dict[str, Any]:
    if isinstance(row, list):
        raise InvalidRecordError(
            source, line, "<columns>", f"line {line}: wrong number of columns ({len(row)})"
        )
    aisle = aisles.get(row["aisle_id"].strip())
    if aisle is None:
        raise InvalidRecordError(source, line, "aisle_id", f"line {line}: unknown aisle {row['aisle_id']!r}")
    department = departments.get(row["department_id"].strip())
    if department is None:
        raise InvalidRecordError(
            source, line, "department_id", f"line {line}: unknown department {row['department_id']!r}"
        )
    return _catalogue_record(row["product_id"].strip(), row["product_name"].strip(), [department, aisle])


def load_instacart_catalogue(
    path: PathLike, *, on_error: ErrorMode = "raise", report: ValidationReport | None = None
) -> Dataset:
    """The Instacart product catalogue in :data:`CATALOGUE_FEATURES`.

    ``path`` is the folder (or its ``products.csv``); ``aisles.csv`` and ``departments.csv`` must lie
    beside it.
    Title = ``product_name``; category = ``[department, aisle]``; no description, brand or attributes.
    """
    _check_mode(on_error)
    report = report if report is not None else ValidationReport()
    path = _resolve(path, "products.csv")
    aisles = _read_lookup(_sibling(path, "aisles.csv"), "aisle_id", "aisle")
    departments = _read_lookup(_sibling(path, "departments.csv"), "department_id", "department")
    source, records, lines = str(path), [], []
    for line, row in _csv_rows(path, ("product_id", "product_name", "aisle_id", "department_id")):
        report.seen += 1
        try:
            records.append(_instacart_product(row, source, line, aisles, departments))
        except InvalidRecordError as err:
            _fail(err, on_error, report)
            continue
        lines.append(line)
    valid = []
    for line, record in zip(lines, records, strict=True):  # validate with the file's line numbers
        try:
            validate_item(record, line, source=source)
        except InvalidRecordError as err:
            _fail(err, on_error, report)
            continue
        valid.append(record)
    return _to_dataset(valid, CATALOGUE_FEATURES)


def _product_ids(path: Path) -> set[str]:
    table = pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            include_columns=["product_id"], column_types={"product_id": pa.string()}
        ),
    )
    return set(pc.utf8_trim_whitespace(table["product_id"]).to_pylist())


_ORDER_COLUMNS = ("order_id", "user_id", "order_number", "product_id", "add_to_cart_order")


def _order_line(row: dict[str, str] | list[str], source: str, line: int) -> dict[str, Any]:
    if isinstance(row, list):
        raise InvalidRecordError(
            source, line, "<columns>", f"line {line}: wrong number of columns ({len(row)})"
        )
    for name in ("order_id", "user_id", "product_id"):
        if not row[name].strip():
            raise InvalidRecordError(source, line, name, f"line {line}: missing")
    numbers = {}
    for name in ("order_number", "add_to_cart_order"):
        try:
            numbers[name] = int(row[name])
        except ValueError:
            raise InvalidRecordError(
                source, line, name, f"line {line}: not an integer: {row[name]!r}"
            ) from None
    return {
        "order_id": row["order_id"].strip(),
        "user_id": row["user_id"].strip(),
        "item_id": row["product_id"].strip(),
        **numbers,
    }


def _instacart_sessions(lines: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    orders: dict[str, list[dict[str, Any]]] = {}
    for ln in lines:
        orders.setdefault(ln["order_id"], []).append(ln)
    sessions = []
    for order_id, group in orders.items():
        group.sort(key=lambda ln: ln["add_to_cart_order"])
        sessions.append(
            {
                "session_id": order_id,
                "events": [item_event(action, ln["item_id"]) for ln in group],
                "user_id": group[0]["user_id"],
                "order_number": group[0]["order_number"],
            }
        )
    return sessions


def load_instacart_baskets(
    path: PathLike,
    *,
    products: PathLike | None = None,
    action: str = "add_to_cart",
    on_error: ErrorMode = "raise",
    report: ValidationReport | None = None,
) -> Dataset:
    """Instacart orders as sessions: one session per order, items in ``add_to_cart_order``.

    ``path`` is the folder (or its ``order_lines.csv.gz`` / any CSV with columns ``order_id, user_id,
    order_number, product_id, add_to_cart_order``). ``products`` is the ``products.csv`` whose IDs the
    items must
    exist in (default: beside the order lines).

    Every event's action is ``action``, by default ``"add_to_cart"``: the data records the order in which
    items
    went into the cart, and every order was then placed, so ``"purchase"`` (pass ``action="purchase"``) is
    equally true of every item and says nothing that a per-event label could use. Timestamps are ``None`` (the
    data has only day of week and hour of the order).

    Returns:
        A ``Dataset`` with :data:`SESSION_FEATURES` (``session_id`` = ``order_id``) plus ``user_id`` (str) and
        ``order_number`` (int32, 1 for a user's first order).
    """
    _check_mode(on_error)
    report = report if report is not None else ValidationReport()
    path = _resolve(path, "order_lines.csv.gz")
    known = _product_ids(Path(products) if products is not None else _sibling(path, "products.csv"))
    source, lines = str(path), []
    for line, row in _csv_rows(path, _ORDER_COLUMNS):
        report.seen += 1
        try:
            lines.append(_order_line(row, source, line))
        except InvalidRecordError as err:
            _fail(err, on_error, report)
    sessions = _instacart_sessions(lines, action)
    sessions = _valid_sessions(sessions, f"{path} (orders)", on_error, report, item_ids=known)
    features = Features({**SESSION_FEATURES, "user_id": Value("string"), "order_number": Value("int32")})
    return _to_dataset(sessions, features)


def instacart_product_pairs(
    baskets: Iterable[Mapping[str, Any]], *, max_pairs_per_basket: int | None = None, seed: int = 0
) -> Iterator[tuple[str, str]]:
    """Yield pairs ``(a, b)`` of different products bought in the same basket (positives for BYOL).

    Each unordered pair of distinct items of a session is yielded once, ``a`` before ``b`` in cart order. With
    ``max_pairs_per_basket`` a seeded random sample of at most that many pairs is taken from each basket.
    Works
    on any sessions in the package schema (a ``Dataset`` or a list of records).
    """
    rng = random.Random(seed)
    for basket in baskets:
        items = list(dict.fromkeys(ev["item_id"] for ev in basket["events"] if ev["subject"] == "item"))
        pairs = [(items[i], items[j]) for i in range(len(items)) for j in range(i + 1, len(items))]
        if max_pairs_per_basket is not None and len(pairs) > max_pairs_per_basket:
            pairs = rng.sample(pairs, max_pairs_per_basket)
        yield from pairs


# ---------------------------------------------------------------------------------------- Online Retail

_RETAIL_COLUMNS = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "CustomerID")

CANCEL_ACTION = "cancel"
"""Action of cancellation lines in :func:`load_online_retail` with ``include_cancellations=True``."""


def _read_retail(path: Path) -> pa.Table:
    names = pq.read_schema(path).names
    for column in _RETAIL_COLUMNS:
        if column not in names:
            raise ValueError(f"{path}: required column '{column}' is missing (columns: {names})")
    table = pq.read_table(path, columns=list(_RETAIL_COLUMNS))
    for column in ("InvoiceNo", "StockCode", "Description"):
        table = table.set_column(
            table.schema.get_field_index(column), column, pc.cast(table[column], pa.string())
        )
    if not pa.types.is_timestamp(table.schema.field("InvoiceDate").type):
        raise ValueError(
            f"{path}: column 'InvoiceDate' must be a timestamp, got {table.schema.field('InvoiceDate').type}"
        )
    micros = pc.cast(
        pc.cast(table["InvoiceDate"], pa.timestamp("us", tz=table.schema.field("InvoiceDate").type.tz)),
        pa.int64(),
    )
    table = table.append_column("timestamp", pc.divide(pc.cast(micros, pa.float64()), 1e6))
    return table.append_column("row", pa.array(np.arange(table.num_rows, dtype=np.int64)))


def _retail_catalogue(table: pa.Table) -> list[dict[str, Any]]:
    """StockCode -> its most frequent description (ties: the one seen first), sorted by StockCode.

    The data has no categories, so every category path is ``["unknown"]``.
    """
    lines = pa.table(
        {
            "code": pc.utf8_trim_whitespace(table["StockCode"]),
            "text": pc.utf8_trim_whitespace(table["Description"]),
            "row": table["row"],
        }
    )
    lines = lines.filter(pc.and_(pc.is_valid(lines["code"]), pc.greater(pc.utf8_length(lines["text"]), 0)))
    counts = lines.group_by(["code", "text"]).aggregate([("row", "count"), ("row", "min")])
    counts = counts.sort_by([("code", "ascending"), ("row_count", "descending"), ("row_min", "ascending")])
    codes, texts = counts["code"].to_pylist(), counts["text"].to_pylist()
    return [
        _catalogue_record(code, text, None)
        for j, (code, text) in enumerate(zip(codes, texts, strict=True))
        if j == 0 or codes[j - 1] != code
    ]


def _retail_lines(table: pa.Table, include_cancellations: bool, session_by: str) -> pa.Table:
    """Keep the lines that become events, sorted by session key, then date, then file order."""
    cancelled = pc.starts_with(table["InvoiceNo"], "C")
    keep = pc.and_(pc.invert(cancelled), pc.greater(table["Quantity"], 0))
    if include_cancellations:
        keep = pc.or_(keep, cancelled)
    if session_by == "customer":
        keep = pc.and_(keep, pc.is_valid(table["CustomerID"]))
    table = table.filter(keep)
    key = "CustomerID" if session_by == "customer" else "InvoiceNo"
    return table.sort_by([(key, "ascending"), ("InvoiceDate", "ascending"), ("row", "ascending")])


def _customer_id(value: Any) -> str | None:
    if value is None:
        return None
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _retail_sessions(
    lines: pa.Table, source: str, key: str, on_error: ErrorMode, report: ValidationReport
) -> list[dict[str, Any]]:
    """Cut the sorted lines into sessions at each change of ``key``; one item event per line."""
    actions = pc.if_else(pc.starts_with(lines["InvoiceNo"], "C"), CANCEL_ACTION, "purchase").to_pylist()
    codes = pc.utf8_trim_whitespace(lines["StockCode"]).to_pylist()
    columns = zip(
        lines[key].to_pylist(),
        lines["CustomerID"].to_pylist(),
        lines["InvoiceNo"].to_pylist(),
        codes,
        lines["timestamp"].to_pylist(),
        actions,
        lines["row"].to_pylist(),
        strict=True,
    )
    sessions: list[dict[str, Any]] = []
    current: Any = object()
    for value, customer, invoice, code, stamp, action, row in columns:
        if not code:
            _fail(InvalidRecordError(source, row, "StockCode", "missing"), on_error, report)
            continue
        if value != current:
            current = value
            sid = _customer_id(value) if key == "CustomerID" else str(value)
            sessions.append(
                {"session_id": sid, "events": [], "customer_id": _customer_id(customer), "invoice_nos": []}
            )
        sessions[-1]["invoice_nos"].append(invoice)
        sessions[-1]["events"].append(item_event(action, code, stamp))
    return sessions


def load_online_retail(
    path: PathLike,
    *,
    include_cancellations: bool = False,
    session_by: Literal["customer", "invoice"] = "customer",
    on_error: ErrorMode = "raise",
    report: ValidationReport | None = None,
) -> tuple[Dataset, Dataset]:
    """Purchase sequences and catalogue from UCI Online Retail (``online_retail.parquet``).

    Lines whose description is ``"Unknown"`` (missing in the original) are dropped, for the catalogue and the
    sessions. With ``session_by="customer"`` (default) each customer (``CustomerID`` not null) is one session:
    the items of their invoice lines ordered by ``InvoiceDate`` (ties keep file order), action ``"purchase"``,
    timestamp the invoice time in seconds since the epoch (the file's local times read as UTC). With
    ``session_by="invoice"`` each invoice is one session (lines without a customer included).

    Cancellation lines (``InvoiceNo`` starting with ``C``) are dropped unless ``include_cancellations=True``;
    then they are kept as events with action ``"cancel"`` (:data:`CANCEL_ACTION`), which a model config that
    uses them must add to its action vocabulary. Other lines with a quantity of zero or less (stock
    adjustments) are always dropped.

    The catalogue maps each ``StockCode`` to its most frequent description (the title); the data has no
    categories, so ``category`` is ``["unknown"]``.

    Returns:
        ``(sessions, catalogue)``: sessions have :data:`SESSION_FEATURES` plus ``customer_id`` (str or
        ``None``)
        and ``invoice_nos`` (list of str, the invoice of each event, so that sessions can be split into
        baskets).
    """
    _check_mode(on_error)
    if session_by not in ("customer", "invoice"):
        raise ValueError(f"session_by must be 'customer' or 'invoice', got {session_by!r}")
    report = report if report is not None else ValidationReport()
    path = _resolve(path, "online_retail.parquet")
    table = _read_retail(path)
    report.seen += table.num_rows
    table = table.filter(pc.fill_null(pc.not_equal(table["Description"], "Unknown"), True))
    catalogue = _valid_items(_retail_catalogue(table), f"{path} (catalogue)", on_error, report)
    lines = _retail_lines(table, include_cancellations, session_by)
    key = "CustomerID" if session_by == "customer" else "InvoiceNo"
    sessions = _retail_sessions(lines, str(path), key, on_error, report)
    spec = SchemaSpec(actions=(*DEFAULT_ACTIONS, CANCEL_ACTION)) if include_cancellations else None
    known = {item["item_id"] for item in catalogue}
    sessions = _valid_sessions(sessions, f"{path} (sessions)", on_error, report, item_ids=known, spec=spec)
    features = Features(
        {**SESSION_FEATURES, "customer_id": Value("string"), "invoice_nos": List(Value("string"))}
    )
    return _to_dataset(sessions, features), _to_dataset(catalogue, CATALOGUE_FEATURES)


# ------------------------------------------------------------------------------------ generic catalogue


def _read_table(path: Path, columns: Sequence[str]) -> pa.Table:
    """Read ``columns`` of a CSV (optionally ``.gz``) or Parquet file as strings; ValueError on a missing
    one."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        available = pq.read_schema(path).names
    elif name.endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz")):
        delimiter = "\t" if ".tsv" in name else ","
        parse = pacsv.ParseOptions(delimiter=delimiter)
        available = pacsv.open_csv(path, parse_options=parse).schema.names
    else:
        raise ValueError(f"{path}: unknown table format (expected .csv, .tsv or .parquet)")
    for column in columns:
        if column not in available:
            raise ValueError(f"{path}: required column '{column}' is missing (columns: {available})")
    if name.endswith(".parquet"):
        table = pq.read_table(path, columns=list(columns))
    else:
        convert = pacsv.ConvertOptions(
            include_columns=list(columns), column_types={c: pa.string() for c in columns}
        )
        table = pacsv.read_csv(path, parse_options=parse, convert_options=convert)
    return pa.table({c: pc.cast(table[c], pa.string()) for c in columns})


def _text(value: str | None) -> str | None:
    value = value.strip() if value is not None else None
    return value or None


def load_catalogue_table(
    path: PathLike,
    *,
    id_column: str,
    title_column: str,
    label_column: str | None = None,
    category_columns: Sequence[str] = (),
    category_separator: str | None = None,
    description_column: str | None = None,
    brand_column: str | None = None,
    on_error: ErrorMode = "raise",
    report: ValidationReport | None = None,
) -> Dataset:
    """A product table (CSV, TSV or Parquet) as a catalogue in :data:`CATALOGUE_FEATURES`.

    Args:
        path: the table.
        id_column, title_column: columns of the item ID and the title (both required in every row).
        label_column: if given, a ``label`` column (str) is added, e.g. a class for product classification.
        category_columns: columns that form the category path, root first; empty values are left out; when
            none is given or all are empty the path is ``["unknown"]``.
        category_separator: split each category value on this separator (for a column like ``"a > b > c"``).
        description_column, brand_column: optional columns (empty values become ``None``).

    Raises:
        ValueError: a named column is not in the file (the message names the file and the column).
        InvalidRecordError: a row without ID, title or label, or with an ID seen before; the index is the
            0-based data row. With ``on_error="skip"`` such rows are dropped and counted in ``report``.
    """
    _check_mode(on_error)
    report = report if report is not None else ValidationReport()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    optional = [c for c in (label_column, description_column, brand_column) if c is not None]
    columns = list(dict.fromkeys([id_column, title_column, *category_columns, *optional]))
    table = _read_table(path, columns)
    data = {c: table[c].to_pylist() for c in columns}
    source, seen, valid = str(path), set(), []
    for index in range(table.num_rows):
        report.seen += 1
        try:
            record = _table_item(
                data,
                index,
                source,
                id_column,
                title_column,
                category_columns,
                category_separator,
                description_column,
                brand_column,
                label_column,
                seen,
            )
            validate_item(record, index, source=source)
        except InvalidRecordError as err:
            _fail(err, on_error, report)
            continue
        seen.add(record["item_id"])
        valid.append(record)
    features = CATALOGUE_FEATURES
    if label_column is not None:
        features = Features({**CATALOGUE_FEATURES, "label": Value("string")})
    return _to_dataset(valid, features)


def _table_item(
    data: dict[str, list],
    index: int,
    source: str,
    id_column: str,
    title_column: str,
    category_columns: Sequence[str],
    separator: str | None,
    description_column: str | None,
    brand_column: str | None,
    label_column: str | None,
    seen: set[str],
) -> dict[str, Any]:
    item_id = _text(data[id_column][index])
    if item_id is not None and item_id in seen:
        raise InvalidRecordError(source, index, id_column, f"duplicate item ID {item_id!r}")
    category: list[str] = []
    for column in category_columns:
        value = _text(data[column][index])
        if value is not None:
            parts = value.split(separator) if separator else [value]
            category += [p.strip() for p in parts if p.strip()]
    record = _catalogue_record(
        item_id,
        _text(data[title_column][index]),
        category,
        brand=_text(data[brand_column][index]) if brand_column else None,
        description=_text(data[description_column][index]) if description_column else None,
    )
    if item_id is None:
        raise InvalidRecordError(source, index, id_column, "missing item ID")
    if record["title"] is None:
        raise InvalidRecordError(source, index, title_column, "missing title")
    if label_column is not None:
        label = _text(data[label_column][index])
        if label is None:
            raise InvalidRecordError(source, index, label_column, "missing label")
        record["label"] = label
    return record


# ------------------------------------------------------------------------------------------------ Home Depot

HOMEDEPOT_FILE = "search_relevance.csv.gz"
_HOMEDEPOT_COLUMNS = ("id", "product_uid", "product_title", "search_term", "relevance")
HOMEDEPOT_COUNTS: dict[str, int] = {"rows": 74_067, "products": 54_667, "search_terms": 11_795}
"""What ``../shared/data/homedepot/README.md`` says the full file holds (the tests check the loader against it)."""
HOMEDEPOT_RELEVANT_GRADE = 2.5
"""Products graded at least this (the mean of the raters' 1-3 grades) are *relevant* for MRR and Recall."""
HOMEDEPOT_FEATURES = Features(
    {
        **SESSION_FEATURES,
        "search_term": Value("string"),
        "item_ids": List(Value("string")),
        "relevance": List(Value("float64")),
    }
)
"""A Home Depot search term: a one-query session in :data:`SESSION_FEATURES` plus its judged products and their
grades (aligned lists)."""


@dataclass
class HomeDepotSplits:
    """Search terms split into train / validation / test (see :func:`load_homedepot`) and the whole catalogue."""

    train: Dataset
    validation: Dataset
    test: Dataset
    catalogue: Dataset
    """Every product of the file (54,667 for the full file): the candidate pool every term ranks."""
    statistics: dict[str, int]
    """``rows``, ``products``, ``search_terms`` (compare with :data:`HOMEDEPOT_COUNTS`), ``relevant_pairs``
    (graded >= 2.5), ``title_variants`` (products whose rows give more than one title: the first is kept) and the
    size of each split."""


def _homedepot_row(row: dict[str, str] | list[str], source: str, line: int) -> tuple[str, str, str, float]:
    """``(product_uid, title, search_term, grade)`` of one row; :class:`InvalidRecordError` names the bad field."""
    if isinstance(row, list):
        raise InvalidRecordError(
            source,
            line,
            "<columns>",
            f"line {line}: expected {len(_HOMEDEPOT_COLUMNS)} columns, got {len(row)}",
        )
    values = {}
    for name in ("product_uid", "product_title", "search_term"):
        values[name] = row[name].strip()
        if not values[name]:
            raise InvalidRecordError(source, line, name, f"line {line}: missing")
    try:
        grade = float(row["relevance"])
    except ValueError:
        raise InvalidRecordError(
            source, line, "relevance", f"line {line}: not a number: {row['relevance']!r}"
        ) from None
    if not 1.0 <= grade <= 3.0:  # also rejects nan
        raise InvalidRecordError(
            source, line, "relevance", f"line {line}: grade {row['relevance']!r} outside [1, 3]"
        )
    return values["product_uid"], values["product_title"], values["search_term"], grade


def _split_terms(
    terms: list[str], validation_fraction: float, test_fraction: float, seed: int
) -> dict[str, str]:
    """term -> ``"train"`` / ``"validation"`` / ``"test"``: a seeded shuffle of the sorted terms, cut in three."""
    for name, value in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
    if validation_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"validation_fraction + test_fraction must be < 1 (no training terms left), got "
            f"{validation_fraction} + {test_fraction}"
        )
    order = sorted(terms)
    random.Random(seed).shuffle(order)
    n_test, n_val = round(test_fraction * len(order)), round(validation_fraction * len(order))
    side = {t: "test" for t in order[:n_test]}
    side.update({t: "validation" for t in order[n_test : n_test + n_val]})
    side.update({t: "train" for t in order[n_test + n_val :]})
    return side


def load_homedepot(
    path: PathLike,
    *,
    validation_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    on_error: ErrorMode = "raise",
    report: ValidationReport | None = None,
) -> HomeDepotSplits:
    """Product search on real queries: Home Depot search terms, product titles and human relevance grades.

    Reads ``search_relevance.csv.gz`` (``id, product_uid, product_title, search_term, relevance``; ``path`` is
    the file or its folder). Every distinct search term (surrounding spaces stripped, otherwise as typed: typos
    and case kept) is one row: a **one-query session** in the package schema, ``{"session_id", "events":
    [{"action": "search", "subject": "keyword_query", "query": term, ...}]}``, so every text model takes it as
    it takes any session, plus ``search_term``, ``item_ids`` (the products judged for it, in file order) and
    ``relevance`` (their grades, the mean of several raters' 1-3 grades; aligned with ``item_ids``). Session IDs
    are ``"hd-<n>"``, numbered by the term's first line. Unjudged products are not in a row: ranked against the
    whole catalogue they count as grade 1 (not relevant), the data's own floor.

    The terms are split, never the rows, so no term is on two sides: a seeded shuffle (``seed``) of the sorted
    terms gives ``test_fraction`` of them to the test split, ``validation_fraction`` to the validation split
    and the rest to training (by default 60 / 20 / 20 %: 7,077 / 2,359 / 2,359 terms of the full file). The
    catalogue is every product of the file (title only; category ``["unknown"]``, the data has none): the
    candidate pool that every term of every split ranks. Titles keep the file's encoding damage (e.g.
    ``30å¡`` for ``30°`` in 278 titles): it is real text. 15 products appear with two slightly different titles
    (the retailer edited them between judgements); the catalogue keeps the first.

    Metrics for this task: :func:`session_transformers.metrics.graded_ranking_metrics` (NDCG@K with gain
    ``grade - 1``, MRR@K and Recall@K over products graded >= :data:`HOMEDEPOT_RELEVANT_GRADE`).

    Raises:
        InvalidRecordError: a row with a wrong column count, a missing product, title or term, a grade that is
            not a number in [1, 3], or a second judgement of the same (term, product) pair; the index is the
            file's line number. With ``on_error="skip"`` such rows are dropped and counted in ``report``.

    Returns:
        :class:`HomeDepotSplits`: ``train`` / ``validation`` / ``test`` in :data:`HOMEDEPOT_FEATURES`, the
        ``catalogue`` in :data:`CATALOGUE_FEATURES` and ``statistics`` (compare with :data:`HOMEDEPOT_COUNTS`).
    """
    _check_mode(on_error)
    report = report if report is not None else ValidationReport()
    path = _resolve(path, HOMEDEPOT_FILE)
    source = str(path)
    titles: dict[str, str] = {}
    variants: set[str] = set()
    judged: dict[str, dict[str, tuple[float, int]]] = {}  # term -> product -> (grade, line)
    rows = 0
    for line, row in _csv_rows(path, _HOMEDEPOT_COLUMNS):
        report.seen += 1
        try:
            uid, title, term, grade = _homedepot_row(row, source, line)
            first = judged.get(term, {}).get(uid)
            if first is not None:
                raise InvalidRecordError(
                    source,
                    line,
                    "product_uid",
                    f"line {line}: product {uid!r} judged a second time for search term {term!r} (first on "
                    f"line {first[1]})",
                )
        except InvalidRecordError as err:
            _fail(err, on_error, report)
            continue
        rows += 1
        if uid not in titles:
            titles[uid] = title
        elif titles[uid] != title:
            variants.add(uid)
        judged.setdefault(term, {})[uid] = (grade, line)
    side = _split_terms(list(judged), validation_fraction, test_fraction, seed)
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "validation": [], "test": []}
    for n, (term, products) in enumerate(judged.items()):
        splits[side[term]].append(
            {
                "session_id": f"hd-{n:05d}",
                "events": [query_event("search", term)],
                "search_term": term,
                "item_ids": list(products),
                "relevance": [grade for grade, _ in products.values()],
            }
        )
    splits = {
        name: _valid_sessions(records, f"{path} ({name} terms)", on_error, report, item_ids=None)
        for name, records in splits.items()
    }
    catalogue = _valid_items(
        (_catalogue_record(uid, title, None) for uid, title in titles.items()),
        f"{path} (catalogue)",
        on_error,
        report,
    )
    statistics = {
        "rows": rows,
        "products": len(titles),
        "search_terms": len(judged),
        "relevant_pairs": sum(
            g >= HOMEDEPOT_RELEVANT_GRADE for products in judged.values() for g, _ in products.values()
        ),
        "title_variants": len(variants),
        **{f"{name}_terms": len(records) for name, records in splits.items()},
    }
    return HomeDepotSplits(
        **{name: _to_dataset(records, HOMEDEPOT_FEATURES) for name, records in splits.items()},
        catalogue=_to_dataset(catalogue, CATALOGUE_FEATURES),
        statistics=statistics,
    )


__all__ = [
    "CANCEL_ACTION",
    "HOMEDEPOT_COUNTS",
    "HOMEDEPOT_FEATURES",
    "HOMEDEPOT_FILE",
    "HOMEDEPOT_RELEVANT_GRADE",
    "HomeDepotSplits",
    "NEXT_ITEM_FEATURES",
    "PRICE_BANDS",
    "REES46_ACTIONS",
    "UNKNOWN_CATEGORY",
    "instacart_product_pairs",
    "load_catalogue_table",
    "load_homedepot",
    "load_instacart_baskets",
    "load_instacart_catalogue",
    "load_next_item_dataset",
    "NextItemSplits",
    "load_next_item_sessions",
    "load_next_item_splits",
    "load_online_retail",
    "load_rees46",
    "next_item_catalogue_ids",
    "next_item_samples",
    "next_item_statistics",
    "price_band",
]
