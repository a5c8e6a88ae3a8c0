"""Product BYOL processor: normalisation on known strings, pairs of known sessions (dedup, truncation), category
labels, the Unigram tokenizer, streaming pair datasets and the save / load round trip."""

import json

import pytest
import torch
from datasets import Dataset, IterableDataset
from transformers import AutoProcessor

import session_transformers  # noqa: F401  (registers the Auto classes)
from session_transformers.models.product_byol import (
    STOP_WORDS,
    ProductByolConfig,
    ProductByolProcessor,
    normalize_title,
    session_pairs,
    session_products,
)

CATALOGUE = [
    {"item_id": "a", "title": "Organic Bananas", "category": ["produce", "fresh fruits"]},
    {"item_id": "b", "title": "Whole Milk, 1 Gallon", "category": ["dairy eggs", "milk"]},
    {"item_id": "c", "title": "Crème Brûlée (Vanilla)", "category": ["frozen", "desserts"]},
    {"item_id": "d", "title": "Sea Salt & Vinegar Chips", "category": ["snacks", "chips pretzels"]},
    {"item_id": "e", "title": "Strawberries", "category": ["produce", "fresh fruits"]},
    {"item_id": "u", "title": "Mystery Box", "category": ["unknown"]},
]


def _processor(**kwargs) -> ProductByolProcessor:
    titles = [r["title"] for r in CATALOGUE] * 4
    return ProductByolProcessor.train(titles, vocab_size=500, catalogue=CATALOGUE, **kwargs)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Whole Milk, 1 Gallon", "whole milk 1 gallon"),
        ("Crème Brûlée (Vanilla)", "creme brulee vanilla"),
        ("The Best of the Sea-Salt & Vinegar Chips!!", "best sea salt vinegar chips"),
        ("  Tomatoes\tin   a Can  ", "tomatoes can"),
        ("Café_au_lait 2x500ml", "cafe au lait 2x500ml"),
        ("the and of", ""),
    ],
)
def test_normalisation_on_known_strings(raw, expected):
    assert normalize_title(raw, STOP_WORDS["english"]) == expected
    assert ProductByolProcessor(tokenizer=_processor().tokenizer).normalize(raw) == expected


def test_stop_words_per_language_and_custom():
    spanish = _processor(language="spanish")
    assert spanish.normalize("Leche de Almendra sin Azúcar para el Café") == "leche almendra azucar cafe"
    custom = _processor(stop_words=["organic", "the"])
    assert custom.normalize("The Organic Bananas of Spain") == "bananas of spain"
    with pytest.raises(ValueError, match="klingon"):
        _processor(language="klingon")


def test_pairs_of_known_sessions_dedup_and_truncation():
    assert list(session_pairs(["a", "b", "a", "c"])) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert list(session_pairs(["a", "a", "a"])) == []  # one distinct product: no pair
    assert list(session_pairs([])) == []
    long = [f"p{i}" for i in range(15)] + ["p0", "p3"]
    assert session_products(long) == [f"p{i}" for i in range(10)]  # the first 10 distinct products
    pairs = list(session_pairs(long))
    assert len(pairs) == 45 == len(set(pairs))  # C(10, 2), no duplicate pair
    assert all(a != b for a, b in pairs) and not any((b, a) in set(pairs) for a, b in pairs)
    assert {x for pair in pairs for x in pair} == {f"p{i}" for i in range(10)}
    assert len(list(session_pairs(long, max_products=3))) == 3


def test_pair_dataset_is_generated_and_streamed():
    p = _processor()
    sessions = [["a", "b", "a", "c"], ["d"], ["e", "zzz", "a"], ["u", "d"]]  # zzz: not in the catalogue
    ds = p.pair_dataset(sessions, CATALOGUE)
    assert isinstance(ds, Dataset)
    got = [(r["item_id"], r["pair_item_id"]) for r in ds]
    assert got == [("a", "b"), ("a", "c"), ("b", "c"), ("e", "a"), ("u", "d")]
    row = ds[0]
    assert row["title"] == "Organic Bananas" and row["pair_title"] == "Whole Milk, 1 Gallon"
    assert p.categories[row["category"]] == "produce" and p.categories[row["pair_category"]] == "dairy eggs"
    assert ds[4]["category"] == -100  # "unknown" category: ignored by the loss
    stream = p.pair_dataset(sessions, CATALOGUE, streaming=True, num_shards=2)
    assert isinstance(stream, IterableDataset) and stream.num_shards == 2
    assert [(r["item_id"], r["pair_item_id"]) for r in stream] == got
    with pytest.raises(TypeError, match="session 1"):
        p.pair_dataset([["a"], ["b", 3]], CATALOGUE)


def test_category_levels():
    assert _processor().categories == ["dairy eggs", "frozen", "produce", "snacks"]
    aisles = _processor(category_level=1)
    assert aisles.categories[aisles.category_id(["snacks", "chips pretzels"])] == "snacks > chips pretzels"
    assert aisles.category_id(["snacks"]) == -100  # path too short for the level
    leaf = _processor(category_level=-1)
    assert leaf.num_categories == 4 and leaf.category_id(["unknown"]) == -100


def test_tokenizer_is_unigram_and_batches_pad():
    p = _processor()
    assert json.loads(p.tokenizer.backend_tokenizer.to_str())["model"]["type"] == "Unigram"
    assert p.tokenizer.pad_token_id == 0 and p.vocab_size == len(p.tokenizer) <= 500
    batch = p(["Organic Bananas", "Milk", "the of and"])
    assert batch["input_ids"].shape == batch["attention_mask"].shape
    assert batch["attention_mask"].sum(1).tolist()[2] == 0  # only stop words: an empty title
    assert (batch["input_ids"][batch["attention_mask"] == 0] == 0).all()
    long = p(["bananas " * 100])
    assert long["input_ids"].shape[1] == p.max_length
    rows = [{"title": "Organic Bananas", "label": 1}, {"title": "Milk", "label": 0}]
    assert p.collate(rows)["labels"].tolist() == [1, 0]
    with pytest.raises(ValueError, match="row 1: field 'title'"):
        p.collate([{"title": "a"}, {"title": None}])


def test_save_load_round_trip(tmp_path):
    p = _processor(language="spanish", category_level=1, max_length=16)
    p.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "processor_config.json").read_text())
    assert "leche" not in saved["stop_words"] and "para" in saved["stop_words"]  # the list travels with it
    ProductByolConfig(vocab_size=p.vocab_size).save_pretrained(tmp_path)
    for loaded in (ProductByolProcessor.from_pretrained(tmp_path), AutoProcessor.from_pretrained(tmp_path)):
        assert type(loaded) is ProductByolProcessor
        assert (loaded.stop_words, loaded.categories, loaded.category_level, loaded.max_length) == (
            p.stop_words,
            p.categories,
            1,
            16,
        )
        titles = ["Crème Brûlée para el postre", "Leche"]
        for k, v in p(titles).items():
            assert torch.equal(loaded(titles)[k], v), k


def test_a_session_stream_is_paired_lazily_like_the_list():
    # pair_dataset used to hold a list of every session before pairing (a 1M-session corpus in memory); a session
    # stream (package schema, as data.streaming.stream_sessions gives) is now paired by a batched map as it is read
    from session_transformers.data.schema import SESSION_FEATURES

    lists = [["a", "b", "a", "c"], ["d"], ["e", "zzz", "a"], ["u", "d"]] * 300
    read = []

    def sessions():
        for i, items in enumerate(lists):
            read.append(i)
            events = [
                {
                    "action": "view",
                    "timestamp": 1.0,
                    "subject": "item",
                    "item_id": x,
                    "query": None,
                    "image": None,
                }
                for x in items
            ]
            events.insert(
                1,
                {"action": "search", "timestamp": 1.0, "subject": "keyword_query", "item_id": None}
                | {"query": "milk", "image": None},
            )
            yield {"session_id": f"s{i}", "events": events}

    p = _processor()
    stream = IterableDataset.from_generator(sessions, features=SESSION_FEATURES)
    pairs = p.pair_dataset(stream, CATALOGUE, streaming=True)
    assert isinstance(pairs, IterableDataset) and pairs.column_names == list(pairs.features)
    first = next(iter(pairs))
    assert (first["item_id"], first["pair_item_id"]) == ("a", "b") and len(read) < len(lists) / 2  # lazy
    expected = [(r["item_id"], r["pair_item_id"], r["category"]) for r in p.pair_dataset(lists, CATALOGUE)]
    read.clear()
    assert [(r["item_id"], r["pair_item_id"], r["category"]) for r in pairs] == expected
    assert len(read) == len(lists)
    with pytest.raises(ValueError, match="streaming=True"):
        p.pair_dataset(stream, CATALOGUE)


# --- bad records (benchmarks/bad_inputs.py): refused by name, never a foreign exception ----------------------------


def test_pairs_refuse_an_item_id_that_is_not_a_string():
    """An unhashable ID used to raise ``TypeError: unhashable type``, naming nothing."""
    from session_transformers.data.schema import InvalidRecordError

    p = _processor()
    assert p.pairs(["a", "b"]) == [("a", "b")]
    with pytest.raises(InvalidRecordError, match=r"record 4: field 'item_ids\[1\]'"):
        p.pairs(["a", ["b"], "c"], session=4)


def test_catalogue_fields_of_the_wrong_type_are_refused_naming_the_item():
    """A number title reached the collator; a category string was split into letters; a list item ID crashed."""
    p = _processor()
    for change, field in [
        ({"title": 5}, "title"),
        ({"category": "produce"}, "category"),
        ({"item_id": ["a"]}, "item_id"),
    ]:
        bad = [{**CATALOGUE[0], **change}, *CATALOGUE[1:]]
        with pytest.raises(ValueError, match=f"field '{field}'"):
            p.product_table(bad)
    with pytest.raises(ValueError, match=r"record 1: field '<record>'"):
        p.product_table([CATALOGUE[0], None])
