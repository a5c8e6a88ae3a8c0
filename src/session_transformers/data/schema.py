"""The one session schema shared by every model, loader and collator.

A **session** is an ordered list of events. Every event has an ``action`` from a closed vocabulary, an
optional ``timestamp`` (seconds since the epoch) and exactly one *subject*:

=================  ===========================  ===================================================
``subject``        field that carries it         meaning
=================  ===========================  ===================================================
``item``           ``item_id`` (str)             an ID into the catalogue
``keyword_query``  ``query`` (str)               a typed keyword query
``product_query``  ``query`` (str)               words cut from a product title ("search similar")
``image_query``    ``image`` (list[float])       an image vector ("search by image")
=================  ===========================  ===================================================

The other subject fields of an event are ``None``. The **catalogue** maps item IDs to attributes: title,
description, category path (root first), brand, other named attributes (a list of ``{name, value}``
pairs, since different categories have different attribute names) and an optional image vector.

Both are declared once as :class:`datasets.Features` (:data:`SESSION_FEATURES`, :data:`CATALOGUE_FEATURES`);
:func:`validate_session` and :func:`validate_item` check one record and raise :class:`InvalidRecordError`
naming the source, the record index and the field.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from datasets import Features, List, Value

DEFAULT_ACTIONS: tuple[str, ...] = ("search", "view", "click", "add_to_cart", "purchase")
"""The default closed action vocabulary. Configs name their own; this is what they default to."""

SUBJECTS: tuple[str, ...] = ("item", "keyword_query", "product_query", "image_query")
"""The four kinds of event subject."""

QUERY_SUBJECTS: tuple[str, ...] = ("keyword_query", "product_query")
"""The subjects of text queries (their text is ``query``); ``image_query`` carries a vector instead."""

EVENT_FEATURES = {
    "action": Value("string"),
    "timestamp": Value("float64"),
    "subject": Value("string"),
    "item_id": Value("string"),
    "query": Value("string"),
    "image": List(Value("float32")),
}

SESSION_FEATURES = Features(
    {
        "session_id": Value("string"),
        "events": List(EVENT_FEATURES),
    }
)
"""Schema of a session record: ``{"session_id": str, "events": [event, ...]}``."""

CATALOGUE_FEATURES = Features(
    {
        "item_id": Value("string"),
        "title": Value("string"),
        "description": Value("string"),
        "category": List(Value("string")),
        "brand": Value("string"),
        "attributes": List({"name": Value("string"), "value": Value("string")}),
        "image": List(Value("float32")),
    }
)
"""Schema of a catalogue record. ``description``, ``brand`` and ``image`` may be ``None``."""

ErrorMode = Literal["raise", "skip"]


class InvalidRecordError(ValueError):
    """A record does not follow the schema. Names the source, the record's index and the field."""

    def __init__(self, source: str, index: int, field: str, reason: str):
        self.source, self.index, self.field, self.reason = source, index, field, reason
        super().__init__(f"{source}: record {index}: field '{field}': {reason}")


@dataclass
class SchemaSpec:
    """What a validator checks beyond the field types.

    Args:
        actions: the closed action vocabulary.
        image_dim: required length of every image vector (``None`` accepts any non-empty length).
        require_timestamps: reject events without a timestamp.
        require_text: a catalogue record needs a ``title`` and a ``category`` (the text the text models read:
            CERES, UBM, MUVCOG, Product BYOL). ``False`` for a catalogue of an ID-only model (TAGNN++), whose one
            required field is ``item_id``: ``title`` and ``category`` may then be missing (if present they are
            checked as usual).
    """

    actions: tuple[str, ...] = DEFAULT_ACTIONS
    image_dim: int | None = None
    require_timestamps: bool = False
    require_text: bool = True


@dataclass
class ValidationReport:
    """Counts of records seen and skipped, with the reason of each skip (filled in ``on_error="skip"`` mode)."""

    seen: int = 0
    skipped: int = 0
    reasons: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def add(self, error: InvalidRecordError) -> None:
        self.skipped += 1
        self.reasons[f"{error.field}: {error.reason}"] += 1
        if len(self.examples) < 5:
            self.examples.append(str(error))

    def __str__(self) -> str:
        lines = [f"{self.seen} records read, {self.skipped} skipped"]
        lines += [f"  {n} x {reason}" for reason, n in self.reasons.most_common()]
        return "\n".join(lines)


def _check_image(vec: Any, spec: SchemaSpec, source: str, index: int, name: str) -> None:
    if not isinstance(vec, list | tuple) or len(vec) == 0:
        raise InvalidRecordError(source, index, name, "must be a non-empty list of floats")
    if spec.image_dim is not None and len(vec) != spec.image_dim:
        raise InvalidRecordError(source, index, name, f"has length {len(vec)}, expected {spec.image_dim}")
    for v in vec:
        if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
            raise InvalidRecordError(source, index, name, f"contains a non-finite or non-numeric value {v!r}")


def validate_session(
    record: Mapping[str, Any],
    index: int,
    *,
    source: str = "<sessions>",
    spec: SchemaSpec | None = None,
    item_ids: Any = None,
) -> None:
    """Check one session record against the schema; raise :class:`InvalidRecordError` on the first problem.

    Args:
        record: ``{"session_id": ..., "events": [...]}``.
        index: the record's index in its source (reported in the error).
        source: file name or dataset name (reported in the error).
        spec: action vocabulary and image size.
        item_ids: if given, a container of valid catalogue IDs; every ``item_id`` must be in it.
    """
    spec = spec or SchemaSpec()
    if not isinstance(record, Mapping):
        raise InvalidRecordError(source, index, "<record>", f"must be a mapping, got {type(record).__name__}")
    sid = record.get("session_id")
    if not isinstance(sid, str) or not sid:
        raise InvalidRecordError(source, index, "session_id", "missing or not a non-empty string")
    events = record.get("events")
    if not isinstance(events, list | tuple):
        raise InvalidRecordError(source, index, "events", "missing or not a list")
    if len(events) == 0:
        raise InvalidRecordError(source, index, "events", f"session '{sid}' is empty")
    last_ts = -math.inf
    for j, ev in enumerate(events):
        where = f"events[{j}]"
        if not isinstance(ev, Mapping):
            raise InvalidRecordError(source, index, where, "must be a mapping")
        action = ev.get("action")
        if action not in spec.actions:
            raise InvalidRecordError(
                source,
                index,
                f"{where}.action",
                f"unknown action {action!r}; expected one of {list(spec.actions)}",
            )
        ts = ev.get("timestamp")
        if ts is None:
            if spec.require_timestamps:
                raise InvalidRecordError(source, index, f"{where}.timestamp", "missing")
        elif not isinstance(ts, int | float) or isinstance(ts, bool) or not math.isfinite(ts):
            raise InvalidRecordError(source, index, f"{where}.timestamp", f"not a finite number: {ts!r}")
        elif ts < last_ts:
            raise InvalidRecordError(
                source, index, f"{where}.timestamp", f"goes back in time ({ts} < {last_ts})"
            )
        else:
            last_ts = ts
        subject = ev.get("subject")
        if subject not in SUBJECTS:
            raise InvalidRecordError(
                source,
                index,
                f"{where}.subject",
                f"unknown subject {subject!r}; expected one of {list(SUBJECTS)}",
            )
        item_id, query, image = ev.get("item_id"), ev.get("query"), ev.get("image")
        if subject == "item":
            if not isinstance(item_id, str) or not item_id:
                raise InvalidRecordError(source, index, f"{where}.item_id", "missing for an item event")
            if item_ids is not None and item_id not in item_ids:
                raise InvalidRecordError(
                    source, index, f"{where}.item_id", f"'{item_id}' is not in the catalogue"
                )
        elif subject in QUERY_SUBJECTS:
            if not isinstance(query, str) or not query.strip():
                raise InvalidRecordError(source, index, f"{where}.query", f"missing or empty for a {subject}")
        else:
            _check_image(image, spec, source, index, f"{where}.image")
        extra = {"item": ("query", "image"), "image_query": ("item_id", "query")}.get(
            subject, ("item_id", "image")
        )
        for name in extra:
            if ev.get(name) is not None:
                raise InvalidRecordError(
                    source, index, f"{where}.{name}", f"must be None for a {subject} event"
                )


def validate_item(
    record: Mapping[str, Any], index: int, *, source: str = "<catalogue>", spec: SchemaSpec | None = None
) -> None:
    """Check one catalogue record against the schema; raise :class:`InvalidRecordError` on the first problem."""
    spec = spec or SchemaSpec()
    if not isinstance(record, Mapping):
        raise InvalidRecordError(source, index, "<record>", f"must be a mapping, got {type(record).__name__}")
    for name in ("item_id", "title"):
        v = record.get(name)
        if name == "title" and v is None and not spec.require_text:
            continue
        if not isinstance(v, str) or not v:
            hint = (
                " (a model that reads no text, TAGNN++, needs only item_id: validate and write such a catalogue "
                "with SchemaSpec(require_text=False))"
                if name == "title"
                else ""
            )
            raise InvalidRecordError(source, index, name, f"missing or not a non-empty string{hint}")
    for name in ("description", "brand"):
        v = record.get(name)
        if v is not None and not isinstance(v, str):
            raise InvalidRecordError(source, index, name, "must be a string or None")
    cat = record.get("category")
    if cat is None and not spec.require_text:
        pass
    elif not isinstance(cat, list | tuple) or not cat or not all(isinstance(c, str) and c for c in cat):
        raise InvalidRecordError(source, index, "category", "must be a non-empty list of non-empty strings")
    attrs = record.get("attributes") or []
    if not isinstance(attrs, list | tuple):
        raise InvalidRecordError(source, index, "attributes", "must be a list of {name, value}")
    for j, a in enumerate(attrs):
        if (
            not isinstance(a, Mapping)
            or not isinstance(a.get("name"), str)
            or not isinstance(a.get("value"), str)
        ):
            raise InvalidRecordError(source, index, f"attributes[{j}]", "must be {name: str, value: str}")
    if record.get("image") is not None:
        _check_image(record["image"], spec, source, index, "image")


def iter_valid(
    records: Iterable[Mapping[str, Any]],
    validate,
    *,
    on_error: ErrorMode = "raise",
    report: ValidationReport | None = None,
    unique_key: str | None = None,
    seen: dict | None = None,
    **kwargs,
) -> Iterator[Mapping[str, Any]]:
    """Yield the records that pass ``validate(record, index, **kwargs)``.

    With ``on_error="raise"`` the first bad record raises :class:`InvalidRecordError`; with ``"skip"`` bad records
    are dropped and counted in ``report``. ``records`` may yield an :class:`InvalidRecordError` in place of a
    record it could not read (a line that is not JSON): it counts as a bad record. ``unique_key``: a field whose
    value must not repeat (``session_id``, ``item_id``); ``seen`` carries the IDs across several files.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    report = report if report is not None else ValidationReport()
    seen = seen if seen is not None else {}
    source = kwargs.get("source", "<records>")
    for i, rec in enumerate(records):
        report.seen += 1
        try:
            if isinstance(rec, InvalidRecordError):
                raise rec
            validate(rec, i, **kwargs)
            if unique_key is not None:
                first = seen.setdefault(rec[unique_key], (source, i))
                if first != (source, i):
                    raise InvalidRecordError(
                        source,
                        i,
                        unique_key,
                        f"duplicate ID {rec[unique_key]!r} (first at {first[0]}: record {first[1]})",
                    )
        except InvalidRecordError as err:
            if on_error == "raise":
                raise
            report.add(err)
            continue
        yield rec


def item_event(action: str, item_id: str, timestamp: float | None = None) -> dict[str, Any]:
    """Build an event whose subject is a catalogue item."""
    return {
        "action": action,
        "timestamp": timestamp,
        "subject": "item",
        "item_id": item_id,
        "query": None,
        "image": None,
    }


def query_event(
    action: str, query: str, timestamp: float | None = None, *, product: bool = False
) -> dict[str, Any]:
    """Build a keyword-query event (or a product-query event with ``product=True``)."""
    subject = "product_query" if product else "keyword_query"
    return {
        "action": action,
        "timestamp": timestamp,
        "subject": subject,
        "item_id": None,
        "query": query,
        "image": None,
    }


def image_event(action: str, image: list[float], timestamp: float | None = None) -> dict[str, Any]:
    """Build an image-query event."""
    return {
        "action": action,
        "timestamp": timestamp,
        "subject": "image_query",
        "item_id": None,
        "query": None,
        "image": [float(v) for v in image],
    }


def session_item_ids(session: Mapping[str, Any]) -> list[str]:
    """The item IDs of a session's item events, in order (what ID-only models such as TAGNN++ see)."""
    return [ev["item_id"] for ev in session["events"] if ev["subject"] == "item"]


__all__ = [
    "CATALOGUE_FEATURES",
    "DEFAULT_ACTIONS",
    "EVENT_FEATURES",
    "QUERY_SUBJECTS",
    "SESSION_FEATURES",
    "SUBJECTS",
    "InvalidRecordError",
    "SchemaSpec",
    "ValidationReport",
    "image_event",
    "item_event",
    "iter_valid",
    "query_event",
    "session_item_ids",
    "validate_item",
    "validate_session",
]
