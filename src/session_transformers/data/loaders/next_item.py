"""SR-GNN-format next-item data (Diginetica, Yoochoose): ``train_sessions.txt`` and ``test.tsv``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
from datasets import Dataset

from ..schema import (
    SESSION_FEATURES,
    ErrorMode,
    InvalidRecordError,
    ValidationReport,
    item_event,
)
from ._common import (
    NEXT_ITEM_FEATURES,
    PathLike,
    _check_mode,
    _fail,
    _resolve,
    _table_dataset,
    _to_dataset,
    _valid_sessions,
)

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
