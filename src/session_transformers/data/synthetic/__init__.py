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

Query reformulations. A keyword query that follows another is, by default (``query_reformulation="mix"``), one
of the kinds that query-log studies classify: a **specialisation** (a word of the intent added, 25%), a
**generalisation** (a word dropped, or a one-word query widened to its parent category, 10%), a **substitution**
(a synonym noun, another value of the same attribute, another brand of the leaf, 30%), a **new intent** (a related
need: a sibling leaf category, 15%; the query after it returns to the intent) or the same intent worded afresh
(the remaining 20%); a misspelt word of the previous query is corrected first with probability 0.7 (the logs'
spelling-correction or "assistance" moves). The rates are ours, set to the ordering the studies report rather
than fitted to one log, and each is a config field:

- Jansen, Booth and Spink, *Patterns of query reformulation during Web searching*, JASIST 60(7), 2009
  (1,523,072 queries in 964,780 sessions): changes that keep some terms and replace others ("Reformulation")
  and system-assisted ones together make about 45% of reformulations, which is why substitution is our largest
  kind; specialisation, generalisation and new queries are the other states of their classifier.
- Jansen, Zhang and Spink, *Patterns and transitions of query reformulation during web searching*, IJWIS 3(4),
  2007: specialisation and generalisation alternate within sessions (a narrowed query is often widened again).
- Huang and Efthimiadis, *Analyzing and evaluating query reformulation strategies in web search logs*, CIKM
  2009 (AOL log, 3.4M reformulations): the lexical taxonomy behind our kinds (words added, removed, substituted,
  spelling corrected).
- Liu, Gwizdka, Liu and others, *Analysis and evaluation of query reformulations in different task types*,
  ASIS&T 2010: specialisation dominates simple tasks, word substitution parallel ones (comparing alternatives,
  as a shopper comparing colours or brands does).

On the main job's store (seed 42, 3,000 sessions) the mix makes the next keyword query the previous one plus at
most one word 26% of the time (the pre-mix store, ``query_reformulation="refine"``: 50%), with a mean word
Jaccard of 0.32 to the previous query (0.51) and 48% of its words already in the session's earlier queries
(68%): ``--stats`` prints all three.

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
