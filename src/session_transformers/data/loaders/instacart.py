"""Instacart baskets and catalogue."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from datasets import Dataset, Features, Value

from ..schema import (
    CATALOGUE_FEATURES,
    SESSION_FEATURES,
    ErrorMode,
    InvalidRecordError,
    ValidationReport,
    item_event,
    validate_item,
)
from ._common import (
    PathLike,
    _catalogue_record,
    _check_mode,
    _csv_rows,
    _fail,
    _resolve,
    _sibling,
    _to_dataset,
    _valid_sessions,
)


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
