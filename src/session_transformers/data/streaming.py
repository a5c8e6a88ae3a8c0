"""Session corpora larger than memory: a folder of shard files, held-out files, next-item samples made lazily.

A **corpus** is a folder of session files in the package schema (:data:`~session_transformers.data.schema.SESSION_FEATURES`)
beside its catalogue, e.g. the synthetic store written with
``python -m session_transformers.data.synthetic --out DIR --num-shards 8``::

    DIR/catalogue.parquet                  the catalogue: its item IDs are the vocabulary
    DIR/sessions-00000-of-00008.parquet    the sessions, in shards (contiguous ranges of sessions)
    ...
    DIR/sessions-00007-of-00008.parquet

The session files are the ``sessions*.parquet`` / ``sessions*.jsonl`` / ``sessions*.jsonl.gz`` files of the folder,
in name order (one ``sessions.parquet`` is a corpus of one file). A set of ``sessions-XXXXX-of-NNNNN`` shards must
be complete and alone, so that a stale shard of an earlier write is never read.

**Held-out splits** (:func:`split_corpus`) are whole files where there are enough, so that the training stream never
reads a held-out session:

* 3 files or more: the **last** file is the test split, the one **before it** the validation split, the others are
  the training split (``validation_fraction`` and ``eval_fraction`` are not used).
* 2 files: the last file is the test split; the last ``validation_fraction`` of the first file's sessions are the
  validation split (none when it is 0) and the rest of the first file is the training split.
* 1 file: split by rows like the synthetic source: the last ``eval_fraction`` of its sessions are the test split,
  the last ``validation_fraction`` of the others the validation split, the head the training split.

Each split is a list of **pieces** ``(path, first row, end row or None)``. Held-out pieces are small and are loaded
in memory (:func:`next_item_dataset`); the training pieces are streamed by :func:`stream_sessions`, one ``datasets``
shard per piece, so ``split_dataset_by_node`` gives each process whole files (when the number of training files is a
multiple of the number of processes) and DataLoader workers divide a process's files between them.
:func:`stream_next_item_samples` expands the stream into next-item samples (every prefix of a session's items with
its next item) with ``IterableDataset.map(batched=True)``, in the order :func:`next_item_dataset` gives in memory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from datasets import Dataset, IterableDataset
from datasets.distributed import split_dataset_by_node
from torch.utils.data import DataLoader

from .io import iter_records
from .loaders import NEXT_ITEM_FEATURES, next_item_samples
from .schema import SESSION_FEATURES, SchemaSpec, validate_session

PathLike = str | os.PathLike

Piece = tuple[str, int, int | None]
"""Part of a session file: ``(path, first row, end row)`` (rows are 0-based records; ``None``: to the end)."""

SESSION_SUFFIXES = (".parquet", ".jsonl", ".jsonl.gz")
"""File name endings of session and catalogue files."""

_SHARD = re.compile(
    r"^(?P<stem>.+)-(?P<index>\d{5})-of-(?P<total>\d{5})(?P<suffix>\.parquet|\.jsonl|\.jsonl\.gz)$"
)


def shard_name(stem: str, index: int, total: int, fmt: str) -> str:
    """``<stem>-<index>-of-<total>.<fmt>`` with 5-digit numbers, the Hugging Face shard naming."""
    return f"{stem}-{index:05d}-of-{total:05d}.{fmt}"


def parse_shard_name(name: str) -> tuple[str, int, int, str] | None:
    """``(stem, index, total, suffix)`` of a shard file name, or ``None`` when the name is not one."""
    m = _SHARD.match(name)
    return (m["stem"], int(m["index"]), int(m["total"]), m["suffix"]) if m else None


def shard_bounds(n: int, num_shards: int) -> list[tuple[int, int]]:
    """``num_shards`` contiguous ``[start, stop)`` ranges covering ``range(n)``; their sizes differ by at most one."""
    if num_shards < 1:
        raise ValueError(f"num_shards={num_shards} must be >= 1")
    q, r = divmod(n, num_shards)
    bounds, start = [], 0
    for i in range(num_shards):
        stop = start + q + (1 if i < r else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def _suffix(path: Path) -> str | None:
    return next((s for s in SESSION_SUFFIXES if path.name.endswith(s)), None)


def session_files(folder: PathLike) -> list[Path]:
    """The corpus's session files, in name order (see the module docstring); raises when there are none or a set of
    shards is incomplete or mixed with other session files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (a corpus is a folder of session files)")
    files = sorted(p for p in folder.glob("sessions*") if p.is_file() and _suffix(p) is not None)
    if not files:
        raise FileNotFoundError(
            f"{folder}: no session files (sessions*.parquet, sessions*.jsonl or sessions*.jsonl.gz); write one with "
            "python -m session_transformers.data.synthetic --out DIR --num-shards N"
        )
    shards = {p: parse_shard_name(p.name) for p in files}
    if any(shards.values()):
        others = [p.name for p, s in shards.items() if s is None]
        kinds = {(s[0], s[2], s[3]) for s in shards.values() if s is not None}
        if others or len(kinds) > 1:
            raise ValueError(
                f"{folder}: shard files mixed with other session files ({[p.name for p in files][:6]}): "
                "remove the stale ones (the synthetic CLI removes them when it rewrites a folder)"
            )
        (_, total, _), indices = kinds.pop(), sorted(s[1] for s in shards.values() if s is not None)
        if indices != list(range(total)):
            missing = sorted(set(range(total)) - set(indices))
            raise ValueError(f"{folder}: incomplete set of {total} shards: missing indices {missing[:10]}")
    if len({_suffix(p) for p in files}) > 1:
        raise ValueError(f"{folder}: session files of several formats: {[p.name for p in files][:6]}")
    return files


def catalogue_path(folder: PathLike, prefer: str | None = None) -> Path | None:
    """``catalogue.parquet`` / ``.jsonl`` / ``.jsonl.gz`` in ``folder`` (``prefer``'s format first), or ``None``."""
    order = sorted(SESSION_SUFFIXES, key=lambda s: s != prefer)
    return next(
        (Path(folder) / f"catalogue{s}" for s in order if (Path(folder) / f"catalogue{s}").is_file()), None
    )


def catalogue_item_ids(path: PathLike) -> list[str]:
    """The item IDs of a catalogue file, in file order (Parquet: only the ``item_id`` column is read)."""
    path = Path(path)
    if path.name.endswith(".parquet"):
        ids = pq.read_table(path, columns=["item_id"]).column("item_id").to_pylist()
    else:
        ids = [rec.get("item_id") for rec in iter_records(path)]
    bad = next((i for i, v in enumerate(ids) if not isinstance(v, str) or not v), None)
    if bad is not None:
        raise ValueError(f"{path}: record {bad}: field 'item_id': missing or not a non-empty string")
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: {len(ids) - len(set(ids))} duplicate item IDs")
    return ids


def num_records(path: PathLike) -> int:
    """Records in a session file: from the Parquet footer (no data read), or by reading a JSONL file."""
    path = Path(path)
    if path.name.endswith(".parquet"):
        return pq.ParquetFile(path).metadata.num_rows
    return sum(1 for _ in iter_records(path))


@dataclass
class CorpusSplits:
    """The pieces of each split of a corpus (see :func:`split_corpus`)."""

    files: list[Path]
    train: list[Piece]
    validation: list[Piece]
    test: list[Piece]
    rule: str
    """How the held-out splits were chosen, in words."""
    train_sessions: int | None = None
    """Sessions of the training pieces when known without reading them (Parquet footers), else ``None``."""
    extra: dict[str, Any] = field(default_factory=dict)

    def catalogue_path(self) -> Path | None:
        """The corpus folder's catalogue file, in its session files' format first (:func:`catalogue_path`)."""
        return catalogue_path(self.files[0].parent, prefer=_suffix(self.files[0]))


def _rows(pieces: Sequence[Piece]) -> int | None:
    total = 0
    for path, start, stop in pieces:
        if stop is None:
            if not path.endswith(".parquet"):
                return None
            stop = num_records(path)
        total += stop - start
    return total


def split_corpus(
    folder: PathLike, *, validation_fraction: float = 0.1, eval_fraction: float = 0.1
) -> CorpusSplits:
    """Train / validation / test pieces of a corpus: whole files where there are 3 or more, rows of the files
    otherwise (the rule is the module docstring's)."""
    files = session_files(folder)
    names = [str(p) for p in files]
    if len(files) >= 3:
        return CorpusSplits(
            files,
            [(p, 0, None) for p in names[:-2]],
            [(names[-2], 0, None)],
            [(names[-1], 0, None)],
            f"{len(files)} session files: the last is the test split, the one before it the validation split",
            train_sessions=_rows([(p, 0, None) for p in names[:-2]]),
        )
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction={validation_fraction} must be in [0, 1)")
    head, n = names[0], num_records(files[0])
    if len(files) == 2:
        n_test, test = None, [(names[1], 0, None)]
        rule = "2 session files: the second is the test split"
    else:
        if not 0.0 < eval_fraction < 1.0:
            raise ValueError(f"eval_fraction={eval_fraction} must be in (0, 1)")
        n_test = max(1, int(n * eval_fraction))
        test = [(head, n - n_test, n)]
        rule = f"1 session file: its last {n_test} sessions ({eval_fraction:g}) are the test split"
    rest = n - (n_test or 0)
    n_val = max(1, int(rest * validation_fraction)) if validation_fraction > 0 else 0
    if rest - n_val < 1:
        raise ValueError(f"{folder}: {n} sessions are too few to hold out validation and test sessions")
    validation = [(head, rest - n_val, rest)] if n_val else []
    if n_val:
        rule += f", the last {n_val} of the first file's other sessions ({validation_fraction:g}) the validation split"
    return CorpusSplits(files, [(head, 0, rest - n_val)], validation, test, rule, train_sessions=rest - n_val)


def _piece_item_ids(path: str, start: int, stop: int | None) -> set[str]:
    """The distinct item IDs of a piece's sessions (Parquet: only the ``events`` column, flattened by Arrow)."""
    if path.endswith(".parquet"):  # batch by batch: a large file is never read whole
        import pyarrow.compute as pc

        out: set[str] = set()
        row = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=65536, columns=["events"]):
            lo, hi = max(start - row, 0), len(batch) if stop is None else min(stop - row, len(batch))
            row += len(batch)
            if hi <= lo:
                continue
            column = batch.column(0).slice(lo, hi - lo)
            items = pc.struct_field(pc.list_flatten(column), "item_id")
            out.update(i for i in pc.unique(items).to_pylist() if i is not None)
            if stop is not None and row >= stop:
                break
        return out
    out = set()
    for rec in islice(iter_records(path), start, stop):
        for ev in rec.get("events") or []:
            if isinstance(ev, dict) and isinstance(ev.get("item_id"), str):
                out.add(ev["item_id"])
    return out


def catalogued_item_ids(pieces: Sequence[Piece], catalogue_ids: set[str] | frozenset[str]) -> set[str]:
    """The distinct item IDs of ``pieces``' sessions, every one of which must be in the catalogue: the first item
    missing from it raises :class:`~session_transformers.data.schema.InvalidRecordError` naming the file, the
    session's row and the event, with how many distinct IDs of these sessions are missing."""
    from .schema import InvalidRecordError

    seen: set[str] = set()
    for path, start, stop in pieces:
        items = _piece_item_ids(path, start, stop)
        missing = items - catalogue_ids
        if missing:
            for i, rec in islice(enumerate(iter_records(path)), start, stop):
                for j, ev in enumerate(rec.get("events") or []):
                    if isinstance(ev, dict) and ev.get("item_id") in missing:
                        raise InvalidRecordError(
                            path,
                            i,
                            f"events[{j}].item_id",
                            f"{ev['item_id']!r} is not in the catalogue: {len(missing)} distinct item IDs of this "
                            f"file's sessions are missing from it (e.g. {sorted(missing)[:3]}); add them to the "
                            "catalogue (item_id is its one required field for an ID model such as TAGNN++)",
                        )
        seen |= items
    return seen


def iter_sessions(pieces: Sequence[Piece], spec: SchemaSpec | None = None) -> Iterator[dict[str, Any]]:
    """The session records of ``pieces`` in order, each validated (an error names the file and the row).

    A module-level generator so that ``datasets`` can shard it: its ``pieces`` list is split between processes and
    DataLoader workers.
    """
    spec = spec or SchemaSpec()
    for path, start, stop in pieces:
        for i, rec in islice(enumerate(iter_records(path)), start, stop):
            validate_session(rec, i, source=path, spec=spec)
            yield rec


def stream_sessions(pieces: Sequence[Piece], spec: SchemaSpec | None = None) -> IterableDataset:
    """The sessions of ``pieces`` as an ``IterableDataset`` with one shard per piece; nothing is read until it is
    iterated."""
    if not pieces:
        raise ValueError("no session files to stream")
    return IterableDataset.from_generator(
        iter_sessions,
        features=SESSION_FEATURES,
        gen_kwargs={"pieces": [tuple(p) for p in pieces], "spec": spec},
    )


def expand_next_item_batch(batch: dict[str, list]) -> dict[str, list]:
    """Batched ``map`` function: sessions -> next-item samples ``(session_id, item_ids, target)``.

    A session's item events ``[i1..in]`` give ``([i1..ik], i(k+1))`` for ``k = 1..n-1`` (sessions with fewer than two
    items give none), in the order of :func:`~session_transformers.data.loaders.next_item_samples`.
    """
    out: dict[str, list] = {"session_id": [], "item_ids": [], "target": []}
    for sid, events in zip(batch["session_id"], batch["events"]):
        items = [ev["item_id"] for ev in events if ev["subject"] == "item"]
        for k in range(1, len(items)):
            out["session_id"].append(sid)
            out["item_ids"].append(items[:k])
            out["target"].append(items[k])
    return out


def stream_next_item_samples(sessions: IterableDataset, batch_size: int = 256) -> IterableDataset:
    """The next-item samples of a session stream, made lazily ``batch_size`` sessions at a time."""
    return sessions.map(
        expand_next_item_batch,
        batched=True,
        batch_size=batch_size,
        remove_columns=list(SESSION_FEATURES),
        features=NEXT_ITEM_FEATURES,
    )


def next_item_dataset(pieces: Sequence[Piece], spec: SchemaSpec | None = None) -> Dataset:
    """The next-item samples of ``pieces`` in memory: the same samples, in the same order, as the stream."""
    ids, seqs = [], []
    for rec in iter_sessions(pieces, spec):
        ids.append(rec["session_id"])
        seqs.append([ev["item_id"] for ev in rec["events"] if ev["subject"] == "item"])
    return next_item_samples(seqs, ids)


def shuffled_split(
    dataset: IterableDataset, *, rank: int, world_size: int, seed: int, buffer_size: int
) -> IterableDataset:
    """This process's part of a training stream, shuffled.

    ``split_dataset_by_node`` gives each process whole shards when their number is a multiple of ``world_size``
    (otherwise every process reads everything and keeps one sample in ``world_size``); ``shuffle`` shuffles the
    order of the shards and then the samples through a buffer of ``buffer_size`` (0 or 1: no shuffling). The order
    is a function of ``seed`` and of the epoch set with ``set_epoch``, the same on every process.
    """
    ds = split_dataset_by_node(dataset, rank=rank, world_size=world_size)
    return ds.shuffle(seed=seed, buffer_size=buffer_size) if buffer_size > 1 else ds


def stream_loader(
    dataset: IterableDataset, collate_fn: Callable, *, batch_size: int, num_workers: int = 0, seed: int = 0
) -> DataLoader:
    """A DataLoader over a stream (``datasets`` divides the shards between the workers). Its own generator draws the
    workers' base seed, never the global RNG: re-seed it per epoch (``loader.generator.manual_seed``)."""
    import torch

    return DataLoader(
        dataset,
        batch_size=batch_size,
        collate_fn=collate_fn,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),
        drop_last=False,
    )


__all__ = [
    "CorpusSplits",
    "Piece",
    "catalogue_item_ids",
    "catalogue_path",
    "catalogued_item_ids",
    "expand_next_item_batch",
    "iter_sessions",
    "next_item_dataset",
    "num_records",
    "parse_shard_name",
    "session_files",
    "shard_bounds",
    "shard_name",
    "shuffled_split",
    "split_corpus",
    "stream_loader",
    "stream_next_item_samples",
    "stream_sessions",
]
