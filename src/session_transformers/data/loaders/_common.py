"""Shared helpers of the loaders: file resolution, validation modes, CSV reading, datasets conversion."""

from __future__ import annotations

import csv
import gzip
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from datasets import Dataset, DatasetInfo, Features, List, Value
from datasets.table import InMemoryTable

from ..schema import (
    ErrorMode,
    InvalidRecordError,
    SchemaSpec,
    ValidationReport,
    iter_valid,
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
