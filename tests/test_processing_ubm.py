"""UBM processor and the five augmentations: token layout, limits, action table, save/load, seeded collators."""

import pytest
import torch
from transformers import AutoConfig, AutoProcessor

from session_transformers.data.schema import image_event, item_event, query_event
from session_transformers.models.ubm import (
    BehaviourReordering,
    DropoutMasking,
    TokenMasking,
    UbmConfig,
    UbmProcessor,
    UbmStage1Collator,
    UbmStage2Collator,
    next_item_pairs,
)
from session_transformers.models.ubm.processing_ubm import catalogue_attribute_names, iter_corpus

AutoConfig.register("ubm", UbmConfig, exist_ok=True)
AutoProcessor.register(UbmConfig, UbmProcessor, exist_ok=True)


def make_catalogue() -> dict:
    def product(pid, title, cat, brand, attrs):
        return {
            "item_id": pid,
            "title": title,
            "description": "ignored by UBM",
            "category": cat,
            "brand": brand,
            "attributes": [{"name": n, "value": v} for n, v in attrs],
            "image": None,
        }

    return {
        "case": product("case", "iphone case clear", ["phones", "cases"], "apple", [("colour", "clear")]),
        "case2": product(
            "case2", "iphone case red leather", ["phones", "cases"], "apple", [("colour", "red")]
        ),
        "strap": product("strap", "watch strap sport", ["watches", "straps"], "apple", [("size", "large")]),
        "mug": product(
            "mug", "coffee mug red", ["home", "kitchen"], None, [("colour", "red"), ("size", "large")]
        ),
    }


def make_sessions() -> list[dict]:
    return [
        {
            "session_id": "buy",
            "events": [
                query_event("search", "iphone case"),
                item_event("click", "case"),
                item_event("view", "case"),
                item_event("view", "case2"),
                item_event("add_to_cart", "case2"),
                item_event("purchase", "case2"),
            ],
        },
        {"session_id": "single", "events": [item_event("view", "mug")]},
        {
            "session_id": "image",
            "events": [
                image_event("search", [0.1, 0.2]),
                query_event("search", "strap", product=True),
                item_event("view", "strap"),
            ],
        },
        {
            "session_id": "repeat",
            "events": [item_event("view", "mug"), item_event("view", "mug"), item_event("view", "strap")],
        },
    ]


def make_processor(**kwargs) -> UbmProcessor:
    catalogue = make_catalogue()
    texts = list(iter_corpus(make_sessions(), catalogue)) * 3
    return UbmProcessor.train_tokenizer(
        texts, vocab_size=300, attribute_names=catalogue_attribute_names(catalogue), **kwargs
    )


PROCESSOR = make_processor()


def tokens(processor, ids) -> list[str]:
    return processor.decode_interaction(ids.tolist() if torch.is_tensor(ids) else ids).split()


def test_interaction_layout_and_click_folds_into_view():
    batch = PROCESSOR(make_sessions()[0], make_catalogue())
    rows = [tokens(PROCESSOR, r) for r in batch["input_ids"]]
    assert rows[0] == ["[CLS]", "[SEARCH]", "iphone", "case", "[SEP]"]
    assert rows[1][:3] == ["[CLS]", "[VIEW]", "[TITLE]"]  # the click is a [VIEW]
    assert rows[1] == rows[2]  # click and view of the same item are the same interaction
    body = rows[1]
    for marker in ("[CATEGORY]", "[BRAND]", "[COLOUR]"):
        assert marker in body
    assert body[body.index("[COLOUR]") + 1] == "clear"
    assert "ignored" not in body  # no description
    assert [r[1] for r in rows[3:]] == ["[VIEW]", "[ADD]", "[BUY]"]
    assert batch["interaction_mask"].tolist() == [[True] * 6]


def test_batch_is_flat_and_padded_to_the_longest_interaction():
    sessions = make_sessions()
    batch = PROCESSOR(sessions, make_catalogue())
    counts = [6, 1, 2, 3]  # the image query is dropped
    assert batch["interaction_mask"].sum(1).tolist() == counts
    assert batch["input_ids"].shape[0] == sum(counts)
    longest = int(batch["attention_mask"].sum(1).max())
    assert batch["input_ids"].shape[1] == longest
    assert batch["interaction_mask"].shape == (4, 6)


def test_limits_title_interaction_and_session_length():
    catalogue = make_catalogue()
    long_title = " ".join(["case"] * 50)
    catalogue["case"]["title"] = long_title
    proc = make_processor(max_title_length=4, max_interaction_length=12)
    row = tokens(proc, proc.encode_session(make_sessions()[0], catalogue)[1])
    assert len(row) == 12 and row[-1] == "[SEP]"
    assert row[3:7] == ["case"] * 4 and row[7] == "[CATEGORY]"  # title cut to 4 tokens
    proc = make_processor(max_interactions=3)
    encoded = proc.encode_session(make_sessions()[0], catalogue)
    assert len(encoded) == 3  # the last 3 interactions
    assert tokens(proc, encoded[-1])[1] == "[BUY]"


def test_changing_the_action_table(tmp_path):
    proc = make_processor()
    with pytest.warns(UserWarning, match="resize_token_embeddings"):
        assert proc.set_action_token("click", "[CLICK]") == 1
    row = tokens(proc, proc(make_sessions()[0], make_catalogue())["input_ids"][1])
    assert row[1] == "[CLICK]"
    proc.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert type(loaded) is UbmProcessor
    assert loaded.action_table["click"] == "[CLICK]"
    assert tokens(loaded, loaded(make_sessions()[0], make_catalogue())["input_ids"][1])[1] == "[CLICK]"


def test_save_load_round_trip(tmp_path):
    PROCESSOR.save_pretrained(tmp_path)
    assert (tmp_path / "tokenizer.json").exists() and (tmp_path / "processor_config.json").exists()
    assert not list(tmp_path.glob("*.pkl")) and not list(tmp_path.glob("*.bin"))
    loaded = UbmProcessor.from_pretrained(tmp_path)
    a = PROCESSOR(make_sessions(), make_catalogue())
    b = loaded(make_sessions(), make_catalogue())
    for k in a:
        assert torch.equal(a[k], b[k])
    assert loaded.max_interactions == PROCESSOR.max_interactions


def test_bad_input_names_the_record_and_field():
    catalogue = make_catalogue()
    with pytest.raises(KeyError, match=r"session 'x': event 1: field 'item_id'"):
        PROCESSOR(
            {"session_id": "x", "events": [item_event("view", "mug"), item_event("view", "nope")]}, catalogue
        )
    with pytest.raises(ValueError, match=r"session 'y': event 0: field 'action'"):
        PROCESSOR({"session_id": "y", "events": [item_event("wishlist", "mug")]}, catalogue)
    with pytest.raises(ValueError, match=r"session 'z'.*no text interaction"):
        PROCESSOR({"session_id": "z", "events": [image_event("search", [0.1])]}, catalogue)
    bad = {
        **catalogue,
        "odd": {**catalogue["mug"], "item_id": "odd", "attributes": [{"name": "weight", "value": "1kg"}]},
    }
    with pytest.raises(ValueError, match="weight"):
        PROCESSOR({"session_id": "w", "events": [item_event("view", "odd")]}, bad)


def test_bert_tokenizer_gets_the_ubm_tokens():

    import transformers  # noqa: F401

    from session_transformers.baselines import minilm_path

    path = minilm_path()
    if path is None:
        pytest.skip("MiniLM checkpoint not installed")
    proc = UbmProcessor.from_bert_tokenizer(str(path), attribute_names=["colour", "size"])
    assert len(proc.tokenizer) > 30522
    row = tokens(proc, proc(make_sessions()[0], make_catalogue())["input_ids"][4])
    assert row[:3] == ["[CLS]", "[ADD]", "[TITLE]"] and "[COLOUR]" in row


# --- augmentations -------------------------------------------------------------------------------------------


def _text_batch(n_rows: int = 400):
    sessions = [make_sessions()[0]] * (n_rows // 6 + 1)
    batch = PROCESSOR(sessions, make_catalogue())
    return batch["input_ids"], batch["attention_mask"]


def test_item_token_masking_rates_and_what_it_never_touches():
    ids, mask = _text_batch(3000)
    masking = TokenMasking(PROCESSOR, 0.10, 0.05, mask_actions=False)
    out = masking(ids, mask, torch.Generator().manual_seed(0))
    maskable = masking.maskable(ids, mask)
    changed = out != ids
    assert not changed[~maskable].any()  # [CLS], [SEP], actions, field tokens, padding untouched
    n = int(maskable.sum())
    to_mask = (out == PROCESSOR.tokenizer.mask_token_id) & maskable
    assert abs(int(to_mask.sum()) / n - 0.10) < 0.015
    replaced = changed & ~to_mask
    # random replacements (5%) sometimes draw the original token back: at most 5%, close to it
    assert 0.035 < int(replaced.sum()) / n <= 0.065
    assert not torch.isin(out[replaced], torch.tensor(PROCESSOR.special_token_ids)).any()


def test_action_and_item_token_masking_masks_actions_too():
    ids, mask = _text_batch(3000)
    actions = torch.isin(ids, torch.tensor(PROCESSOR.action_token_ids))
    item_only = TokenMasking(PROCESSOR, 0.10, 0.05, mask_actions=False)(
        ids, mask, torch.Generator().manual_seed(1)
    )
    assert torch.equal(item_only[actions], ids[actions])
    both = TokenMasking(PROCESSOR, 0.10, 0.05, mask_actions=True)(ids, mask, torch.Generator().manual_seed(1))
    share = float((both[actions] != ids[actions]).float().mean())
    assert 0.08 < share < 0.2
    random_actions = both[actions & (both != ids) & (both != PROCESSOR.tokenizer.mask_token_id)]
    assert torch.isin(random_actions, torch.tensor(PROCESSOR.action_token_ids)).all()


def test_masking_is_seeded():
    ids, mask = _text_batch(60)
    masking = TokenMasking(PROCESSOR, 0.5, 0.2, mask_actions=True)
    a = masking(ids, mask, torch.Generator().manual_seed(7))
    b = masking(ids, mask, torch.Generator().manual_seed(7))
    c = masking(ids, mask, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_masking_known_answer_with_all_or_nothing_rates():
    ids, mask = _text_batch(6)
    all_masked = TokenMasking(PROCESSOR, 1.0, 0.0)(ids, mask)
    maskable = TokenMasking(PROCESSOR).maskable(ids, mask)
    assert (all_masked[maskable] == PROCESSOR.tokenizer.mask_token_id).all()
    assert torch.equal(all_masked[~maskable], ids[~maskable])
    assert torch.equal(TokenMasking(PROCESSOR, 0.0, 0.0)(ids, mask), ids)


def test_behaviour_reordering_swaps_exactly_two():
    sessions = [list(range(6)), [9], list(range(2))]
    out = BehaviourReordering()(sessions, torch.Generator().manual_seed(3))
    assert out[1] == [9] and out[2] == [1, 0]
    moved = [i for i, v in enumerate(out[0]) if v != i]
    assert len(moved) == 2 and sorted(out[0]) == list(range(6))
    assert out[0][moved[0]] == moved[1] and out[0][moved[1]] == moved[0]
    again = BehaviourReordering()(sessions, torch.Generator().manual_seed(3))
    assert again == out


def test_next_item_pairing_known_answer():
    pairs = next_item_pairs(make_sessions())
    assert pairs == [
        {"item_id": "case", "next_item_id": "case2"},  # case -> case (a repeat) is left out
        {"item_id": "mug", "next_item_id": "strap"},
    ]


def test_dropout_masking_stacks_copies():
    batch = {"input_ids": torch.arange(6).view(2, 3)}
    out = DropoutMasking()(batch)
    assert out["input_ids"].shape == (4, 3) and torch.equal(out["input_ids"][2:], batch["input_ids"])


def test_stage1_collator_layout_and_seed():
    pairs = next_item_pairs(make_sessions())
    collate = UbmStage1Collator(
        PROCESSOR, make_catalogue(), UbmConfig(vocab_size=len(PROCESSOR.tokenizer)), seed=0
    )
    batch = collate(pairs)
    assert batch["item_input_ids"].shape[0] == 4
    assert tokens(PROCESSOR, batch["item_input_ids"][2])[:2] == ["[CLS]", "[TITLE]"]  # no action token
    assert torch.equal(collate(pairs)["masked_item_input_ids"], batch["masked_item_input_ids"])  # fixed views
    assert (batch["masked_item_input_ids"] != batch["item_input_ids"]).any()


def test_stage2_collator_views():
    catalogue = make_catalogue()
    config = UbmConfig(vocab_size=len(PROCESSOR.tokenizer), mask_token_probability=0.3)
    collate = UbmStage2Collator(PROCESSOR, catalogue, config, generator=torch.Generator().manual_seed(0))
    batch = collate(make_sessions())
    plain = PROCESSOR(make_sessions(), catalogue)
    assert torch.equal(batch["input_ids"], plain["input_ids"])
    assert batch["reordered_input_ids"].shape == batch["input_ids"].shape
    # reordering: the same multiset of rows within each session
    assert sorted(map(tuple, batch["reordered_input_ids"].tolist())) == sorted(
        map(tuple, batch["input_ids"].tolist())
    )
    assert not torch.equal(batch["reordered_input_ids"], batch["input_ids"])
    changed = batch["masked_input_ids"] != batch["input_ids"]
    assert changed.any() and not changed[batch["attention_mask"] == 0].any()


# --- bad records (benchmarks/bad_inputs.py): refused by name, never a foreign exception ----------------------------


def test_malformed_sessions_are_refused_naming_the_session_and_field():
    """Used to crash with AttributeError / TypeError / an unnamed KeyError; now InvalidRecordError."""
    from session_transformers.data.schema import InvalidRecordError

    catalogue = make_catalogue()
    good = [query_event("search", "iphone case"), item_event("view", "case")]
    for session, field in [
        (None, "events"),
        ({"session_id": "a", "events": "view case"}, "events"),
        ({"session_id": "b", "events": [["view", "case"]]}, "events[0]"),
        ({"session_id": "c", "events": [good[0], {**good[1], "item_id": ["case"]}]}, "events[1].item_id"),
        ({"session_id": "d", "events": [{**good[0], "query": 5}, good[1]]}, "events[0].query"),
        ({"session_id": "e", "events": [{**good[0], "query": "case \ud800"}]}, "events[0].query"),
    ]:
        with pytest.raises(InvalidRecordError) as err:
            PROCESSOR([make_sessions()[1], session], catalogue)
        assert err.value.field == field and err.value.index == 1
        if isinstance(session, dict):
            assert repr(session["session_id"]) in str(err.value)
    stage2 = UbmStage2Collator(PROCESSOR, catalogue, seed=0)
    with pytest.raises(InvalidRecordError, match="field 'events"):
        stage2([make_sessions()[1], {"session_id": "f", "events": [None]}])
    with pytest.raises(InvalidRecordError, match="field 'events'"):
        next_item_pairs([{"session_id": "g", "events": ["case", "case2"]}])
    # an unhashable action used to raise TypeError; a session without an ID is named by its place in the batch
    with pytest.raises(ValueError, match=r"session 0: event 0: field 'action'"):
        PROCESSOR({"session_id": None, "events": [{**good[1], "action": ["view"]}]}, catalogue)


def test_a_query_of_spaces_is_refused_not_encoded_as_an_empty_interaction():
    session = {"session_id": "q", "events": [{**query_event("search", "x"), "query": "   "}]}
    with pytest.raises(ValueError, match=r"session 'q': event 0: field 'query'"):
        PROCESSOR(session, make_catalogue())


def test_catalogue_fields_of_the_wrong_type_are_refused_naming_the_item():
    """A category string used to be joined letter by letter; a number title crashed the tokenizer."""
    import re

    from session_transformers.data.schema import InvalidRecordError

    session = make_sessions()[1]  # views the mug
    for change, field in [
        ({"title": 5}, "title"),
        ({"category": "abc"}, "category"),
        ({"brand": {"name": "x"}}, "brand"),
        ({"attributes": [{"name": None, "value": "red"}]}, "attributes[0]"),
        ({"attributes": [{"name": "¾", "value": "red"}]}, "attributes"),  # no letter to make a token of
        ({"title": "coffee \udc80 mug"}, "title"),
    ]:
        catalogue = make_catalogue()
        catalogue["mug"] = {**catalogue["mug"], **change}
        with pytest.raises(ValueError, match=f"catalogue item 'mug': field '{re.escape(field)}'"):
            PROCESSOR(session, catalogue)
    with pytest.raises(InvalidRecordError, match=r"catalogue: record 1: field 'item_id'"):
        PROCESSOR(session, [make_catalogue()["mug"], {"item_id": ["x"], "title": "x"}])
    with pytest.raises(ValueError, match=r"field 'item_id'"):
        PROCESSOR.encode_items([7], make_catalogue())


def test_next_item_pairing_reads_item_events_and_refuses_bad_item_ids():
    """A stray ``item_id`` on a query event used to be paired (and crash the stage-1 collator as an item missing
    from the catalogue); an item ID that is not a string is refused naming the session and the event."""
    from session_transformers.data.schema import InvalidRecordError

    stray = {**query_event("search", "case"), "item_id": "ghost"}
    session = {"session_id": "s", "events": [item_event("view", "case"), stray, item_event("view", "strap")]}
    assert next_item_pairs([session]) == [{"item_id": "case", "next_item_id": "strap"}]
    bad = {
        "session_id": "t",
        "events": [item_event("view", "case"), {**item_event("view", "x"), "item_id": 1e308}],
    }
    with pytest.raises(InvalidRecordError, match=r"session 't'.*record 1: field 'events\[1\]\.item_id'"):
        next_item_pairs([session, bad])
    with pytest.raises(KeyError, match=r"field 'item_id': item 'nope' is not in the catalogue"):
        UbmStage1Collator(PROCESSOR, make_catalogue(), seed=0)([{"item_id": "case", "next_item_id": "nope"}])
