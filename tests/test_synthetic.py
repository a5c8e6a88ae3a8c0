"""Tests of the synthetic store: determinism, schema, catalogue properties and the signals the papers need."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from datasets.distributed import split_dataset_by_node

from session_transformers.data.io import load_catalogue, load_sessions
from session_transformers.data.schema import (
    SchemaSpec,
    image_event,
    item_event,
    query_event,
    validate_item,
    validate_session,
)
from session_transformers.data.synthetic import (
    BULKY_SIZES,
    FLAG_NAMES,
    PATTERNS,
    REFURB_MARKERS,
    SyntheticStore,
    SyntheticStoreConfig,
    cut_labels,
    main,
    tokenize,
)

N_DEFAULT_SESSIONS = 3000


@pytest.fixture(scope="module")
def store() -> SyntheticStore:
    return SyntheticStore(SyntheticStoreConfig())


@pytest.fixture(scope="module")
def sessions(store) -> list[dict]:
    return list(store.iter_sessions(0, N_DEFAULT_SESSIONS))


def _digest(store: SyntheticStore, n: int) -> str:
    blob = json.dumps([store.catalogue, list(store.iter_sessions(0, n))], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _cut(session: dict) -> int:
    """Index of the first add_to_cart (the prefix before it is what a purchase predictor sees)."""
    return next(j for j, ev in enumerate(session["events"]) if ev["action"] == "add_to_cart")


# -- config ------------------------------------------------------------------------------------------------


def test_config_defaults_and_errors():
    cfg = SyntheticStoreConfig()
    assert cfg.num_leaf_categories == 160 and 3000 <= cfg.num_items <= 5000 and cfg.image_dim == 512
    tiny = SyntheticStoreConfig.tiny()
    assert tiny.num_leaf_categories == 8 and tiny.image_dim == 16 and tiny.num_sessions == 200
    with pytest.raises(ValueError, match="num_brands=4"):
        SyntheticStoreConfig(num_brands=4)
    with pytest.raises(ValueError, match="purchase_rate must be in \\[0, 1\\], got 1.5"):
        SyntheticStoreConfig(purchase_rate=1.5)
    with pytest.raises(ValueError, match="items_per_leaf must be >= 2, got 1"):
        SyntheticStoreConfig(items_per_leaf=1)
    with pytest.raises(ValueError, match="reformulation rates must sum to <= 1"):
        SyntheticStoreConfig(substitution_rate=0.9)
    with pytest.raises(ValueError, match="query_reformulation must be one of \\('mix', 'refine'\\)"):
        SyntheticStoreConfig(query_reformulation="copy")


# -- determinism and schema -------------------------------------------------------------------------------


def test_same_seed_same_bytes_different_seed_differs(tiny_store):
    a = _digest(tiny_store, 60)
    assert a == _digest(SyntheticStore(SyntheticStoreConfig.tiny()), 60)
    assert a != _digest(SyntheticStore(SyntheticStoreConfig.tiny(seed=1)), 60)


@pytest.mark.slow  # a fresh interpreter imports torch: ~20 s on a busy machine
def test_same_bytes_in_another_process_with_another_hash_seed(tiny_store):
    code = (
        "from session_transformers.data.synthetic import *; import hashlib, json; "
        "s = SyntheticStore(SyntheticStoreConfig.tiny()); "
        "print(hashlib.sha256(json.dumps([s.catalogue, list(s.iter_sessions(0, 60))], "
        "sort_keys=True).encode()).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == _digest(tiny_store, 60)


def test_every_session_and_item_validates(tiny_store):
    spec = SchemaSpec(image_dim=16, require_timestamps=True)
    for k, rec in enumerate(tiny_store.catalogue):
        validate_item(rec, k, spec=spec)
    ids = set(tiny_store.item_ids)
    for i, s in enumerate(tiny_store.iter_sessions()):
        validate_session(s, i, spec=spec, item_ids=ids)
        times = [ev["timestamp"] for ev in s["events"]]
        assert all(b > a for a, b in zip(times, times[1:]))
    assert len(tiny_store.catalogue_dataset()) == 96
    assert len(tiny_store.sessions_dataset()) == 200


def test_session_is_a_function_of_seed_and_index_only(tiny_store):
    fresh = SyntheticStore(SyntheticStoreConfig.tiny())
    first = fresh.session(137)  # generated before any other, with an empty retrieval cache
    assert first == tiny_store.session(137) == list(tiny_store.iter_sessions(130, 140))[7]


def test_streaming_equals_in_memory_and_shards_split(tiny_store):
    stream = tiny_store.sessions_dataset(streaming=True)
    assert stream.num_shards == 64
    assert list(stream) == list(tiny_store.sessions_dataset())
    parts = [list(split_dataset_by_node(stream, rank=r, world_size=2)) for r in range(2)]
    assert len(parts[0]) + len(parts[1]) == 200
    assert {s["session_id"] for s in parts[0]}.isdisjoint(s["session_id"] for s in parts[1])


# -- catalogue ---------------------------------------------------------------------------------------------


def test_three_level_tree_and_shared_brands(store):
    cats = store.categories
    assert len(cats) == 160 and all(len(c) == 3 for c in cats)
    assert len({tuple(c[:2]) for c in cats}) == 40 and len({c[0] for c in cats}) == 8
    depts_of_brand: dict[str, set] = {}
    for rec in store.catalogue:
        if rec["brand"] and not rec["flag_counterfeit"]:
            depts_of_brand.setdefault(rec["brand"], set()).add(rec["category"][0])
    shared = [b for b, d in depts_of_brand.items() if len(d) > 1]
    assert len(shared) >= 5
    assert 3000 <= len(store.catalogue) <= 5000


def test_titles_descriptions_and_pattern_only_in_images(store, sessions):
    titles = [rec["title"] for rec in store.catalogue]
    assert len(set(titles)) > 0.8 * len(titles)
    with_desc = [rec for rec in store.catalogue if rec["description"]]
    assert 0.85 < len(with_desc) / len(titles) < 1.0
    assert np.mean([len(tokenize(r["description"])) > 2 * len(tokenize(r["title"])) for r in with_desc]) > 0.9
    texts = [rec["title"] for rec in store.catalogue] + [r["description"] or "" for r in store.catalogue]
    texts += [rec["brand"] or "" for rec in store.catalogue]
    texts += [a["value"] for rec in store.catalogue for a in rec["attributes"]]
    texts += [ev["query"] for s in sessions for ev in s["events"] if ev["query"]]
    words = {w for t in texts for w in tokenize(t)}
    assert words.isdisjoint(PATTERNS)
    assert all(a["name"] != "pattern" for rec in store.catalogue for a in rec["attributes"])


def test_images_near_own_leaf_prototype_and_carry_the_pattern(store):
    images = store.images / np.linalg.norm(store.images, axis=1, keepdims=True)
    protos = store.leaf_prototypes / np.linalg.norm(store.leaf_prototypes, axis=1, keepdims=True)
    leaves = np.array([store.item_leaf(i) for i in store.item_ids])
    assert ((images @ protos.T).argmax(1) == leaves).mean() > 0.95
    colours = np.stack([store.colour_prototypes[rec["attributes"][0]["value"]] for rec in store.catalogue])
    residual = store.images - store.leaf_prototypes[leaves] - 0.7 * colours
    pattern_protos = np.stack([store.pattern_prototypes[p] for p in PATTERNS])
    decoded = np.array(PATTERNS)[(residual @ pattern_protos.T).argmax(1)]
    assert (decoded == np.array([rec["pattern"] for rec in store.catalogue])).mean() > 0.9


def test_flags_follow_text_not_category(store):
    cat = store.catalogue
    leaves = np.array([store.item_leaf(r["item_id"]) for r in cat])
    known = {b for b in store.brands}
    text_rule = {
        "counterfeit": [r["brand"] is not None and r["brand"] not in known for r in cat],
        "bulky": [
            any(a["name"] == "size" and a["value"] in BULKY_SIZES for a in r["attributes"]) for r in cat
        ],
        "refurbished": [
            bool(set(REFURB_MARKERS) & set(tokenize(f"{r['title']} {r['description']}"))) for r in cat
        ],
    }
    both_values = np.zeros(len(store.leaves), bool)
    for name in FLAG_NAMES:
        y = np.array([r[f"flag_{name}"] for r in cat])
        rates = np.array([y[leaves == k].mean() for k in range(len(store.leaves))])
        both_values |= (rates > 0) & (rates < 1)
        assert rates.std() > 0.02, name  # within-leaf rates vary
        leaf_majority = np.mean([max(y[leaves == k].mean(), 1 - y[leaves == k].mean()) for k in leaves])
        text_acc = (np.array(text_rule[name]) == y).mean()
        assert text_acc > 0.9, name
        assert text_acc > leaf_majority + 0.02, (name, text_acc, leaf_majority)
    assert both_values.all()


def test_zipf_popularity_of_views(store, sessions):
    top = set(np.argsort(-store.popularity)[: len(store.item_ids) // 10].tolist())
    viewed = [
        int(ev["item_id"].rsplit("-", 1)[1])
        for s in sessions
        for ev in s["events"]
        if ev["action"] in ("view", "click")
    ]
    share = np.mean([k in top for k in viewed])
    assert share > 0.35, share
    assert abs(store.popularity.sum() - 1) < 1e-9


# -- query reformulations ---------------------------------------------------------------------------------

PRE_MIX_TINY_DIGEST = "9241774d01f2e07ed207def0d2fb2f387ff86137978282a235a91db0d6a1c05a"
"""Digest of the tiny store's catalogue and first 300 sessions before the reformulation mix (main at f59482b)."""


def test_refine_reproduces_the_store_before_the_mix():
    old = SyntheticStore(SyntheticStoreConfig.tiny(query_reformulation="refine"))
    assert _digest(old, 300) == PRE_MIX_TINY_DIGEST
    mix = SyntheticStore(SyntheticStoreConfig.tiny())
    assert mix.catalogue == old.catalogue and _digest(mix, 300) != PRE_MIX_TINY_DIGEST


def _reformulations(**rates) -> tuple[SyntheticStore, list[tuple[dict, list[str], list[str]]]]:
    """(store, [(labels, previous words, next words)]) for consecutive keyword queries, only ``rates`` nonzero."""
    zero = dict.fromkeys(("specialization", "generalization", "substitution", "new_intent"), 0.0)
    cfg = SyntheticStoreConfig.tiny(
        misspelling_rate=0.0, **{f"{k}_rate": v for k, v in {**zero, **rates}.items()}
    )
    store = SyntheticStore(cfg)
    pairs = []
    for s in store.iter_sessions(0, 400):
        qs = [ev["query"].split() for ev in s["events"] if ev["subject"] == "keyword_query"]
        pairs += [(s["labels"], a, b) for a, b in zip(qs, qs[1:])]
    return store, pairs


def _leaf(store: SyntheticStore, labels: dict):
    return next(leaf for leaf in store.leaves if " > ".join(leaf.path) == labels["intent_leaf"])


def test_each_reformulation_kind_does_what_it_says():
    _, pairs = _reformulations(specialization=1.0)
    added = [len(b) == len(a) + 1 and set(a) <= set(b) for _, a, b in pairs]
    assert len(pairs) > 100 and np.mean(added) > 0.8
    _, pairs = _reformulations(generalization=1.0)
    dropped = [len(b) == len(a) - 1 and set(b) <= set(a) for _, a, b in pairs if len(a) > 1]
    assert len(dropped) > 50 and all(dropped)
    store, pairs = _reformulations(substitution=1.0)
    swapped = [len(a) == len(b) and len(set(a) ^ set(b)) == 2 for _, a, b in pairs]
    assert np.mean(swapped) > 0.6
    for labels, a, b in pairs:  # a swapped noun is the leaf's other noun
        nouns = _leaf(store, labels).nouns
        if len(a) == len(b) and len(set(a) ^ set(b)) == 2 and set(a) - set(b) <= set(nouns):
            assert set(b) - set(a) <= set(nouns)
    for rate in (1.0, 0.0):  # 0.0: all rates 0, every next query is the same intent worded afresh
        store, pairs = _reformulations(new_intent=rate)
        j, related, expected = 0, [], []
        for k, (labels, _, b) in enumerate(pairs):
            j = j + 1 if k and pairs[k - 1][0] is labels else 0  # index of the reformulation in its session
            leaf = _leaf(store, labels)
            others = store._parent_leaves[leaf.parent]
            nouns = {n for i in others if i != leaf.index for n in store.leaves[i].nouns}
            related.append(bool(set(b) & nouns))
            expected.append(rate == 1.0 and j % 2 == 0)  # a related intent, then back to the intent, ...
        assert len(pairs) > 100 and related == expected


def test_the_mix_makes_the_next_query_less_of_a_copy(sessions):
    from session_transformers.data.synthetic.writing import summarize

    store_old = SyntheticStore(SyntheticStoreConfig(query_reformulation="refine"))
    mix = summarize(sessions[:1500], SyntheticStore(SyntheticStoreConfig()))
    old = summarize(list(store_old.iter_sessions(0, 1500)), store_old)
    assert mix["keyword_reformulations"] > 1000
    assert (
        mix["reformulation_previous_plus_one_word_share"]
        < old["reformulation_previous_plus_one_word_share"] - 0.15
    )
    assert mix["reformulation_jaccard_mean"] < old["reformulation_jaccard_mean"] - 0.1
    assert mix["reformulation_words_seen_share"] < old["reformulation_words_seen_share"] - 0.1


# -- sessions ----------------------------------------------------------------------------------------------


def test_lengths_purchases_and_query_kinds(store, sessions):
    lengths = np.array([len(s["events"]) for s in sessions])
    assert 5 <= lengths.mean() <= 8 and (lengths > 30).sum() > 0
    bought = np.mean([s["labels"]["purchased"] for s in sessions])
    assert abs(bought - store.config.purchase_rate) < 0.04
    subjects = [{ev["subject"] for ev in s["events"]} for s in sessions]
    assert np.mean(["product_query" in s for s in subjects]) > 0.05
    assert np.mean(["image_query" in s for s in subjects]) > 0.05
    actions = Counter(ev["action"] for s in sessions for ev in s["events"])
    assert set(actions) == {"search", "view", "click", "add_to_cart", "purchase"}
    assert all(ev["action"] == "search" for s in sessions for ev in s["events"] if ev["subject"] != "item")


def test_session_behaviour(store, sessions):
    refine = shared = 0
    for s in sessions:
        qs = [set(ev["query"].split()) for ev in s["events"] if ev["subject"] == "keyword_query"]
        for a, b in zip(qs, qs[1:]):
            refine += 1
            shared += bool(a & b)
    assert shared / refine > 0.6  # later queries refine earlier ones
    brands = {b.lower() for b in store.brands}
    assert (
        sum(ev["query"] in brands for s in sessions for ev in s["events"] if ev["subject"] == "keyword_query")
        > 20
    )
    titles = {i: r["title"].lower() for i, r in zip(store.item_ids, store.catalogue)}
    for s in sessions[:500]:
        seen = [titles[ev["item_id"]] for ev in s["events"] if ev["subject"] == "item"]
        for ev in s["events"]:
            if ev["subject"] == "product_query":
                assert any(ev["query"] in " ".join(tokenize(t)) for t in seen)
    repeated = np.mean(
        [
            max(Counter(e["item_id"] for e in s["events"] if e["action"] == "view").values(), default=0) > 1
            for s in sessions
        ]
    )
    assert repeated > 0.1
    for s in sessions:
        lab = s["labels"]
        if lab["purchased"]:
            assert (
                s["events"][-1]["action"] == "purchase"
                and s["events"][-1]["item_id"] == lab["purchased_item_id"]
            )
            assert lab["intent_leaf"].startswith(lab["intent_parent"] + " > ")
            assert {a["name"] for a in lab["purchased_attributes"]} >= {"colour", "size", "pattern"}


def test_cut_labels_known_answers():
    session = {
        "session_id": "s",
        "events": [
            query_event("search", "red shoe", 1.0),
            item_event("view", "A", 2.0),
            image_event("search", [0.0, 1.0], 3.0),
            query_event("search", "shoe by zed", 4.0, product=True),
            item_event("add_to_cart", "B", 5.0),
            item_event("purchase", "B", 6.0),
        ],
    }
    assert cut_labels(session, 0) == {
        "remaining_length": 6,
        "next_item_id": "A",
        "next_query": "red shoe",
        "purchased_after": True,
    }
    assert cut_labels(session, 2) == {
        "remaining_length": 4,
        "next_item_id": "B",
        "next_query": "shoe by zed",
        "purchased_after": True,
    }
    assert cut_labels(session, 5) == {
        "remaining_length": 1,
        "next_item_id": "B",
        "next_query": None,
        "purchased_after": True,
    }
    assert cut_labels(session, 6) == {
        "remaining_length": 0,
        "next_item_id": None,
        "next_query": None,
        "purchased_after": False,
    }
    with pytest.raises(ValueError, match="position must be in \\[0, 6\\].*got 7"):
        cut_labels(session, 7)


# -- signal: the claims of the papers are testable on this data ----------------------------------------------


def _leaf_word_profile(store):
    """p(leaf | word) from catalogue text: a word-overlap leaf classifier that sees text only."""
    vocab: dict[str, int] = {}
    pairs = []
    for rec in store.catalogue:
        k = store.item_leaf(rec["item_id"])
        for w in set(
            tokenize(f"{rec['title']} {rec['description']} {rec['brand']} {' '.join(rec['category'])}")
        ):
            pairs.append((vocab.setdefault(w, len(vocab)), k))
    m = np.zeros((len(vocab), len(store.leaves)))
    np.add.at(m, tuple(np.array(pairs).T), 1.0)
    return vocab, m / m.sum(1, keepdims=True)


def _predict(words, vocab, m) -> int:
    ids = [vocab[w] for w in words if w in vocab]
    return int(m[ids].sum(0).argmax()) if ids else -1


def test_signal_intent_whole_session_text_and_ids(store, sessions):
    leaf_of = {" > ".join(c): k for k, c in enumerate(store.categories)}
    buyers = [s for s in sessions if s["labels"]["purchased"]]
    target = np.array([store.item_leaf(s["labels"]["purchased_item_id"]) for s in buyers])
    # (a) the hidden intent predicts the purchased leaf far better than popularity
    intent = np.array([leaf_of[s["labels"]["intent_leaf"]] for s in buyers])
    popular = Counter(target.tolist()).most_common(1)[0][1] / len(target)
    assert (intent == target).mean() > 0.9 > 5 * popular
    # (b) all queries before the cart beat the last query alone
    vocab, m = _leaf_word_profile(store)
    all_q, last_q = [], []
    for s, y in zip(buyers, target):
        qs = [ev["query"] for ev in s["events"][: _cut(s)] if ev["subject"] == "keyword_query"]
        if len(qs) >= 2:
            all_q.append(_predict([w for q in qs for w in tokenize(q)], vocab, m) == y)
            last_q.append(_predict(tokenize(qs[-1]), vocab, m) == y)
    assert len(all_q) > 150
    assert np.mean(all_q) > np.mean(last_q) + 0.05, (np.mean(all_q), np.mean(last_q))
    # (c) text alone (all queries) and IDs alone (item co-occurrence learned on half the sessions) carry signal
    assert np.mean(all_q) > 0.5 > 5 * popular
    half = len(buyers) // 2
    counts: dict[str, Counter] = {}
    for s, y in zip(buyers[:half], target[:half]):
        for ev in s["events"][: _cut(s)]:
            if ev["subject"] == "item":
                counts.setdefault(ev["item_id"], Counter())[int(y)] += 1
    hits = []
    for s, y in zip(buyers[half:], target[half:]):
        votes: Counter = Counter()
        for ev in s["events"][: _cut(s)]:
            votes.update(counts.get(ev["item_id"] or "", {}))
        hits.append(bool(votes) and votes.most_common(1)[0][0] == y)
    assert np.mean(hits) > 3 * popular, (np.mean(hits), popular)


# -- command line ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_cli_writes_loadable_files(tmp_path, fmt, capsys):
    main(["--out", str(tmp_path), "--tiny", "--num-sessions", "30", "--format", fmt, "--stats"])
    printed = capsys.readouterr().out
    assert "events_per_session_mean" in printed and "vocabulary_size" in printed
    catalogue = load_catalogue(tmp_path / f"catalogue.{fmt}", spec=SchemaSpec(image_dim=16))
    sessions = load_sessions(tmp_path / f"sessions.{fmt}", item_ids=set(catalogue["item_id"]))
    assert len(catalogue) == 96 and len(sessions) == 30
    if fmt == "jsonl":
        labels = [json.loads(line) for line in (tmp_path / "session_labels.jsonl").read_text().splitlines()]
        assert [r["session_id"] for r in labels] == sessions["session_id"]
        assert all("intent_leaf" in r["labels"] for r in labels)
    store = SyntheticStore(SyntheticStoreConfig.tiny(num_sessions=30))
    assert sessions[3]["events"][0]["action"] == store.session(3)["events"][0]["action"]


def test_trainers_query_reformulation_flag_builds_and_records_the_store():
    import argparse

    from session_transformers.hub.cards import _data_text
    from session_transformers.provenance import dataset_record
    from session_transformers.trainer_utils import add_data_arguments, synthetic_store

    parser = argparse.ArgumentParser()
    add_data_arguments(parser)
    for flags, expected in (([], "mix"), (["--query-reformulation", "refine"], "refine")):
        args = parser.parse_args(["--store-preset", "tiny", *flags])
        assert synthetic_store(args).config.query_reformulation == expected
        record = dataset_record(args)
        assert record["generated"]["query_reformulation"] == expected
        assert f"query reformulation `{expected}`" in _data_text(record)
    old_record = {"loader": "synthetic", "generated": {"store_preset": "default", "seed": 42}}
    assert "query reformulation `refine`" in _data_text(old_record)  # written before the mix
