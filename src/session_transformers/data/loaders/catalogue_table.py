"""A catalogue from a CSV / Parquet table of your own."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from datasets import Dataset, Features, Value

from ..schema import (
    CATALOGUE_FEATURES,
    ErrorMode,
    InvalidRecordError,
    ValidationReport,
    validate_item,
)
from ._common import (
    PathLike,
    _catalogue_record,
    _check_mode,
    _fail,
    _to_dataset,
)


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
