"""Loaders that turn public e-commerce data sets into the package's session and catalogue schema.

Each loader reads files from a path the user gives (the package ships none of this data) and returns
``datasets.Dataset`` objects in :data:`~session_transformers.data.schema.SESSION_FEATURES` or
:data:`~session_transformers.data.schema.CATALOGUE_FEATURES`, sometimes with extra columns that each
loader documents. Every record goes through the schema validators; item IDs in sessions must exist in the
loader's catalogue. Bad input raises :class:`~session_transformers.data.schema.InvalidRecordError` naming the
file, the record and the field; ``on_error="skip"`` drops bad records and counts them in a
:class:`~session_transformers.data.schema.ValidationReport` instead.

Record indices in errors: for line-oriented text files (``.txt``, ``.tsv``, ``.csv``) the index is the 1-based
line number an editor shows (the header is line 1); for Parquet files, and for every table read by
:func:`load_catalogue_table`, it is the 0-based data row.

========================  ================================================================================
data set                  loaders
========================  ================================================================================
Diginetica (SR-GNN)       :func:`load_next_item_dataset`, :func:`load_next_item_sessions`,
                          :func:`next_item_catalogue_ids`, :func:`next_item_statistics`
REES46 events             :func:`load_rees46`
Instacart                 :func:`load_instacart_catalogue`, :func:`load_instacart_baskets`,
                          :func:`instacart_product_pairs`
UCI Online Retail         :func:`load_online_retail`
Home Depot search         :func:`load_homedepot`
any product table         :func:`load_catalogue_table`
========================  ================================================================================
"""

from __future__ import annotations

from ._common import NEXT_ITEM_FEATURES, UNKNOWN_CATEGORY
from .catalogue_table import load_catalogue_table
from .homedepot import (
    HOMEDEPOT_COUNTS,
    HOMEDEPOT_FEATURES,
    HOMEDEPOT_FILE,
    HOMEDEPOT_RELEVANT_GRADE,
    HomeDepotSplits,
    load_homedepot,
)
from .instacart import instacart_product_pairs, load_instacart_baskets, load_instacart_catalogue
from .next_item import (
    NextItemSplits,
    load_next_item_dataset,
    load_next_item_sessions,
    load_next_item_splits,
    next_item_catalogue_ids,
    next_item_samples,
    next_item_statistics,
)
from .rees46 import PRICE_BANDS, REES46_ACTIONS, load_rees46, price_band
from .retail import CANCEL_ACTION, load_online_retail

__all__ = [
    "CANCEL_ACTION",
    "HOMEDEPOT_COUNTS",
    "HOMEDEPOT_FEATURES",
    "HOMEDEPOT_FILE",
    "HOMEDEPOT_RELEVANT_GRADE",
    "HomeDepotSplits",
    "NEXT_ITEM_FEATURES",
    "PRICE_BANDS",
    "REES46_ACTIONS",
    "UNKNOWN_CATEGORY",
    "instacart_product_pairs",
    "load_catalogue_table",
    "load_homedepot",
    "load_instacart_baskets",
    "load_instacart_catalogue",
    "load_next_item_dataset",
    "NextItemSplits",
    "load_next_item_sessions",
    "load_next_item_splits",
    "load_online_retail",
    "load_rees46",
    "next_item_catalogue_ids",
    "next_item_samples",
    "next_item_statistics",
    "price_band",
]
