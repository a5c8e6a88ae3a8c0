"""Session data: the one schema, readers and writers, real-data loaders and the synthetic store."""

from .io import iter_records, load_catalogue, load_sessions, write_catalogue, write_records, write_sessions
from .loaders import (
    HOMEDEPOT_COUNTS,
    HomeDepotSplits,
    NextItemSplits,
    instacart_product_pairs,
    load_catalogue_table,
    load_homedepot,
    load_instacart_baskets,
    load_instacart_catalogue,
    load_next_item_dataset,
    load_next_item_sessions,
    load_next_item_splits,
    load_online_retail,
    load_rees46,
    next_item_catalogue_ids,
    next_item_samples,
    next_item_statistics,
)
from .schema import (
    CATALOGUE_FEATURES,
    DEFAULT_ACTIONS,
    SESSION_FEATURES,
    SUBJECTS,
    InvalidRecordError,
    SchemaSpec,
    ValidationReport,
    image_event,
    item_event,
    query_event,
    session_item_ids,
    validate_item,
    validate_session,
)

_SYNTHETIC = ("SYNTHETIC_SESSION_FEATURES", "SyntheticStore", "SyntheticStoreConfig", "cut_labels")


def __getattr__(name: str):
    """The synthetic store's names, imported on first use: importing the package must not import
    ``data.synthetic``, or ``python -m session_transformers.data.synthetic`` warns (runpy finds the module already
    imported before it runs it as ``__main__``)."""
    if name in _SYNTHETIC:
        from . import synthetic

        return getattr(synthetic, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CATALOGUE_FEATURES",
    "DEFAULT_ACTIONS",
    "HOMEDEPOT_COUNTS",
    "SESSION_FEATURES",
    "SUBJECTS",
    "SYNTHETIC_SESSION_FEATURES",
    "HomeDepotSplits",
    "InvalidRecordError",
    "SchemaSpec",
    "SyntheticStore",
    "SyntheticStoreConfig",
    "ValidationReport",
    "cut_labels",
    "image_event",
    "instacart_product_pairs",
    "item_event",
    "iter_records",
    "load_catalogue",
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
    "load_sessions",
    "next_item_catalogue_ids",
    "next_item_samples",
    "next_item_statistics",
    "query_event",
    "session_item_ids",
    "validate_item",
    "validate_session",
    "write_catalogue",
    "write_records",
    "write_sessions",
]
