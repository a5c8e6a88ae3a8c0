"""The CERES paper's downstream tasks (Section 4.1), built from sessions in the package schema.

- **Product search**: the purchased product is removed from the session (all of its events, so that no view
  leaks it); the target is that product. The paper's candidate pool: every target of the evaluated set plus the
  search engine's first 10 results of each of its searches.
- **Query search**: the last query is hidden with the products associated with it (every event from the last
  query on); the target is that query. The paper's candidate pool: all last queries of the evaluated set.
- **Entity linking**: as product search, but the targets are the purchased product's attribute values
  ("entities": brand, category leaf and named attributes). The paper's candidate pool: every possible product
  attribute.

The eval pools themselves are built by ``models/ceres/retrieval.py`` (``--eval-pool``) from
:func:`candidate_pool`, which evaluates them the way the trainers do (``retrieval.evaluate_retrieval``).

The purchased product is ``record["labels"]["purchased_item_id"]`` when the record carries labels (the synthetic
store), else the item of the session's last ``purchase`` event (REES46 and other real sessions). Entities are
``record["labels"]["purchased_attributes"]`` when present, else read from the catalogue. Query search needs
queries, so REES46 sessions (products only) yield no query-search examples.

Each example is ``{"session_id", "events", "targets": [spec, ...]}`` where a spec is ``{"item_id"}``,
``{"query"}`` or ``{"attribute", "value"}``, ready for :class:`CeresRetrievalCollator` and
``retrieval.evaluate_retrieval`` (MAP@K and Recall@K, K in 1, 32, 64, as in the paper's tables).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ...data.schema import QUERY_SUBJECTS
from .processing_ceres import CeresProcessor, _as_catalogue, candidate_key


def purchased_item(session: Mapping[str, Any]) -> str | None:
    """The purchased product of a session: its labels' ``purchased_item_id``, else its last purchase event."""
    labels = session.get("labels") or {}
    if labels.get("purchased_item_id"):
        return labels["purchased_item_id"]
    bought = [
        ev["item_id"] for ev in session["events"] if ev["action"] == "purchase" and ev["subject"] == "item"
    ]
    return bought[-1] if bought else None


def _has_text_item(events: Sequence[Mapping[str, Any]]) -> bool:
    return any(ev["subject"] == "item" or ev["subject"] in QUERY_SUBJECTS for ev in events)


def product_entities(item_id: str, catalogue: Mapping[str, Mapping[str, Any]]) -> list[dict[str, str]]:
    """A product's entities: brand, category leaf and each named attribute, as ``{"attribute", "value"}``."""
    rec = catalogue[item_id]
    out = [{"attribute": "brand", "value": rec["brand"]}] if rec.get("brand") else []
    if rec.get("category"):
        out.append({"attribute": "category", "value": rec["category"][-1]})
    out += [
        {"attribute": a["name"], "value": a["value"]} for a in rec.get("attributes") or [] if a.get("value")
    ]
    return out


def _entities_from_labels(value: Any) -> list[dict[str, str]]:
    if isinstance(value, Mapping):
        return [{"attribute": k, "value": str(v)} for k, v in value.items() if v]
    return [{"attribute": a["name"], "value": a["value"]} for a in value if a.get("value")]


def product_search_examples(sessions: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Product search: sessions with a purchase, the purchased product's events removed, targeting that product."""
    out = []
    for session in sessions:
        item = purchased_item(session)
        if item is None:
            continue
        events = [ev for ev in session["events"] if ev.get("item_id") != item]
        if _has_text_item(events):
            out.append(
                {"session_id": session["session_id"], "events": events, "targets": [{"item_id": item}]}
            )
    return out


def query_search_examples(sessions: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Query search: the last query and everything after it hidden; the target is that query."""
    out = []
    for session in sessions:
        events = session["events"]
        last = max((i for i, ev in enumerate(events) if ev["subject"] in QUERY_SUBJECTS), default=None)
        if last is None or not _has_text_item(events[:last]):
            continue
        out.append(
            {
                "session_id": session["session_id"],
                "events": list(events[:last]),
                "targets": [{"query": events[last]["query"]}],
            }
        )
    return out


def entity_linking_examples(
    sessions: Iterable[Mapping[str, Any]], catalogue: Mapping[str, Mapping[str, Any]] | Iterable | None = None
) -> list[dict[str, Any]]:
    """Entity linking: as product search, targeting the purchased product's attribute values."""
    catalogue = _as_catalogue(catalogue)
    out = []
    for session, example in _with_product_examples(sessions):
        labels = session.get("labels") or {}
        if labels.get("purchased_attributes"):
            entities = _entities_from_labels(labels["purchased_attributes"])
        else:
            entities = product_entities(example["targets"][0]["item_id"], catalogue)
        if entities:
            out.append({**example, "targets": entities})
    return out


def _with_product_examples(sessions):
    for session in sessions:
        examples = product_search_examples([session])
        if examples:
            yield session, examples[0]


def candidate_pool(
    examples: Iterable[Mapping[str, Any]], extra: Iterable[Mapping[str, Any]] = ()
) -> list[dict]:
    """The distinct targets of ``examples`` followed by the distinct ``extra`` candidates, in first-seen order."""
    pool: dict[tuple, dict] = {}
    for spec in [s for ex in examples for s in ex["targets"]] + list(extra):
        pool.setdefault(candidate_key(spec), dict(spec))
    return list(pool.values())


class CeresRetrievalCollator:
    """Fine-tuning collator: examples -> :class:`CeresForSessionRetrieval` inputs with ``labels`` ``(B, C)``.

    The batch's candidates are its examples' targets (in-batch negatives for the other sessions) plus the
    given ``negatives``.
    """

    def __init__(
        self, processor: CeresProcessor, catalogue=None, negatives: Sequence[Mapping[str, Any]] = ()
    ):
        self.processor = processor
        self.catalogue = _as_catalogue(catalogue)
        self.negatives = list(negatives)

    def __call__(self, examples: Sequence[Mapping[str, Any]]):
        return self.processor(
            list(examples),
            self.catalogue,
            targets=[ex["targets"] for ex in examples],
            negatives=self.negatives,
        )


__all__ = [
    "CeresRetrievalCollator",
    "candidate_pool",
    "entity_linking_examples",
    "product_entities",
    "product_search_examples",
    "purchased_item",
    "query_search_examples",
]
