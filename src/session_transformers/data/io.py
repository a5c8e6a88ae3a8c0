"""Read and write sessions and catalogues as JSONL or Parquet, in memory or streaming, validated on the way in.

Every reader goes through the schema validators, so a malformed record raises an
:class:`~session_transformers.data.schema.InvalidRecordError` naming the file, the record index (0-based
line or row) and the field, before any model sees it. ``on_error="skip"`` drops bad records and counts
them in a :class:`~session_transformers.data.schema.ValidationReport` instead.

Writers are atomic: they write to a temporary file beside the target and rename it, so an interrupted
write never leaves a half-written file under the final name.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Dataset, Features, IterableDataset

from .schema import (
    CATALOGUE_FEATURES,
    SESSION_FEATURES,
    ErrorMode,
    InvalidRecordError,
    SchemaSpec,
    ValidationReport,
    iter_valid,
    validate_item,
    validate_session,
)

PathLike = str | os.PathLike


def _format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".jsonl", ".json", ".jsonl.gz")):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    raise ValueError(f"{path}: unknown file format (expected .jsonl or .parquet)")


def iter_records(path: PathLike, *, errors: str = "raise") -> Iterator[dict[str, Any] | InvalidRecordError]:
    """Yield raw records from a JSONL or Parquet file, one at a time (Parquet is read batch by batch).

    A line that is not UTF-8 or not JSON, and a Parquet file that cannot be read (truncated, not Parquet), raise
    :class:`InvalidRecordError` naming the file and the record (``errors="raise"``), or are yielded as that error
    in place of the record (``errors="yield"``: the loaders' skip mode counts them and goes on; a corrupt
    Parquet file then ends after its last readable batch).
    """
    path = Path(path)

    def bad(index: int, field: str, reason: str):
        err = InvalidRecordError(str(path), index, field, reason)
        if errors == "raise":
            raise err
        return err

    if _format(path) == "jsonl":
        opener = __import__("gzip").open if path.name.endswith(".gz") else open
        with opener(path, "rb") as fh:
            i = -1
            while True:
                try:
                    raw = next(fh)
                except StopIteration:
                    break
                except (EOFError, OSError) as err:  # a truncated or corrupt gzip stream
                    yield bad(i + 1, "<gzip>", f"unreadable compressed data ({err})")
                    break
                i += 1
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    yield bad(
                        i,
                        "<utf-8>",
                        f"not valid UTF-8 (byte {err.start}: {raw[err.start : err.start + 1]!r})",
                    )
                    continue
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    yield bad(i, "<json>", f"not valid JSON ({err.msg}; a truncated line?)")
                    continue
                if b"\\ud" in raw.lower():  # JSON escapes may encode lone surrogates, which are not text
                    try:
                        json.dumps(record, ensure_ascii=False).encode("utf-8")
                    except UnicodeEncodeError:
                        yield bad(
                            i, "<utf-8>", "contains a lone surrogate escape (\\ud800-\\udfff): not text"
                        )
                        continue
                yield record
        return
    row = 0
    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=4096):
            rows = batch.to_pylist()
            yield from rows
            row += len(rows)
    except (pa.ArrowException, OSError) as err:
        yield bad(row, "<parquet>", f"unreadable Parquet data after {row} rows (truncated or corrupt: {err})")


def _validated(paths: Sequence[PathLike], validate, on_error: ErrorMode, report, unique_key: str, **kwargs):
    seen: dict = {}  # ID -> (file, record) of its first occurrence, across every file of the load
    for path in paths:
        yield from iter_valid(
            iter_records(path, errors="yield"),
            validate,
            on_error=on_error,
            report=report,
            source=str(path),
            unique_key=unique_key,
            seen=seen,
            **kwargs,
        )


def _gen(paths, kind, on_error, spec, item_ids, report=None):
    # A module-level generator so that ``datasets`` can fingerprint and shard it (one shard per file).
    if kind == "sessions":
        yield from _validated(
            paths, validate_session, on_error, report, "session_id", spec=spec, item_ids=item_ids
        )
    else:
        yield from _validated(paths, validate_item, on_error, report, "item_id", spec=spec)


def _load(paths, kind, features, *, streaming, on_error, spec, item_ids, report):
    paths = [str(p) for p in ([paths] if isinstance(paths, str | os.PathLike) else paths)]
    for p in paths:
        if not Path(p).exists():
            raise FileNotFoundError(f"{p}: no such file")
    spec = spec or SchemaSpec()
    if streaming:
        # Each file is a shard: ``split_dataset_by_node`` / DataLoader workers divide files between processes.
        return IterableDataset.from_generator(
            _gen,
            features=features,
            gen_kwargs={
                "paths": paths,
                "kind": kind,
                "on_error": on_error,
                "spec": spec,
                "item_ids": item_ids,
            },
        )
    report = report if report is not None else ValidationReport()
    records = list(_gen(paths, kind, on_error, spec, item_ids, report))
    if kind == "catalogue":  # optional fields may be absent from a record (an ID-only catalogue): None
        records = [{name: rec.get(name) for name in features} for rec in records]
    if not records:  # every record skipped: an empty dataset with the schema
        return Dataset.from_dict({name: [] for name in features}, features=features)
    return Dataset.from_list(records, features=features)


def load_sessions(
    paths: PathLike | Sequence[PathLike],
    *,
    streaming: bool = False,
    on_error: ErrorMode = "raise",
    spec: SchemaSpec | None = None,
    item_ids: Any = None,
    report: ValidationReport | None = None,
    features: Features = SESSION_FEATURES,
) -> Dataset | IterableDataset:
    """Load sessions from JSONL or Parquet files into a ``datasets.Dataset`` with :data:`SESSION_FEATURES`.

    Args:
        paths: one file or several (several files are shards when streaming).
        streaming: return an ``IterableDataset`` that reads lazily; validation then happens as it is iterated.
        on_error: ``"raise"`` on the first bad record, or ``"skip"`` bad records and count them in ``report``.
        spec: action vocabulary and image size to validate against.
        item_ids: valid catalogue IDs (e.g. a ``set``); when given, unknown item IDs are errors.
        report: a :class:`ValidationReport` to fill (in-memory loading only).
        features: the schema to load into: :data:`SESSION_FEATURES` or a superset with extra columns (e.g.
            the synthetic store's labels); the session fields are validated either way.
    """
    return _load(
        paths,
        "sessions",
        features,
        streaming=streaming,
        on_error=on_error,
        spec=spec,
        item_ids=item_ids,
        report=report,
    )


def load_catalogue(
    paths: PathLike | Sequence[PathLike],
    *,
    streaming: bool = False,
    on_error: ErrorMode = "raise",
    spec: SchemaSpec | None = None,
    report: ValidationReport | None = None,
    features: Features = CATALOGUE_FEATURES,
) -> Dataset | IterableDataset:
    """Load a catalogue from JSONL or Parquet into a ``datasets.Dataset`` with :data:`CATALOGUE_FEATURES`.

    ``features`` may be a superset of :data:`CATALOGUE_FEATURES` with extra columns (e.g. product flags).
    """
    return _load(
        paths,
        "catalogue",
        features,
        streaming=streaming,
        on_error=on_error,
        spec=spec,
        item_ids=None,
        report=report,
    )


def _atomic_target(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def write_records(
    records: Iterable[Mapping[str, Any]], path: PathLike, features: Features, *, batch_size: int = 2048
) -> int:
    """Write records to JSONL or Parquet atomically, streaming in batches. Returns the number written."""
    path = Path(path)
    fmt = _format(path)
    tmp = _atomic_target(path)
    n = 0
    try:
        if fmt == "jsonl":
            with open(tmp, "w", encoding="utf-8") as fh:
                for rec in records:
                    fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                    n += 1
        else:
            schema = features.arrow_schema
            with pq.ParquetWriter(tmp, schema) as writer:
                buf: list[Mapping[str, Any]] = []
                for rec in records:
                    buf.append(rec)
                    if len(buf) >= batch_size:
                        writer.write_table(pa.Table.from_pylist(buf, schema=schema))
                        n += len(buf)
                        buf = []
                if buf:
                    writer.write_table(pa.Table.from_pylist(buf, schema=schema))
                    n += len(buf)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return n


def _checked(records: Iterable[Mapping[str, Any]], validate, path: PathLike, spec: SchemaSpec | None):
    """The records, each validated as it is written: a writer never writes what the readers would refuse."""
    for i, rec in enumerate(records):
        validate(rec, i, source=str(path), spec=spec)
        yield rec


def write_sessions(
    records: Iterable[Mapping[str, Any]], path: PathLike, features: Features = SESSION_FEATURES
) -> int:
    """Write session records (``dict`` s or a ``datasets.Dataset``) to ``.jsonl`` or ``.parquet`` (as they are: the
    readers validate them, lazily when streaming)."""
    return write_records(records, path, features)


def write_catalogue(
    records: Iterable[Mapping[str, Any]], path: PathLike, *, spec: SchemaSpec | None = None
) -> int:
    """Write catalogue records to ``.jsonl`` or ``.parquet``, each validated as :func:`load_catalogue` will read
    it: by default a record needs ``item_id``, a non-empty ``title`` and ``category`` (what the text models read);
    ``spec=SchemaSpec(require_text=False)`` writes the ID-only catalogue of a model that reads no text (TAGNN++:
    ``{"item_id": ...}`` per item). A bad record raises :class:`InvalidRecordError` naming it, and nothing is left
    under ``path``."""
    return write_records(_checked(records, validate_item, path, spec), path, CATALOGUE_FEATURES)


__all__ = [
    "iter_records",
    "load_catalogue",
    "load_sessions",
    "write_catalogue",
    "write_records",
    "write_sessions",
]
