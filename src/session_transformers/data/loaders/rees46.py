"""REES46 e-commerce event logs as sessions."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from datasets import Dataset, Features, Value

from ..schema import (
    CATALOGUE_FEATURES,
    SESSION_FEATURES,
    ErrorMode,
    InvalidRecordError,
    ValidationReport,
    item_event,
)
from ._common import (
    PathLike,
    _catalogue_record,
    _check_mode,
    _csv_rows,
    _ends_with_newline,
    _fail,
    _resolve,
    _to_dataset,
    _valid_items,
    _valid_sessions,
    logger,
)

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
