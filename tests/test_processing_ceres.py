"""CERES processor and masking collator: tokens, layout, save/load, masking rates."""

import pytest
import torch
from transformers import AutoConfig, AutoProcessor, BertTokenizerFast

from session_transformers.data.schema import image_event, item_event, query_event
from session_transformers.models.ceres import CeresConfig, CeresMaskingCollator, CeresProcessor
from session_transformers.models.ceres.processing_ceres import catalogue_attribute_names, iter_corpus

AutoConfig.register("ceres", CeresConfig, exist_ok=True)
AutoProcessor.register(CeresConfig, CeresProcessor, exist_ok=True)


def make_catalogue() -> dict:
    def product(pid, title, desc, cat, brand, attrs):
        return {
            "item_id": pid,
            "title": title,
            "description": desc,
            "category": cat,
            "brand": brand,
            "attributes": [{"name": n, "value": v} for n, v in attrs],
            "image": None,
        }

    return {
        "razor": product(
            "razor",
            "Harrys Razor five blade",
            "a sharp razor for a close shave every morning",
            ["care", "shaving"],
            "Harrys",
            [("color", "blue"), ("product type", "razor")],
        ),
        "dvd": product(
            "dvd",
            "Harry Potter DVD",
            "the first film of the wizard series on disc",
            ["media", "film"],
            "Warner",
            [("product type", "dvd")],
        ),
        "book": product("book", "Harry Potter Book", None, ["media", "books"], None, [("color", "red")]),
        "mug": product(
            "mug",
            "Coffee mug red",
            "a large red mug for coffee and tea",
            ["home", "kitchen"],
            "Chemex",
            [("color", "red"), ("material", "ceramic")],
        ),
    }


def make_sessions() -> list[dict]:
    return [
        {
            "session_id": "queries",
            "events": [
                query_event("search", "harry"),
                item_event("view", "razor"),
                query_event("search", "harry potter"),
                item_event("view", "dvd"),
                item_event("view", "dvd"),
                query_event("search", "harry potter book"),
                item_event("purchase", "book"),
            ],
        },
        {"session_id": "single", "events": [item_event("view", "mug")]},
        {"session_id": "no_query", "events": [item_event("view", "mug"), item_event("add_to_cart", "razor")]},
        {
            "session_id": "image",
            "events": [
                image_event("search", [0.1, 0.2]),
                query_event("search", "red coffee mug"),
                item_event("click", "mug"),
            ],
        },
    ]


def make_processor(**kwargs) -> CeresProcessor:
    cat = make_catalogue()
    return CeresProcessor.train_tokenizer(
        iter_corpus(make_sessions(), cat),
        vocab_size=300,
        attribute_names=catalogue_attribute_names(cat),
        **kwargs,
    )


@pytest.fixture(scope="module")
def processor():
    return make_processor(max_product_sequence_length=12)


def _tokens(processor, ids):
    return [t for t in processor.tokenizer.convert_ids_to_tokens(ids.tolist()) if t != "[PAD]"]


def test_special_tokens(processor):
    vocab = processor.tokenizer.get_vocab()
    for token in [
        "[SEARCH]",
        "[TITLE]",
        "[DESCRIPTION]",
        "[BRAND]",
        "[CATEGORY]",
        "[COLOR]",
        "[PRODUCT_TYPE]",
        "[MATERIAL]",
        "[MASK]",
        "[PAD]",
    ]:
        assert token in vocab
    # specials are matched whole, before lowercasing
    assert processor.tokenizer.tokenize("[COLOR] Red") == ["[COLOR]", "red"]


def test_layout_of_queries_products_and_graph(processor):
    cat = make_catalogue()
    batch = processor(make_sessions()[:2], cat)
    assert set(batch) == {
        "input_ids",
        "attention_mask",
        "sequence_item_index",
        "item_session_index",
        "item_position",
        "edge_index",
        "edge_type",
    }
    # session 0: 6 items (3 queries, razor, dvd, book); session 1: the mug
    assert batch["item_session_index"].tolist() == [0] * 6 + [1]
    assert batch["item_position"].tolist() == [0, 1, 2, 3, 4, 5, 0]
    rows = {i: [r for r, o in enumerate(batch["sequence_item_index"].tolist()) if o == i] for i in range(7)}
    assert _tokens(processor, batch["input_ids"][rows[0][0]]) == ["[SEARCH]", "harry"]
    razor = [_tokens(processor, batch["input_ids"][r]) for r in rows[1]]
    assert (
        razor[0][0] == "[TITLE]" and "[DESCRIPTION]" in razor[0] and len(razor[0]) == 12
    )  # cut to max length
    assert [seq[0] for seq in razor] == ["[TITLE]", "[BRAND]", "[CATEGORY]", "[COLOR]", "[PRODUCT_TYPE]"]
    book = [_tokens(processor, batch["input_ids"][r]) for r in rows[5]]
    assert [seq[0] for seq in book] == ["[TITLE]", "[CATEGORY]", "[COLOR]"]  # no description, no brand
    assert "[DESCRIPTION]" not in book[0]
    assert batch["attention_mask"].sum(1).tolist() == [len(_tokens(processor, r)) for r in batch["input_ids"]]
    # the graph of the second session is one node; its edges never touch it
    assert (batch["edge_index"] < 6).all()


def test_image_queries_are_skipped(processor):
    batch = processor(make_sessions()[3], make_catalogue())
    assert batch["item_session_index"].tolist() == [0, 0]  # the text query and the product; no image node
    assert batch["item_position"].tolist() == [0, 1]


def test_candidates_are_deduplicated_and_labelled(processor):
    cat = make_catalogue()
    batch = processor(
        make_sessions()[:3],
        cat,
        targets=[
            {"item_id": "book"},
            [{"query": "red mug"}, {"item_id": "book"}],
            {"attribute": "color", "value": "red"},
        ],
        negatives=[{"item_id": "razor"}, {"item_id": "book"}],
    )
    assert batch["labels"].tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0]]
    assert batch["candidate_sequence_index"].max().item() == 3
    entity = batch["candidate_input_ids"][batch["candidate_sequence_index"] == 2][0]
    assert _tokens(processor, entity) == ["[COLOR]", "red"]


def test_session_cut_to_most_recent_items():
    proc = make_processor(max_session_items=2)
    batch = proc(make_sessions()[0], make_catalogue())
    first = batch["input_ids"][batch["sequence_item_index"] == 0][0]
    assert _tokens(processor=proc, ids=first)[0] == "[SEARCH]"  # the last query, then the book
    assert batch["item_position"].tolist() == [0, 1]
    assert sorted(batch["edge_index"].T.tolist()) == [[0, 1], [1, 0]]


def test_unknown_attribute(processor):
    cat = make_catalogue()
    cat["mug"]["attributes"].append({"name": "pattern", "value": "striped"})
    with pytest.raises(ValueError, match=r"\[PATTERN\].*add_attribute_names"):
        processor(make_sessions()[1], cat)
    proc = make_processor()
    with pytest.warns(UserWarning, match="resize_token_embeddings"):
        assert proc.add_attribute_names(["pattern", "color"]) == 1
    assert proc.tokenizer.tokenize("[PATTERN] x")[0] == "[PATTERN]"
    assert proc(make_sessions()[1], cat)["input_ids"].size(0) == 6
    skipping = make_processor(on_unknown_attribute="skip")
    assert skipping(make_sessions()[1], cat)["input_ids"].size(0) == 5


def test_only_image_session_names_the_session(processor):
    with pytest.raises(ValueError, match="'img'"):
        processor({"session_id": "img", "events": [image_event("search", [1.0])]})


def test_save_load_round_trip(tmp_path):
    proc = make_processor(max_query_length=7, max_session_items=5)
    proc.save_pretrained(tmp_path)
    for loaded in (CeresProcessor.from_pretrained(tmp_path), AutoProcessor.from_pretrained(tmp_path)):
        assert type(loaded) is CeresProcessor
        assert (loaded.max_query_length, loaded.max_session_items) == (7, 5)
        a, b = proc(make_sessions(), make_catalogue()), loaded(make_sessions(), make_catalogue())
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_from_bert_tokenizer(tmp_path):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "harry", "potter", "red", "mug", "##s"]
    BertTokenizerFast(vocab={t: i for i, t in enumerate(vocab)}).save_pretrained(tmp_path / "bert")
    proc = CeresProcessor.from_bert_tokenizer(str(tmp_path / "bert"), attribute_names=["color"])
    assert len(proc.tokenizer) == len(vocab) + 6  # [SEARCH] [TITLE] [DESCRIPTION] [BRAND] [CATEGORY] [COLOR]
    batch = proc({"session_id": "s", "events": [query_event("search", "Harrys red mug")]})
    assert _tokens(proc, batch["input_ids"][0]) == ["[SEARCH]", "harry", "##s", "red", "mug"]


def _big_batch(processor, n=400):
    cat = make_catalogue()
    return processor([make_sessions()[0]] * n, cat)


def test_masking_rates(processor):
    batch = _big_batch(processor)
    collator = CeresMaskingCollator(processor, generator=torch.Generator().manual_seed(0))
    out = collator.mask(batch)
    ids, labels = batch["input_ids"], out["labels"]
    chosen = labels != -100
    special = torch.isin(ids, collator.special_ids) | ~batch["attention_mask"].bool()
    is_long = torch.isin(ids[:, 0], collator.long_ids)
    # long sequences: 15% of their text tokens
    long_rate = chosen[is_long].sum() / (~special[is_long]).sum()
    assert abs(long_rate.item() - 0.15) < 0.02
    # short sequences: half of them masked, each masked one has round(n/2) (>= 1) tokens chosen
    short = ~is_long
    masked_seq = chosen[short].any(1)
    assert abs(masked_seq.float().mean().item() - 0.5) < 0.04
    n = (~special[short]).sum(1)
    expected_k = torch.clamp(torch.round(n * 0.5), min=1)
    assert torch.equal(chosen[short][masked_seq].sum(1), expected_k[masked_seq].long())
    # 80% [MASK], 10% random, 10% kept
    new = out["input_ids"][chosen]
    mask_share = (new == processor.tokenizer.mask_token_id).float().mean().item()
    kept_share = (new == ids[chosen]).float().mean().item()
    assert abs(mask_share - 0.8) < 0.03 and 0.07 < kept_share < 0.16
    # labels carry the original ids; special tokens and padding are never chosen or replaced
    assert torch.equal(labels[chosen], ids[chosen])
    assert not chosen[special].any()
    assert torch.equal(out["input_ids"][special], ids[special])
    assert not torch.isin(
        out["input_ids"][chosen & (out["input_ids"] != ids)],
        collator.special_ids[collator.special_ids != processor.tokenizer.mask_token_id],
    ).any()


def test_masking_is_seedable(processor):
    batch = _big_batch(processor, 20)
    outs = [
        CeresMaskingCollator(processor, generator=torch.Generator().manual_seed(3)).mask(batch)
        for _ in range(2)
    ]
    assert torch.equal(outs[0]["input_ids"], outs[1]["input_ids"]) and torch.equal(
        outs[0]["labels"], outs[1]["labels"]
    )
    other = CeresMaskingCollator(processor, generator=torch.Generator().manual_seed(4)).mask(batch)
    assert not torch.equal(outs[0]["labels"], other["labels"])


def test_seeded_masks_are_a_function_of_the_batch_sessions(processor):
    cat = make_catalogue()
    sessions = [{**make_sessions()[0], "session_id": f"s{i}"} for i in range(30)]
    collator = CeresMaskingCollator(processor, cat, seed=7)
    state = torch.get_rng_state()
    first = collator(sessions)
    assert torch.equal(torch.get_rng_state(), state)  # nothing drawn from the global RNG
    torch.rand(5)  # whatever runs in between
    again = collator(sessions)
    assert torch.equal(first["input_ids"], again["input_ids"]) and torch.equal(
        first["labels"], again["labels"]
    )
    assert (first["labels"] != -100).any()
    # other session ids or another seed: other masks; extra row keys (e.g. "evaluate") are ignored
    renamed = [{**s, "session_id": f"t{i}"} for i, s in enumerate(sessions)]
    assert not torch.equal(collator(renamed)["labels"], first["labels"])
    assert not torch.equal(CeresMaskingCollator(processor, cat, seed=8)(sessions)["labels"], first["labels"])
    flagged = [{**s, "evaluate": True} for s in sessions]
    assert torch.equal(collator(flagged)["labels"], first["labels"])
    with pytest.raises(ValueError, match="generator or a seed"):
        CeresMaskingCollator(processor, cat, generator=torch.Generator(), seed=1)


def test_training_masks_are_seeded_per_epoch_and_replay_after_any_interruption(processor):
    # the recipe's training collator: seeded, with the epoch folded in by the training loop (set_epoch). A resumed
    # run re-collates the batch that the loader had prefetched before the checkpoint: it must get the same masks.
    cat = make_catalogue()
    sessions = [{**make_sessions()[0], "session_id": f"s{i}"} for i in range(30)]
    collator = CeresMaskingCollator(processor, cat, seed=8)
    state = torch.get_rng_state()
    epoch0 = collator(sessions)["labels"]
    collator.set_epoch(1)
    epoch1 = collator(sessions)["labels"]
    assert not torch.equal(epoch0, epoch1)  # the same sessions are masked afresh in another epoch
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left to dropout
    resumed = CeresMaskingCollator(processor, cat, seed=8)
    resumed.set_epoch(1)
    assert torch.equal(resumed(sessions)["labels"], epoch1)
    resumed.set_epoch(0)
    assert torch.equal(resumed(sessions)["labels"], epoch0)


def test_collator_on_raw_sessions_and_config_rates(processor):
    config = CeresConfig(
        vocab_size=len(processor.tokenizer),
        hidden_size=32,
        num_attention_heads=4,
        mlm_probability=0.0,
        short_sequence_mask_probability=1.0,
    )
    collator = CeresMaskingCollator(
        processor, make_catalogue(), config=config, generator=torch.Generator().manual_seed(0)
    )
    out = collator(make_sessions())
    is_long = torch.isin(out["input_ids"][:, 0], collator.long_ids)
    assert (out["labels"][is_long] == -100).all()
    assert (out["labels"][~is_long] != -100).any(1).all()


# --- bad records (benchmarks/bad_inputs.py): refused by name, never a foreign exception ----------------------------


def test_malformed_sessions_are_refused_naming_the_session_and_field(processor):
    """Used to crash with AttributeError / TypeError / an unnamed KeyError; now InvalidRecordError."""
    from session_transformers.data.schema import InvalidRecordError

    cat = make_catalogue()
    good = [query_event("search", "harry"), item_event("view", "dvd")]
    for session, field in [
        (None, "events"),
        ({"session_id": "a", "events": "view dvd"}, "events"),
        ({"session_id": "b", "events": [["view", "dvd"]]}, "events[0]"),
        ({"session_id": "c", "events": [good[0], {**good[1], "item_id": 5}]}, "events[1].item_id"),
        ({"session_id": "d", "events": [{**good[0], "query": ["harry"]}, good[1]]}, "events[0].query"),
        ({"session_id": "e", "events": [{**good[0], "query": "   "}]}, "events[0].query"),
        ({"session_id": "f", "events": [good[0], {**good[1], "subject": "video"}]}, "events[1].subject"),
        ({"session_id": "g", "events": [{**good[0], "query": "harry \ud800"}]}, "events[0].query"),
        ({"session_id": "h", "events": [image_event("search", [1.0])]}, "events"),
    ]:
        with pytest.raises(InvalidRecordError) as err:
            processor([make_sessions()[1], session], cat)
        assert err.value.field == field and err.value.index == 1
        if isinstance(session, dict):
            assert repr(session["session_id"]) in str(err.value)
    # the masking collator too, and a session ID that is not text (its masks hash it)
    collator = CeresMaskingCollator(processor, cat, seed=0)
    with pytest.raises(InvalidRecordError, match="field 'events'"):
        collator([None])
    with pytest.raises(InvalidRecordError, match="field 'session_id'"):
        collator([{"session_id": "s\ud800", "events": good}])


def test_item_missing_from_the_catalogue_names_the_session_event_and_field(processor):
    session = {"session_id": "x", "events": [item_event("view", "mug"), item_event("view", "nope")]}
    with pytest.raises(
        KeyError, match=r"session 'x': event 1: field 'item_id': item 'nope' is not in the catalogue"
    ):
        processor(session, make_catalogue())


def test_catalogue_fields_of_the_wrong_type_are_refused_naming_the_item(processor):
    """A category string used to be joined letter by letter (``"a > b > c"``); a number title crashed the
    tokenizer; a list given as the catalogue crashed on an item without a string ID."""
    import re

    from session_transformers.data.schema import InvalidRecordError

    session = make_sessions()[1]  # views the mug
    for change, field in [
        ({"title": 5}, "title"),
        ({"category": "abc"}, "category"),
        ({"brand": ["x"]}, "brand"),
        ({"attributes": [{"name": 5, "value": "red"}]}, "attributes[0]"),
        ({"attributes": [{"name": "!!", "value": "red"}]}, "attributes"),  # no letter to make a token of
        ({"description": "a \udc80 mug"}, "description"),
    ]:
        cat = make_catalogue()
        cat["mug"] = {**cat["mug"], **change}
        with pytest.raises(ValueError, match=f"catalogue item 'mug': field '{re.escape(field)}'"):
            processor(session, cat)
    with pytest.raises(InvalidRecordError, match=r"catalogue: record 1: field 'item_id'"):
        processor(session, [make_catalogue()["mug"], {"item_id": None, "title": "x"}])


def test_a_long_session_is_cut_before_its_graph_is_built():
    """10,000 queries used to build 50 million query-query edges before keeping the last 16 nodes; the graph of
    the recent events is the same as the full graph cut to its last nodes."""
    from session_transformers.graphs.ceres import ceres_session_graph

    proc = make_processor(max_session_items=16)
    products = ["razor", "dvd", "book", "mug"]
    events = []
    for j in range(60):  # products recur (a product first seen long ago stays an old node)
        events.append(query_event("search", f"harry {j}") if j % 3 else item_event("view", products[j % 4]))
        if j % 5 == 0:
            events.append(item_event("purchase", products[(j // 5) % 4]))
    session = {"session_id": "long", "events": events}
    full, cut = ceres_session_graph(events), proc.session_graph(session)
    n, keep = full.num_nodes, 16
    kept = (full.edge_index >= n - keep).all(0)
    assert cut.num_nodes == keep and cut.item_keys == full.item_keys[n - keep :]
    assert torch.equal(cut.edge_index, full.edge_index[:, kept] - (n - keep))
    assert torch.equal(cut.edge_type, full.edge_type[kept])
    huge = {"session_id": "huge", "events": [query_event("search", f"q {j}") for j in range(10_000)]}
    graph = proc.session_graph(huge)
    assert graph.num_nodes == keep and graph.edge_index.size(1) == keep * (keep - 1) // 2


def test_old_names_still_work_with_a_deprecation_warning():
    """add_attribute_types (CERES's old name) and UbmForNextItem (UBM's old head name) stay one release, warning."""
    from session_transformers.models.ubm import UbmConfig, UbmForNextItem, UbmForNextItemPrediction

    proc = make_processor()
    with pytest.warns(FutureWarning, match="add_attribute_names"):
        assert proc.add_attribute_types(["finish"]) == 1
    assert proc.tokenizer.tokenize("[FINISH] x")[0] == "[FINISH]"
    config = UbmConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    with pytest.warns(FutureWarning, match="UbmForNextItemPrediction"):
        model = UbmForNextItem(config)
    assert isinstance(model, UbmForNextItemPrediction)
