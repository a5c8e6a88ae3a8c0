"""Text helpers shared by the processors that tokenise product attributes (CERES, UBM)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any


def attribute_token(name: str) -> str:
    """The special token of an attribute name: ``"size"`` -> ``"[SIZE]"``, ``"product type"`` -> ``"[PRODUCT_TYPE]"``."""
    cleaned = re.sub(r"[^0-9A-Za-z]+", "_", str(name).strip()).strip("_").upper()
    if not cleaned:
        raise ValueError(f"attribute name {name!r} has no letters or digits to build a special token from")
    return f"[{cleaned}]"


def catalogue_attribute_names(
    catalogue: Mapping[str, Mapping[str, Any]] | Iterable[Mapping[str, Any]],
) -> list[str]:
    """Sorted distinct attribute names of a catalogue (``record["attributes"][*]["name"]``)."""
    records = catalogue.values() if isinstance(catalogue, Mapping) else catalogue
    return sorted({a["name"] for rec in records for a in (rec.get("attributes") or [])})


__all__ = ["attribute_token", "catalogue_attribute_names"]
