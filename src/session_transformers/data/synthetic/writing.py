"""Labels from a cut point, statistics, and writing the store as session files (the command line)."""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from datasets import Features, Value

from ..io import write_records
from ..schema import (
    CATALOGUE_FEATURES,
    SESSION_FEATURES,
)

if TYPE_CHECKING:
    from .store import SyntheticStore

from .config import CATALOGUE_LABEL_FEATURES, LABEL_FEATURES, QUERY_REFORMULATIONS, SyntheticStoreConfig
from .vocabulary import tokenize

# ----------------------------------------------------------------------------------------------------------
# Labels from a cut point, statistics, streaming shards
# ----------------------------------------------------------------------------------------------------------


def cut_labels(session: Mapping[str, Any], position: int) -> dict[str, Any]:
    """Labels of the prefix ``events[:position]`` of a session, read from the events after the cut.

    Returns:
        ``remaining_length`` (events after the cut), ``next_item_id`` (item of the first item event after the cut,
        or ``None``), ``next_query`` (text of the first keyword or product query after the cut, or ``None``) and
        ``purchased_after`` (whether a purchase follows).
    """
    events = session["events"]
    if not 0 <= position <= len(events):
        raise ValueError(
            f"position must be in [0, {len(events)}] for a session of {len(events)} events, got {position}"
        )
    rest = events[position:]
    return {
        "remaining_length": len(rest),
        "next_item_id": next((ev["item_id"] for ev in rest if ev["subject"] == "item"), None),
        "next_query": next(
            (ev["query"] for ev in rest if ev["subject"] in ("keyword_query", "product_query")), None
        ),
        "purchased_after": any(ev["action"] == "purchase" for ev in rest),
    }


def summarize(
    sessions: Sequence[Mapping[str, Any]], store: SyntheticStore, elapsed: float | None = None
) -> dict[str, Any]:
    """Statistics of a list of sessions of ``store`` (see :meth:`SyntheticStore.stats`)."""
    lengths = np.array([len(s["events"]) for s in sessions]) if sessions else np.zeros(1, int)
    actions: Counter = Counter()
    vocab: set[str] = set()
    product = image = purchased = 0
    copies, jaccards, seen_shares = [], [], []  # per keyword query that follows another in its session
    for s in sessions:
        subjects = set()
        seen: set[str] = set()
        previous: set[str] | None = None
        for ev in s["events"]:
            actions[ev["action"]] += 1
            subjects.add(ev["subject"])
            if ev["query"]:
                words = set(tokenize(ev["query"]))
                vocab.update(words)
                if ev["subject"] == "keyword_query" and words:
                    if previous:
                        copies.append(previous <= words and len(words - previous) <= 1)
                        jaccards.append(len(words & previous) / len(words | previous))
                        seen_shares.append(len(words & seen) / len(words))
                    previous = words
                    seen |= words
        product += "product_query" in subjects
        image += "image_query" in subjects
        purchased += any(ev["action"] == "purchase" for ev in s["events"])
    for it in store._items:
        vocab.update(it["title_tokens"])
        vocab.update(tokenize(it["description"]))
    n, total = max(len(sessions), 1), max(sum(actions.values()), 1)
    out = {
        "sessions": len(sessions),
        "events_per_session_mean": float(lengths.mean()),
        "events_per_session_p50": float(np.percentile(lengths, 50)),
        "events_per_session_p95": float(np.percentile(lengths, 95)),
        "events_per_session_max": int(lengths.max()),
        "sessions_over_30_events": int((lengths > 30).sum()),
        **{f"action_share_{a}": actions[a] / total for a in sorted(actions)},
        "purchase_rate": purchased / n,
        "product_query_session_share": product / n,
        "image_query_session_share": image / n,
        "catalogue_size": len(store._items),
        "leaf_categories": len(store.leaves),
        "brands": len(store.brands),
        "vocabulary_size": len(vocab),
        "keyword_reformulations": len(jaccards),
        "reformulation_previous_plus_one_word_share": float(np.mean(copies)) if copies else 0.0,
        "reformulation_jaccard_mean": float(np.mean(jaccards)) if jaccards else 0.0,
        "reformulation_words_seen_share": float(np.mean(seen_shares)) if seen_shares else 0.0,
    }
    if elapsed is not None:
        out["generation_seconds"] = elapsed
        out["sessions_per_s"] = len(sessions) / max(elapsed, 1e-9)
    return out


def format_stats(stats: Mapping[str, Any]) -> str:
    """The statistics as a two-column text table."""
    width = max(len(k) for k in stats)
    lines = []
    for k, v in stats.items():
        shown = f"{v:,.3f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)
        lines.append(f"{k:<{width}}  {shown:>12}")
    return "\n".join(lines)


_STORES: dict[tuple, SyntheticStore] = {}


def _config_key(config: SyntheticStoreConfig) -> tuple:
    return tuple(sorted(asdict(config).items()))


def _generate_shards(config: dict[str, Any], shards: list[tuple[int, int]]) -> Iterator[dict[str, Any]]:
    """Generator behind the streaming dataset: rebuilds (or reuses) the store and yields its shards' sessions."""
    from .store import SyntheticStore  # here: store.py uses this module

    cfg = SyntheticStoreConfig(**config)
    key = _config_key(cfg)
    store = _STORES.get(key)
    if store is None:
        store = _STORES[key] = SyntheticStore(cfg)
    for start, stop in shards:
        yield from store.iter_sessions(start, stop)


# ----------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------


def write_store(
    store: SyntheticStore,
    out: str | Path,
    num_sessions: int | None = None,
    fmt: str = "parquet",
    num_shards: int = 1,
) -> dict[str, Path]:
    """Write a store into ``out``, streaming (sessions are never all in memory), each file atomically.

    ``catalogue.<fmt>`` and ``sessions.<fmt>`` follow the package schema (:data:`CATALOGUE_FEATURES`,
    :data:`SESSION_FEATURES`) so the generic loaders read them; ``catalogue_labels.<fmt>`` (item ID, pattern,
    popularity, flags) and ``session_labels.<fmt>`` (session ID, labels) hold what only the synthetic store knows.

    ``num_shards > 1`` writes the sessions and their labels as shards instead, ``sessions-00000-of-0000N.<fmt>``
    and ``session_labels-00000-of-0000N.<fmt>`` (contiguous ranges of sessions, sizes differing by at most one),
    and removes the session files of an earlier write with another shard count from ``out``. Returns the paths
    written, keyed by file name without its format.
    """
    from ..streaming import parse_shard_name, shard_bounds, shard_name

    if fmt not in ("jsonl", "parquet"):
        raise ValueError(f"fmt must be 'jsonl' or 'parquet', got {fmt!r}")
    out, n = Path(out), store.config.num_sessions if num_sessions is None else num_sessions
    if num_shards < 1 or (num_shards > 1 and num_shards > n):
        raise ValueError(
            f"num_shards={num_shards} must be >= 1 and at most the {n} sessions (no empty shard)"
        )
    paths = {name: out / f"{name}.{fmt}" for name in ("catalogue", "catalogue_labels")}
    cat_keys, item_label_keys = list(CATALOGUE_FEATURES), ["item_id", *CATALOGUE_LABEL_FEATURES]
    write_records(
        ({k: rec[k] for k in cat_keys} for rec in store.catalogue), paths["catalogue"], CATALOGUE_FEATURES
    )
    write_records(
        ({k: rec[k] for k in item_label_keys} for rec in store.catalogue),
        paths["catalogue_labels"],
        Features({"item_id": Value("string"), **CATALOGUE_LABEL_FEATURES}),
    )
    label_features = Features({"session_id": Value("string"), "labels": LABEL_FEATURES})
    for i, (start, stop) in enumerate(shard_bounds(n, num_shards)):
        names = [
            stem if num_shards == 1 else shard_name(stem, i, num_shards, fmt).removesuffix(f".{fmt}")
            for stem in ("sessions", "session_labels")
        ]
        sessions, labels = (paths.setdefault(name, out / f"{name}.{fmt}") for name in names)
        write_records(
            (
                {"session_id": s["session_id"], "events": s["events"]}
                for s in store.iter_sessions(start, stop)
            ),
            sessions,
            SESSION_FEATURES,
        )
        write_records(
            (
                {"session_id": s["session_id"], "labels": s["labels"]}
                for s in store.iter_sessions(start, stop)
            ),
            labels,
            label_features,
        )
    written = set(paths.values())
    for stem in ("sessions", "session_labels"):  # session files of an earlier write into this folder
        for old in out.glob(f"{stem}*.{fmt}"):
            shard = parse_shard_name(old.name)
            ours = old.name == f"{stem}.{fmt}" or (shard is not None and shard[0] == stem)
            if ours and old not in written:
                old.unlink()
    return paths


def main(argv: Sequence[str] | None = None) -> None:
    """Write a synthetic store (catalogue, sessions and their labels) and/or print its statistics."""
    from .store import SyntheticStore  # here: store.py uses this module

    parser = argparse.ArgumentParser(
        prog="python -m session_transformers.data.synthetic", description=main.__doc__
    )
    parser.add_argument(
        "--out", type=Path, help="folder to write catalogue.<fmt>, sessions.<fmt> and labels into"
    )
    parser.add_argument(
        "--num-sessions", type=int, default=None, help="sessions to generate (default: config)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--format", choices=("jsonl", "parquet"), default="parquet")
    parser.add_argument(
        "--num-shards",
        type=int,
        default=1,
        metavar="N",
        help="write the sessions (and their labels) as N shards sessions-00000-of-0000N.<fmt> ..., contiguous "
        "ranges of sessions: a corpus that trainers stream (default: one sessions.<fmt>)",
    )
    parser.add_argument("--stats", action="store_true", help="print statistics of the generated sessions")
    parser.add_argument("--tiny", action="store_true", help="use the tiny test configuration")
    parser.add_argument(
        "--query-reformulation",
        choices=QUERY_REFORMULATIONS,
        default="mix",
        help="how a keyword query follows the previous one: the query-log mix (default) or the pre-mix "
        "'refine' store, kept for older figures",
    )
    args = parser.parse_args(argv)
    if args.out is None and not args.stats:
        parser.error("give --out DIR, --stats, or both")
    overrides: dict[str, Any] = {"seed": args.seed, "query_reformulation": args.query_reformulation}
    if args.num_sessions is not None:
        overrides["num_sessions"] = args.num_sessions
    config = SyntheticStoreConfig.tiny(**overrides) if args.tiny else SyntheticStoreConfig(**overrides)
    if args.num_shards < 1 or (args.num_shards > 1 and args.num_shards > config.num_sessions):
        parser.error(
            f"--num-shards {args.num_shards} must be >= 1 and at most the {config.num_sessions} sessions"
        )
    store = SyntheticStore(config)
    if args.out is not None:
        start = time.perf_counter()
        paths = write_store(store, args.out, fmt=args.format, num_shards=args.num_shards)
        files = list(paths.values())
        listed = ", ".join(str(p) for p in files) if len(files) <= 6 else f"{len(files)} files in {args.out}"
        print(
            f"wrote {len(store.item_ids)} products and {config.num_sessions} sessions"
            + (f" in {args.num_shards} shards" if args.num_shards > 1 else "")
            + f" in {time.perf_counter() - start:.1f}s: {listed}"
        )
    if args.stats:
        print(format_stats(store.stats()))
