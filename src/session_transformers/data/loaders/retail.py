"""UCI Online Retail invoices as sessions."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datasets import Dataset, Features, List, Value

from ..schema import (
    CATALOGUE_FEATURES,
    DEFAULT_ACTIONS,
    SESSION_FEATURES,
    ErrorMode,
    InvalidRecordError,
    SchemaSpec,
    ValidationReport,
    item_event,
)
from ._common import (
    PathLike,
    _catalogue_record,
    _check_mode,
    _fail,
    _resolve,
    _to_dataset,
    _valid_items,
    _valid_sessions,
)

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
