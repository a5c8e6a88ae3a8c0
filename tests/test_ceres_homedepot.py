"""CERES on Home Depot: ``--dataset homedepot`` in the CERES recipe (training pairs of a term and a product graded
>= 2, graded evaluation over the catalogue, BM25 beside the model), pretraining on term sessions, the graded labels'
meaning in the ranks and the loss, and the ``ceres-homedepot`` real-data release build at toy size."""

from __future__ import annotations

import csv
import gzip
import json
import math
import random
import sys
from argparse import Namespace

import pytest
import torch

from launch import ROOT
from session_transformers import hub
from session_transformers.models.ceres import retrieval, sources
from session_transformers.models.ceres.modeling_ceres import retrieval_hinge_loss
from session_transformers.recipes import RECIPES

sys.path.insert(0, str(ROOT / "trainers"))
import finetune
import pretrain
import release

HEADER = ["id", "product_uid", "product_title", "search_term", "relevance"]
NOUNS = ["bracket", "faucet", "drill", "paint", "screw", "hinge", "shower", "lamp", "tile", "hose"]
ADJECTIVES = ["angle", "brass", "cordless", "white", "deck", "door", "rain", "led", "ceramic", "garden"]
GRADES = ["1", "1.67", "2", "2.33", "2.67", "3"]
TINY_SIZES = [
    "--config",
    "hidden_size=32",
    "num_hidden_layers=1",
    "num_attention_heads=2",
    "intermediate_size=64",
    "num_cross_attention_layers=1",
    "retrieval_projection_size=16",
]


def _write(path, rows):
    with gzip.open(path, "wt", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A Home Depot file of 40 terms over 60 products (2-5 judged products per term, grades 1-3): the folder, named
    as the real one (the card's data set name is the folder's)."""
    folder = tmp_path_factory.mktemp("toy") / "homedepot"
    folder.mkdir()
    rng = random.Random(0)
    products = [
        (str(100 + n), f"{ADJECTIVES[n % 10].title()} {NOUNS[n * 3 % 10]} {n % 7 + 1}-Pack")
        for n in range(60)
    ]
    rows, line = [], 1
    for t in range(40):
        term = f"{ADJECTIVES[t % 10]} {NOUNS[t * 7 % 10]} {t}"
        for uid, title in rng.sample(products, rng.randint(2, 5)):
            rows.append([line, uid, title, term, rng.choice(GRADES)])
            line += 1
    _write(folder / "search_relevance.csv.gz", rows)
    return folder


def _args(path, **overrides) -> Namespace:
    base = dict(
        dataset="homedepot",
        data_path=str(path),
        seed=42,
        eval_pool="paper",
        num_candidates=100,
        max_train_samples=None,
        max_eval_samples=None,
        max_validation_samples=None,
        processor_path=None,
        item_encoder_from=None,
        config_overrides={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2},
    )
    return Namespace(**{**base, **overrides})


def test_training_pairs_and_graded_eval_targets():
    row = {
        "session_id": "hd-1",
        "events": [{"action": "search", "subject": "keyword_query", "query": "l bracket"}],
        "item_ids": ["a", "b", "c", "d"],
        "relevance": [3.0, 2.0, 1.67, 1.0],
    }
    (train,) = sources.homedepot_training_examples([row])
    assert train["targets"] == [{"item_id": "a"}, {"item_id": "b"}]  # graded >= 2
    (evaluated,) = sources.homedepot_eval_examples([row])
    gains = {t["item_id"]: t["gain"] for t in evaluated["targets"]}
    assert gains.keys() == {"a", "b", "c"}  # grade 1 has no gain: not a target
    assert gains["a"] == pytest.approx(2 / 1.5) and gains["b"] == pytest.approx(1 / 1.5)
    assert (
        sources.homedepot_eval_examples([{**row, "relevance": [2.33, 2.0, 1.67, 1.0]}]) == []
    )  # none >= 2.5
    assert sources.homedepot_training_examples([{**row, "relevance": [1.67, 1.0, 1.0, 1.33]}]) == []
    (session,) = [sources.homedepot_session(row)]
    assert [e["subject"] for e in session["events"]] == ["keyword_query", "item", "item", "item", "item"]
    assert [e["item_id"] for e in session["events"][1:]] == ["a", "b", "c", "d"]


def test_graded_labels_rank_relevant_only_and_give_ndcg():
    task = RECIPES["ceres"].finetune["product_search"]
    # candidates 0..4; row 0: relevant 2 (gain 4/3), partly relevant 0 (gain 0.5); row 1: relevant 3 (gain 1)
    logits = torch.tensor([[0.9, 0.1, 0.5, 0.7, 0.0], [0.4, 0.3, 0.1, 0.0, 0.2]])
    labels = torch.tensor([[0.5, 0.0, 4 / 3, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0, 0.0]])
    out = task.per_example(logits, labels)
    assert out["ranks"][0, 0] == 3.0 and math.isnan(out["ranks"][0, 1]) and out["ranks"][1, 0] == 5.0
    # row 0: the partly relevant candidate is first and counts in the NDCG's gains, not as relevant
    dcg = 0.5 / math.log2(2) + (4 / 3) / math.log2(4)
    ideal = (4 / 3) / math.log2(2) + 0.5 / math.log2(3)
    assert out["ndcg@10"][0].item() == pytest.approx(dcg / ideal, rel=1e-5)
    assert out["mrr@10"][0].item() == pytest.approx(1 / 3) and out["mrr@10"][1].item() == pytest.approx(1 / 5)
    summary = task.summarize(out)
    assert summary["MAP@1"] == 0.0 and summary["MRR@10"] == pytest.approx(100 * (1 / 3 + 1 / 5) / 2, rel=1e-5)
    binary = task.summarize(task.per_example(logits, (labels >= 1).float()))
    assert binary["MAP@32"] == summary["MAP@32"] and binary["NDCG@10"] != summary["NDCG@10"]


def test_partly_relevant_labels_are_neither_positives_nor_negatives():
    torch.manual_seed(0)
    sessions = torch.nn.functional.normalize(torch.randn(2, 8), dim=-1)
    candidates = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    labels = torch.tensor([[1.0, 0.0, 0.5, 0.0], [0.0, 1.0, 0.0, 0.0]])
    graded = retrieval_hinge_loss(sessions, candidates, labels, margin=0.5)
    keep = [0, 1, 3]  # the loss without the partly relevant candidate 2 (a negative of row 1 there)
    without = (
        retrieval_hinge_loss(sessions[:1], candidates[keep], labels[:1, keep], margin=0.5) * 2
        + retrieval_hinge_loss(sessions[1:], candidates, labels[1:], margin=0.5) * 3
    )
    assert graded.item() == pytest.approx(without.item() / 5, rel=1e-5)  # 2 + 3 (pair, negative) terms
    assert graded.item() != pytest.approx(
        retrieval_hinge_loss(sessions, candidates, (labels >= 0.5).float(), margin=0.5).item()
    )


def test_collator_draws_one_positive_per_term_and_labels_all_of_them(toy):
    data = RECIPES["ceres"].finetune["product_search"].prepare(_args(toy))
    collate = data.collate_fn
    rows = [data.train_dataset[n] for n in range(len(data.train_dataset))]
    many = [r for r in rows if len(r["targets"]) > 1]
    assert many, "the toy data has no term with two positives"
    batch = collate(rows)
    labels = batch["labels"]
    assert labels.shape[0] == len(rows) and labels.shape[1] <= len(rows)  # one drawn product per term at most
    assert bool((labels.sum(1) >= 1).all())  # every term's own drawn product
    assert labels.shape[1] == int(batch["candidate_sequence_index"].max()) + 1
    same = collate(rows)
    assert torch.equal(same["labels"], labels) and torch.equal(
        same["candidate_input_ids"], batch["candidate_input_ids"]
    )
    draws = set()
    for epoch in range(8):
        collate.set_epoch(epoch)
        draws.add(tuple(collate(many[:1])["candidate_input_ids"][0].tolist()))
    assert len(draws) > 1  # drawn afresh with the epoch


def test_finetune_on_homedepot_ranks_the_catalogue_beside_bm25(toy, tmp_path):
    out = tmp_path / "ft"
    results = finetune.main(
        [
            "--model",
            "ceres",
            "--task",
            "product_search",
            "--dataset",
            "homedepot",
            "--data-path",
            str(toy),
            "--max-steps",
            "3",
            "--batch-size",
            "8",
            "--learning-rate",
            "1e-3",
            "--output-dir",
            str(out),
            "--use-cpu",
            *TINY_SIZES,
        ]
    )
    test = hub.split_metrics(results, "test")
    catalogue = len(sources.homedepot_terms(str(toy)).catalogue)
    assert test["pool_size"] == catalogue > 50  # every test term ranks every product
    for metric in ("MAP@1", "MAP@32", "Recall@64", "NDCG@10", "MRR@10"):
        assert 0.0 <= test[metric] <= 100.0 and metric in results["baseline"]["BM25"]
    assert results["baseline"]["BM25"]["num_samples"] == test["num_samples"]
    assert results["baseline"]["BM25"]["pool_size"] == catalogue  # exactly: a mean of equal pools
    record = json.loads((out / "training_record.json").read_text())
    assert record["dataset"]["name"] == toy.name and "split by search term" in record["split"]["description"]


def test_pretrain_on_homedepot_term_sessions(toy, tmp_path):
    args, recipe_ = pretrain.parse_args(
        ["--model", "ceres", "--dataset", "homedepot", "--data-path", str(toy)]
    )
    data = recipe_.pretrain.prepare(args)
    terms = sources.homedepot_terms(str(toy))
    assert len(data.train_dataset) == len(terms.train) and len(data.test_dataset) == len(terms.test)
    first = data.train_dataset[0]
    assert first["events"][0]["query"] == terms.train[0]["search_term"]
    assert [e["item_id"] for e in first["events"][1:]] == terms.train[0]["item_ids"]
    with pytest.raises(ValueError, match="product_search"):
        RECIPES["ceres"].finetune["query_search"].prepare(_args(toy))


def test_real_data_build_at_toy_size(toy, tmp_path, monkeypatch):
    """``release.py build --real-data --only ceres-homedepot`` (the build's own flags, a few steps, the toy file as
    the data set's default path): pretraining then fine-tuning, a card that names the data and BM25."""
    monkeypatch.setitem(RECIPES["ceres"].default_data_path, "homedepot", str(toy))
    plan = release.build_plan("ceres", True)["ceres-homedepot"]
    assert [release.is_finetune_run(flags) for flags in plan] == [False, True]
    summary = release.main(
        [
            "build",
            "--models",
            "ceres",
            "--real-data",
            "--only",
            "ceres-homedepot",
            "--output-dir",
            str(tmp_path),
            "--max-steps",
            "2",
        ]
    )
    assert "CeresForSessionRetrieval" in summary["ceres-homedepot"]["verified"]  # the fine-tuned head reloads
    info = json.loads((tmp_path / "ceres-homedepot" / "checkpoint" / "release.json").read_text())
    assert info["commands"][0].startswith("python trainers/pretrain.py --model ceres --dataset homedepot")
    assert info["commands"][1].startswith("python trainers/finetune.py --model ceres --task product_search")
    text = (tmp_path / "ceres-homedepot" / "release" / "README.md").read_text()
    meta = hub.check_card_metadata(text)
    assert meta["datasets"] == ["homedepot"] and "**Home Depot** Product Search Relevance" in text
    assert "type: text-retrieval" in text and "ndcg@10" in meta["metrics"]
    assert "| BM25 |" in text and "on NDCG@10 is **" in text  # the build selects by NDCG@10
    assert str(tmp_path) not in text


@pytest.mark.real_data
def test_real_homedepot_terms_and_examples(shared_data):
    from session_transformers.data import HOMEDEPOT_COUNTS

    path = shared_data / "homedepot"
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    terms = sources.homedepot_terms(str(path))
    assert (len(terms.train), len(terms.validation), len(terms.test)) == (7_077, 2_359, 2_359)
    assert len(terms.catalogue) == HOMEDEPOT_COUNTS["products"]
    assert all(set(record) == {"item_id", "title"} for record in list(terms.catalogue.values())[:100])
    train = sources.homedepot_training_examples(terms.train)
    test = sources.homedepot_eval_examples(terms.test)
    assert (
        0.5 * len(terms.train) < len(train) < len(terms.train)
    )  # terms with no product graded >= 2 drop out
    assert 0.5 * len(terms.test) < len(test) < len(terms.test)  # and those with none >= 2.5
    assert max(len(ex["targets"]) for ex in train + test) <= retrieval.CERES_MAX_RELEVANT
    assert all(any(t["gain"] >= 1 for t in ex["targets"]) for ex in test)
    assert not {r["search_term"] for r in terms.train} & {r["search_term"] for r in terms.test}
