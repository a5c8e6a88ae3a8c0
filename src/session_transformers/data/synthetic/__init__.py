"""A seeded synthetic store: a catalogue and shoppers whose hidden intents drive their sessions.

The store is the embedded default dataset of every trainer. It models what the papers need (see
``docs/synthetic-store.md``): a three-level category tree, brands tied to departments and a few shared across
distant ones, titles and descriptions composed with word-order variation and misspellings, image vectors that
carry a visual attribute (``pattern``) found in no text field, Zipf popularity, product flags that depend on
the text beyond the category, and sessions of keyword, product and image queries, views, clicks, carts and
purchases, each emitted with the labels of every downstream task.

Everything is a function of :class:`SyntheticStoreConfig`. Session ``i`` is generated from a random stream
seeded by ``(seed, i)`` only, so any index range can be produced independently (sharding across processes,
streaming a million sessions with constant memory)::

    store = SyntheticStore(SyntheticStoreConfig(num_sessions=1000))
    store.session(0)                        # {"session_id", "events", "labels"}
    ds = store.sessions_dataset(streaming=True)

Command line: ``python -m session_transformers.data.synthetic --out DIR [--format parquet] [--num-shards N]
[--stats]``; ``--num-shards N`` writes the sessions as ``sessions-00000-of-0000N.<fmt>`` ... (contiguous ranges of
sessions), a corpus that ``trainers/pretrain.py --dataset sessions --data-path DIR --streaming`` streams.
"""

from __future__ import annotations

from .config import (
    CATALOGUE_LABEL_FEATURES,
    LABEL_FEATURES,
    SYNTHETIC_CATALOGUE_FEATURES,
    SYNTHETIC_SESSION_FEATURES,
    SyntheticStoreConfig,
)
from .store import SyntheticStore, _Shopper  # noqa: F401 (tests patch _Shopper)
from .vocabulary import (  # noqa: F401 (BULKY_SIZES, REFURB_MARKERS: read by the tests)
    ATTRIBUTE_VALUES,
    BULKY_SIZES,
    FLAG_NAMES,
    PATTERNS,
    REFURB_MARKERS,
    tokenize,
)
from .writing import cut_labels, format_stats, main, summarize, write_store

__all__ = [
    "ATTRIBUTE_VALUES",
    "CATALOGUE_LABEL_FEATURES",
    "FLAG_NAMES",
    "LABEL_FEATURES",
    "PATTERNS",
    "SYNTHETIC_CATALOGUE_FEATURES",
    "SYNTHETIC_SESSION_FEATURES",
    "SyntheticStore",
    "SyntheticStoreConfig",
    "cut_labels",
    "format_stats",
    "main",
    "summarize",
    "tokenize",
    "write_store",
]
