"""Home Depot product search: the loader (counts against the data README, splits by term, bad rows), the graded
ranking metrics on hand-made cases, and a dry run of ``benchmarks/product_search_homedepot.py``."""

from __future__ import annotations

import csv
import gzip
import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from session_transformers.data import HOMEDEPOT_COUNTS, load_homedepot
from session_transformers.data.schema import InvalidRecordError, ValidationReport
from session_transformers.metrics import graded_ndcg_at_k, graded_ranking_metrics, judged_ranks

ROOT = Path(__file__).resolve().parents[1]
HEADER = ["id", "product_uid", "product_title", "search_term", "relevance"]


def _write(path, rows, header=HEADER):
    with gzip.open(path, "wt", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _toy(tmp_path):
    rows = [
        [1, "100", "Angle bracket 12-Gauge", "angle bracket", "3"],
        [2, "100", "Angle bracket 12-Gauge", "l bracket", "2.5"],
        [3, "101", "Deck coating 1-gal.", "deck over", "3"],
        [4, "102", "Shower faucet trim 30å¡", "rain shower head", "2.33"],
        [5, "103", "Angle bracket (edited title)", "angle bracket", "1.67"],
        [6, "103", "Angle bracket (an edited title)", "l bracket", "1"],
    ]
    return _write(tmp_path / "search_relevance.csv.gz", rows)


def test_terms_become_one_query_sessions_with_their_judgements(tmp_path):
    splits = load_homedepot(_toy(tmp_path), validation_fraction=0.25, test_fraction=0.25, seed=3)
    rows = [*splits.train, *splits.validation, *splits.test]
    assert sorted(r["search_term"] for r in rows) == [
        "angle bracket",
        "deck over",
        "l bracket",
        "rain shower head",
    ]
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (2, 1, 1)
    angle = next(r for r in rows if r["search_term"] == "angle bracket")
    assert angle["item_ids"] == ["100", "103"] and angle["relevance"] == [3.0, 1.67]
    (event,) = angle["events"]
    assert (event["action"], event["subject"], event["query"]) == ("search", "keyword_query", "angle bracket")
    catalogue = {r["item_id"]: r for r in splits.catalogue}
    assert len(catalogue) == 4 and catalogue["102"]["title"] == "Shower faucet trim 30å¡"  # mojibake kept
    assert catalogue["103"]["title"] == "Angle bracket (edited title)"  # the first of two titles
    assert splits.statistics["title_variants"] == 1 and splits.statistics["relevant_pairs"] == 3
    again = load_homedepot(tmp_path, validation_fraction=0.25, test_fraction=0.25, seed=3)
    assert again.test["search_term"] == splits.test["search_term"]  # seeded


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ([9, "", "A title", "a term", "3"], "product_uid"),
        ([9, "104", " ", "a term", "3"], "product_title"),
        ([9, "104", "A title", "", "3"], "search_term"),
        ([9, "104", "A title", "a term", "high"], "relevance"),
        ([9, "104", "A title", "a term", "3.5"], "relevance"),
        ([9, "100", "Angle bracket 12-Gauge", "angle bracket", "2"], "product_uid"),  # judged twice
        ([9, "104", "A title"], "<columns>"),
    ],
)
def test_bad_rows_name_the_line_and_the_field(tmp_path, row, field):
    rows = [[1, "100", "Angle bracket 12-Gauge", "angle bracket", "3"], row]
    path = _write(tmp_path / "bad.csv.gz", rows)
    with pytest.raises(InvalidRecordError) as err:
        load_homedepot(path)
    assert err.value.index == 3 and err.value.field == field  # line 3: the header is line 1
    report = ValidationReport()
    splits = load_homedepot(path, on_error="skip", report=report, validation_fraction=0, test_fraction=0)
    assert report.skipped == 1 and report.seen == 2 and len(splits.train) == 1


def test_missing_column_and_bad_fractions(tmp_path):
    path = _write(tmp_path / "x.csv.gz", [[1, "100", "t", "q"]], header=HEADER[:4])
    with pytest.raises(ValueError, match="relevance"):
        load_homedepot(path)
    with pytest.raises(ValueError, match="no training terms"):
        load_homedepot(_toy(tmp_path), validation_fraction=0.5, test_fraction=0.5)


@pytest.mark.real_data
def test_counts_match_the_data_readme_and_no_term_is_on_two_sides(shared_data):
    splits = load_homedepot(shared_data / "homedepot")
    stats = splits.statistics
    assert (
        {k: stats[k] for k in HOMEDEPOT_COUNTS}
        == HOMEDEPOT_COUNTS
        == {
            "rows": 74_067,
            "products": 54_667,
            "search_terms": 11_795,
        }
    )
    assert stats["relevant_pairs"] == 34_357  # the README: 34,357 pairs graded >= 2.5
    assert len(splits.catalogue) == 54_667
    sides = [set(s["search_term"]) for s in (splits.train, splits.validation, splits.test)]
    assert [len(s) for s in sides] == [7_077, 2_359, 2_359]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    ids = [set(s["session_id"]) for s in (splits.train, splits.validation, splits.test)]
    assert sum(map(len, ids)) == len(set().union(*ids)) == 11_795
    assert (
        sum(len(r) for s in (splits.train, splits.validation, splits.test) for r in s["item_ids"]) == 74_067
    )
    graded_3 = sum(
        g == 3.0 for s in (splits.train, splits.validation, splits.test) for r in s["relevance"] for g in r
    )
    assert graded_3 == 19_125  # the README's count of pairs graded 3
    other = load_homedepot(shared_data / "homedepot", seed=1)
    assert set(other.test["search_term"]) != sides[2]


# --- graded metrics on hand-made cases --------------------------------------------------------------------


def test_judged_ranks_follow_scores_ties_and_padding():
    scores = torch.tensor([[0.9, 0.5, 0.5, 0.1, 0.5], [1.0, 2.0, 3.0, 4.0, 5.0]])
    judged = torch.tensor([[1, 3, -1], [0, 4, 2]])
    ranks = judged_ranks(scores, judged)
    # row 0: item 1 ties with items 2 and 4 (unjudged): pessimistic rank 1 + 1 (0.9) + 2 = 4; item 3 is last (5)
    assert ranks[0, :2].tolist() == [4.0, 5.0] and math.isnan(ranks[0, 2])
    assert ranks[1].tolist() == [5.0, 1.0, 3.0]  # aligned with judged, not sorted
    assert judged_ranks(scores, judged, ties="optimistic")[0, 0] == 2.0
    tied = judged_ranks(torch.tensor([[0.5, 0.5, 0.5]]), torch.tensor([[2, 0]]))
    assert tied.tolist() == [[2.0, 3.0]]  # two judged items tie: the later column is behind; item 1 counts
    with pytest.raises(ValueError):
        judged_ranks(scores, torch.tensor([[5, -1, -1], [0, 1, 2]]))


def test_graded_ndcg_by_hand():
    # judged items at ranks 1 and 3 with grades 2 and 3 (gains 1 and 2); a third judged item (grade 1.67) at 20
    ranks = torch.tensor([[1.0, 3.0, 20.0]])
    grades = torch.tensor([[2.0, 3.0, 1.67]])
    dcg = 1 / math.log2(2) + 2 / math.log2(4)
    ideal = 2 / math.log2(2) + 1 / math.log2(3) + 0.67 / math.log2(4)
    assert graded_ndcg_at_k(ranks, grades - 1, 10).item() == pytest.approx(dcg / ideal)
    assert graded_ndcg_at_k(ranks, grades - 1, 2).item() == pytest.approx(1 / (2 + 1 / math.log2(3)))
    perfect = torch.tensor([[2.0, 1.0, 3.0]])
    assert graded_ndcg_at_k(perfect, grades - 1, 10).item() == pytest.approx(1.0)
    # nothing to find (every judged item graded 1): no NDCG for the row, left out of the mean
    two = graded_ndcg_at_k(torch.tensor([[1.0, 3.0], [1.0, 2.0]]), torch.tensor([[1.0, 2.0], [0.0, 0.0]]), 10)
    assert two.item() == pytest.approx((1 + 2 / math.log2(4)) / (2 + 1 / math.log2(3)))


def test_mrr_and_recall_count_only_items_graded_2_5_or_more():
    ranks = torch.tensor([[1.0, 4.0, 150.0, math.nan], [2.0, 7.0, math.nan, math.nan], [1.0, 2.0, 3.0, 4.0]])
    grades = torch.tensor([[2.33, 3.0, 2.5, 0.0], [1.0, 2.0, 0.0, 0.0], [3.0, 3.0, 3.0, 3.0]])
    out = graded_ranking_metrics(ranks, grades, ndcg_ks=(10,), mrr_ks=(10, 3), recall_ks=(100,))
    assert out["MRR@10"][0] == pytest.approx(1 / 4)  # the item at rank 1 is graded 2.33: not relevant
    assert out["MRR@3"][0] == 0.0
    assert out["Recall@100"][0] == pytest.approx(0.5)  # ranks 4 and 150 are relevant; one in the top 100
    assert math.isnan(out["MRR@10"][1]) and math.isnan(out["Recall@100"][1])  # nothing graded >= 2.5
    assert out["NDCG@10"][1] > 0  # but a gain of 1 to find at rank 7
    assert out["MRR@10"][2] == 1.0 and out["Recall@100"][2] == 1.0 and out["NDCG@10"][2] == pytest.approx(1.0)


@pytest.mark.parametrize("ties", ["pessimistic", "optimistic", "average"])
def test_judged_ranks_match_a_brute_force_count(ties):
    generator = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 6, (7, 40), generator=generator).float()  # many ties
    judged = torch.stack([torch.randperm(40, generator=generator)[:5] for _ in range(7)])
    judged[2, 3:] = -1
    weight = {"pessimistic": 1.0, "optimistic": 0.0, "average": 0.5}[ties]
    expected = torch.full(judged.shape, math.nan)
    for row in range(7):
        items = [int(i) for i in judged[row] if i >= 0]
        for col, item in enumerate(items):
            s = scores[row, item]
            unjudged = [c for c in range(40) if c not in items]
            expected[row, col] = (
                1
                + sum(float(scores[row, c] > s) for c in range(40))
                + weight * sum(float(scores[row, c] == s) for c in unjudged)
                + sum(float(scores[row, other] == s) for other in items[:col])
            )
    assert torch.equal(judged_ranks(scores, judged, ties=ties, chunk_size=3).isnan(), expected.isnan())
    assert torch.allclose(
        judged_ranks(scores, judged, ties=ties, chunk_size=3).nan_to_num(), expected.nan_to_num()
    )


# --- the benchmark, end to end on a slice ---------------------------------------------------------------------


@pytest.mark.real_data
def test_benchmark_dry_run_writes_every_row_with_intervals(shared_data, tmp_path):
    pytest.importorskip("bm25s")

    bench = importlib.import_module("benchmarks.product_search_homedepot")
    argv = ["--dry-run", "--jobs", "0", "--workdir", str(tmp_path / "work"), "--results-dir", str(tmp_path)]
    argv += ["--data-path", str(shared_data / "homedepot"), "--resamples", "50"]
    result = bench.main(argv)
    record = json.loads((tmp_path / "product_search_homedepot.json").read_text())
    table = record["figures"]["test"]
    assert set(bench.ROWS) <= set(table) and any(row.startswith("hybrid") for row in table)
    for row, figures in table.items():
        for metric in bench.METRICS:
            low, high = (float(x) for x in figures[f"{metric} 95% CI"].split("-"))
            assert 0.0 <= low <= figures[metric] <= high <= 1.0, (row, metric)
    bm25 = record["figures"]["BM25 under other tie rules (test)"]
    assert (
        bm25["pessimistic"]["NDCG@10"]
        <= bm25["average (the table)"]["NDCG@10"]
        <= bm25["optimistic"]["NDCG@10"]
    )
    assert table["BM25"]["NDCG@10"] > 0.2  # word matching finds judged products on 30 real terms
    precision = record["figures"]["fp32 vs bf16"]
    assert precision["cosine fp32 vs bf16 title embeddings (min)"] > 0.9
    assert result["goal"]["our best row (by validation NDCG@10)"] in table
    # a second run keeps every row (same settings) instead of training again
    again = bench.main([*argv, "--no-precision", "--no-write"])
    assert all(r.get("kept_from_earlier_run") for r in again["rows"].values())
    # new BYOL settings: both BYOL rows, and the pretrained encoder they share, are made again (not reused)
    byol = ["--rows", "Product BYOL (frozen)", "Product BYOL fine-tuned", "--set", "byol_steps=2"]
    changed = bench.main([*argv, *byol, "--no-precision", "--no-write"])
    assert not any(r.get("kept_from_earlier_run") for r in changed["rows"].values())
    assert changed["rows"]["Product BYOL (frozen)"]["pretrain_losses"][-1][0] == 2
