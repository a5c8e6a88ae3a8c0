"""Home Depot search terms with product titles and relevance grades."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from datasets import Dataset, Features, List, Value

from ..schema import (
    CATALOGUE_FEATURES,
    SESSION_FEATURES,
    ErrorMode,
    InvalidRecordError,
    ValidationReport,
    query_event,
)
from ._common import (
    PathLike,
    _catalogue_record,
    _check_mode,
    _csv_rows,
    _fail,
    _resolve,
    _to_dataset,
    _valid_items,
    _valid_sessions,
)

HOMEDEPOT_FILE = "search_relevance.csv.gz"
_HOMEDEPOT_COLUMNS = ("id", "product_uid", "product_title", "search_term", "relevance")
HOMEDEPOT_COUNTS: dict[str, int] = {"rows": 74_067, "products": 54_667, "search_terms": 11_795}
"""What ``../shared/data/homedepot/README.md`` says the full file holds (the tests check the loader against it)."""
HOMEDEPOT_RELEVANT_GRADE = 2.5
"""Products graded at least this (the mean of the raters' 1-3 grades) are *relevant* for MRR and Recall."""
HOMEDEPOT_FEATURES = Features(
    {
        **SESSION_FEATURES,
        "search_term": Value("string"),
        "item_ids": List(Value("string")),
        "relevance": List(Value("float64")),
    }
)
"""A Home Depot search term: a one-query session in :data:`SESSION_FEATURES` plus its judged products and their
grades (aligned lists)."""


@dataclass
class HomeDepotSplits:
    """Search terms split into train / validation / test (see :func:`load_homedepot`) and the whole catalogue."""

    train: Dataset
    validation: Dataset
    test: Dataset
    catalogue: Dataset
    """Every product of the file (54,667 for the full file): the candidate pool every term ranks."""
    statistics: dict[str, int]
    """``rows``, ``products``, ``search_terms`` (compare with :data:`HOMEDEPOT_COUNTS`), ``relevant_pairs``
    (graded >= 2.5), ``title_variants`` (products whose rows give more than one title: the first is kept) and the
    size of each split."""


def _homedepot_row(row: dict[str, str] | list[str], source: str, line: int) -> tuple[str, str, str, float]:
    """``(product_uid, title, search_term, grade)`` of one row; :class:`InvalidRecordError` names the bad field."""
    if isinstance(row, list):
        raise InvalidRecordError(
            source,
            line,
            "<columns>",
            f"line {line}: expected {len(_HOMEDEPOT_COLUMNS)} columns, got {len(row)}",
        )
    values = {}
    for name in ("product_uid", "product_title", "search_term"):
        values[name] = row[name].strip()
        if not values[name]:
            raise InvalidRecordError(source, line, name, f"line {line}: missing")
    try:
        grade = float(row["relevance"])
    except ValueError:
        raise InvalidRecordError(
            source, line, "relevance", f"line {line}: not a number: {row['relevance']!r}"
        ) from None
    if not 1.0 <= grade <= 3.0:  # also rejects nan
        raise InvalidRecordError(
            source, line, "relevance", f"line {line}: grade {row['relevance']!r} outside [1, 3]"
        )
    return values["product_uid"], values["product_title"], values["search_term"], grade


def _split_terms(
    terms: list[str], validation_fraction: float, test_fraction: float, seed: int
) -> dict[str, str]:
    """term -> ``"train"`` / ``"validation"`` / ``"test"``: a seeded shuffle of the sorted terms, cut in three."""
    for name, value in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
    if validation_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"validation_fraction + test_fraction must be < 1 (no training terms left), got "
            f"{validation_fraction} + {test_fraction}"
        )
    order = sorted(terms)
    random.Random(seed).shuffle(order)
    n_test, n_val = round(test_fraction * len(order)), round(validation_fraction * len(order))
    side = {t: "test" for t in order[:n_test]}
    side.update({t: "validation" for t in order[n_test : n_test + n_val]})
    side.update({t: "train" for t in order[n_test + n_val :]})
    return side


def load_homedepot(
    path: PathLike,
    *,
    validation_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    on_error: ErrorMode = "raise",
    report: ValidationReport | None = None,
) -> HomeDepotSplits:
    """Product search on real queries: Home Depot search terms, product titles and human relevance grades.

    Reads ``search_relevance.csv.gz`` (``id, product_uid, product_title, search_term, relevance``; ``path`` is
    the file or its folder). Every distinct search term (surrounding spaces stripped, otherwise as typed: typos
    and case kept) is one row: a **one-query session** in the package schema, ``{"session_id", "events":
    [{"action": "search", "subject": "keyword_query", "query": term, ...}]}``, so every text model takes it as
    it takes any session, plus ``search_term``, ``item_ids`` (the products judged for it, in file order) and
    ``relevance`` (their grades, the mean of several raters' 1-3 grades; aligned with ``item_ids``). Session IDs
    are ``"hd-<n>"``, numbered by the term's first line. Unjudged products are not in a row: ranked against the
    whole catalogue they count as grade 1 (not relevant), the data's own floor.

    The terms are split, never the rows, so no term is on two sides: a seeded shuffle (``seed``) of the sorted
    terms gives ``test_fraction`` of them to the test split, ``validation_fraction`` to the validation split
    and the rest to training (by default 60 / 20 / 20 %: 7,077 / 2,359 / 2,359 terms of the full file). The
    catalogue is every product of the file (title only; category ``["unknown"]``, the data has none): the
    candidate pool that every term of every split ranks. Titles keep the file's encoding damage (e.g.
    ``30å¡`` for ``30°`` in 278 titles): it is real text. 15 products appear with two slightly different titles
    (the retailer edited them between judgements); the catalogue keeps the first.

    Metrics for this task: :func:`session_transformers.metrics.graded_ranking_metrics` (NDCG@K with gain
    ``grade - 1``, MRR@K and Recall@K over products graded >= :data:`HOMEDEPOT_RELEVANT_GRADE`).

    Raises:
        InvalidRecordError: a row with a wrong column count, a missing product, title or term, a grade that is
            not a number in [1, 3], or a second judgement of the same (term, product) pair; the index is the
            file's line number. With ``on_error="skip"`` such rows are dropped and counted in ``report``.

    Returns:
        :class:`HomeDepotSplits`: ``train`` / ``validation`` / ``test`` in :data:`HOMEDEPOT_FEATURES`, the
        ``catalogue`` in :data:`CATALOGUE_FEATURES` and ``statistics`` (compare with :data:`HOMEDEPOT_COUNTS`).
    """
    _check_mode(on_error)
    report = report if report is not None else ValidationReport()
    path = _resolve(path, HOMEDEPOT_FILE)
    source = str(path)
    titles: dict[str, str] = {}
    variants: set[str] = set()
    judged: dict[str, dict[str, tuple[float, int]]] = {}  # term -> product -> (grade, line)
    rows = 0
    for line, row in _csv_rows(path, _HOMEDEPOT_COLUMNS):
        report.seen += 1
        try:
            uid, title, term, grade = _homedepot_row(row, source, line)
            first = judged.get(term, {}).get(uid)
            if first is not None:
                raise InvalidRecordError(
                    source,
                    line,
                    "product_uid",
                    f"line {line}: product {uid!r} judged a second time for search term {term!r} (first on "
                    f"line {first[1]})",
                )
        except InvalidRecordError as err:
            _fail(err, on_error, report)
            continue
        rows += 1
        if uid not in titles:
            titles[uid] = title
        elif titles[uid] != title:
            variants.add(uid)
        judged.setdefault(term, {})[uid] = (grade, line)
    side = _split_terms(list(judged), validation_fraction, test_fraction, seed)
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "validation": [], "test": []}
    for n, (term, products) in enumerate(judged.items()):
        splits[side[term]].append(
            {
                "session_id": f"hd-{n:05d}",
                "events": [query_event("search", term)],
                "search_term": term,
                "item_ids": list(products),
                "relevance": [grade for grade, _ in products.values()],
            }
        )
    splits = {
        name: _valid_sessions(records, f"{path} ({name} terms)", on_error, report, item_ids=None)
        for name, records in splits.items()
    }
    catalogue = _valid_items(
        (_catalogue_record(uid, title, None) for uid, title in titles.items()),
        f"{path} (catalogue)",
        on_error,
        report,
    )
    statistics = {
        "rows": rows,
        "products": len(titles),
        "search_terms": len(judged),
        "relevant_pairs": sum(
            g >= HOMEDEPOT_RELEVANT_GRADE for products in judged.values() for g, _ in products.values()
        ),
        "title_variants": len(variants),
        **{f"{name}_terms": len(records) for name, records in splits.items()},
    }
    return HomeDepotSplits(
        **{name: _to_dataset(records, HOMEDEPOT_FEATURES) for name, records in splits.items()},
        catalogue=_to_dataset(catalogue, CATALOGUE_FEATURES),
        statistics=statistics,
    )
