"""Tests of the real-data loaders: exact counts on ../shared/data, known answers on small temp files."""

from __future__ import annotations

import gzip
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from session_transformers.data.loaders import (
    CANCEL_ACTION,
    NEXT_ITEM_FEATURES,
    instacart_product_pairs,
    load_catalogue_table,
    load_instacart_baskets,
    load_instacart_catalogue,
    load_next_item_dataset,
    load_next_item_sessions,
    load_online_retail,
    load_rees46,
    next_item_catalogue_ids,
    next_item_statistics,
    price_band,
)
from session_transformers.data.schema import (
    CATALOGUE_FEATURES,
    SESSION_FEATURES,
    InvalidRecordError,
    ValidationReport,
    session_item_ids,
)

# ---------------------------------------------------------------------------------- small hand-written files


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def srgnn(tmp_path: Path) -> Path:
    """A tiny data set in the SR-GNN two-file format: two training sessions, two test sessions."""
    _write(tmp_path / "train_sessions.txt", "1 2 3\n4 5\n")
    _write(tmp_path / "test.tsv", "prefix\ttarget\n1 2 6\t3\n1 2\t6\n1\t2\n4\t7\n")
    return tmp_path


def test_train_expansion_known_answer(srgnn):
    ds = load_next_item_dataset(srgnn, "train")
    assert ds.features == NEXT_ITEM_FEATURES
    assert ds.to_list() == [
        {"session_id": "train:1", "item_ids": ["1"], "target": "2"},
        {"session_id": "train:1", "item_ids": ["1", "2"], "target": "3"},
        {"session_id": "train:2", "item_ids": ["4"], "target": "5"},
    ]


def test_test_split_is_read_as_is_with_recovered_sessions(srgnn):
    ds = load_next_item_dataset(srgnn, "test")
    assert ds["item_ids"] == [["1", "2", "6"], ["1", "2"], ["1"], ["4"]]
    assert ds["target"] == ["3", "6", "2", "7"]
    assert ds["session_id"] == ["test:0", "test:0", "test:0", "test:1"]
    sessions = load_next_item_sessions(srgnn, "test")
    assert [session_item_ids(s) for s in sessions] == [["1", "2", "6", "3"], ["4", "7"]]


def test_sessions_catalogue_and_statistics(srgnn):
    sessions = load_next_item_sessions(srgnn)
    assert sessions.features == SESSION_FEATURES
    assert sessions[0]["session_id"] == "train:1"
    assert [e["action"] for e in sessions[0]["events"]] == ["view"] * 3
    assert session_item_ids(sessions[1]) == ["4", "5"]
    assert next_item_catalogue_ids(srgnn) == ["1", "2", "3", "4", "5", "6", "7"]
    stats = next_item_statistics(srgnn)
    assert stats == {
        "train_sessions": 2,
        "train_samples": 3,
        "test_samples": 4,
        "test_sessions": 2,
        "items": 7,
        "clicks": 5 + 4 + 2,
    }


def test_leading_zeros_name_the_same_item(tmp_path):
    _write(tmp_path / "train_sessions.txt", "007 7\n")
    assert load_next_item_dataset(tmp_path)[0] == {"session_id": "train:1", "item_ids": ["7"], "target": "7"}


@pytest.mark.parametrize(
    ("train", "line", "field"),
    [("1 2\n3 x 4\n", 2, "items[1]"), ("1 2\n\n3 4\n", 2, "items"), ("1 2\n3 -4\n", 2, "items[1]")],
)
def test_malformed_train_line_names_file_line_and_field(tmp_path, train, line, field):
    path = _write(tmp_path / "train_sessions.txt", train)
    with pytest.raises(InvalidRecordError) as info:
        load_next_item_dataset(tmp_path)
    err = info.value
    assert (err.source, err.index, err.field) == (str(path), line, field)
    assert str(path) in str(err) and f"line {line}" in str(err) and field in str(err)


def test_trailing_empty_lines_are_not_errors(tmp_path):
    _write(tmp_path / "train_sessions.txt", "1 2\n3 4\n\n\n")
    assert len(load_next_item_dataset(tmp_path)) == 2


@pytest.mark.parametrize(
    ("test", "line", "field"),
    [
        ("prefix\ttarget\n1 2\t3\n1\t2\t9\n", 3, "<columns>"),
        ("prefix\ttarget\n1 2\n", 2, "<columns>"),
        ("prefix\ttarget\n1 2\t3\n1 y\t2\n", 3, "prefix[1]"),
        ("prefix\ttarget\n1 2\tz\n", 2, "target"),
        ("prefix\ttarget\n\t2\n", 2, "prefix"),
        ("items\tnext\n1\t2\n", 1, "header"),
    ],
)
def test_malformed_test_line_names_file_line_and_field(tmp_path, test, line, field):
    path = _write(tmp_path / "test.tsv", test)
    with pytest.raises(InvalidRecordError) as info:
        load_next_item_dataset(tmp_path, "test")
    assert (info.value.source, info.value.index, info.value.field) == (str(path), line, field)
    assert str(path) in str(info.value)


def test_skip_mode_counts_bad_lines(tmp_path):
    _write(tmp_path / "train_sessions.txt", "1 2 3\n1 q\n\n4 5\n6 7\n")
    report = ValidationReport()
    ds = load_next_item_dataset(tmp_path, on_error="skip", report=report)
    assert ds["session_id"] == ["train:1", "train:1", "train:4", "train:5"]
    assert (report.seen, report.skipped) == (5, 2)
    _write(tmp_path / "test.tsv", "prefix\ttarget\n1\t2\t3\n1 2\t3\nx\t1\n")
    report = ValidationReport()
    assert len(load_next_item_dataset(tmp_path, "test", on_error="skip", report=report)) == 1
    assert (report.seen, report.skipped) == (3, 2)
    with pytest.raises(ValueError, match="on_error"):
        load_next_item_dataset(tmp_path, on_error="ignore")


# -------------------------------------------------------------------------------------------- REES46

_REES_HEADER = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"


def test_rees46_sessions_and_item_texts(tmp_path):
    rows = [
        "2019-10-01 00:00:05 UTC,cart,11,100,electronics.smartphone,samsung,199.00,7,s1",
        "2019-10-01 00:00:01 UTC,view,11,100,electronics.smartphone,samsung,199.00,7,s1",
        "2019-10-01 00:00:02 UTC,view,12,200,,,5.5,8,s2",
        "2019-10-01 00:00:09 UTC,purchase,11,100,electronics.smartphone,samsung,199.00,7,s1",
    ]
    path = _write(tmp_path / "events.csv", _REES_HEADER + "\r\n".join(rows) + "\r\n")
    sessions, catalogue = load_rees46(path)
    assert sessions.column_names == ["session_id", "events", "user_id"]
    s1 = sessions[0]
    assert (s1["session_id"], s1["user_id"]) == ("s1", "7")
    assert [e["action"] for e in s1["events"]] == ["view", "add_to_cart", "purchase"]
    assert s1["events"][0]["timestamp"] == datetime.fromisoformat("2019-10-01T00:00:01+00:00").timestamp()
    assert catalogue.features == CATALOGUE_FEATURES
    phone, other = catalogue.to_list()
    assert phone["title"] == "samsung electronics smartphone, $100 to $250"
    assert phone["category"] == ["electronics", "smartphone"] and phone["brand"] == "samsung"
    assert {"name": "price_band", "value": "$100 to $250"} in phone["attributes"]
    assert phone["description"] is None
    assert (other["title"], other["category"], other["brand"]) == ("product, under $10", ["unknown"], None)
    # the same folder works as the path when it holds one CSV
    assert len(load_rees46(tmp_path)[0]) == 2


def test_rees46_bad_rows(tmp_path):
    path = _write(tmp_path / "e.csv", _REES_HEADER + "2019-10-01 00:00:01 UTC,remove,1,1,,,1,1,s\n")
    with pytest.raises(InvalidRecordError) as info:
        load_rees46(path)
    assert (info.value.source, info.value.index, info.value.field) == (str(path), 2, "event_type")
    _write(path, _REES_HEADER + "yesterday,view,1,1,,,1,1,s\n2019-10-01 00:00:01 UTC,view,2,1,,,1,1,s\n")
    report = ValidationReport()
    sessions, catalogue = load_rees46(path, on_error="skip", report=report)
    assert (len(sessions), len(catalogue), report.seen, report.skipped) == (1, 1, 2, 1)
    _write(path, "event_time,event_type\n")
    with pytest.raises(ValueError, match="product_id"):
        load_rees46(path)


def test_rees46_truncated_last_line(tmp_path):
    text = _REES_HEADER + "2019-10-01 00:00:01 UTC,view,1,1,,,1,1,s\n2019-10-01 00:00:02 UTC,view,2,1,,,1,5"
    path = _write(tmp_path / "head.csv", text)
    report = ValidationReport()
    sessions, _ = load_rees46(path, report=report)
    assert (len(sessions), report.seen, report.skipped) == (1, 2, 1)
    with pytest.raises(InvalidRecordError, match="line 3"):
        load_rees46(path, drop_truncated_last_line=False)


def test_price_band():
    assert [price_band(p) for p in (None, 0.0, 9.99, 10, 49.0, 999.0, 1000.0)] == [
        "price unknown",
        "price unknown",
        "under $10",
        "$10 to $25",
        "$25 to $50",
        "$500 to $1000",
        "$1000 and over",
    ]


# ------------------------------------------------------------------------------------------ Instacart


@pytest.fixture
def instacart(tmp_path: Path) -> Path:
    _write(tmp_path / "aisles.csv", '"aisle_id","aisle"\n1,"fresh fruits"\n2,"milk"\n')
    _write(tmp_path / "departments.csv", '"department_id","department"\n1,"produce"\n2,"dairy eggs"\n')
    _write(
        tmp_path / "products.csv",
        'product_id,product_name,aisle_id,department_id\n10,Banana,1,1\n11,"Milk, Whole",2,2\n12,Apple,1,1\n',
    )
    lines = (
        "order_id,user_id,order_number,order_dow,order_hour_of_day,days_since_prior_order,product_id,"
        "add_to_cart_order,reordered\n"
        "500,1,1,2,8,,11,2,0\n500,1,1,2,8,,10,1,0\n500,1,1,2,8,,12,3,0\n501,1,2,3,9,7.0,10,1,1\n"
    )
    with gzip.open(tmp_path / "order_lines.csv.gz", "wt", encoding="utf-8") as fh:
        fh.write(lines)
    return tmp_path


def test_instacart_catalogue_and_baskets(instacart):
    catalogue = load_instacart_catalogue(instacart)
    assert catalogue.features == CATALOGUE_FEATURES
    assert catalogue[1]["title"] == "Milk, Whole" and catalogue[1]["category"] == ["dairy eggs", "milk"]
    baskets = load_instacart_baskets(instacart)
    assert baskets.column_names == ["session_id", "events", "user_id", "order_number"]
    first = baskets[0]
    assert (first["session_id"], first["user_id"], first["order_number"]) == ("500", "1", 1)
    assert session_item_ids(first) == ["10", "11", "12"]
    assert {e["action"] for e in first["events"]} == {"add_to_cart"}
    assert first["events"][0]["timestamp"] is None
    assert load_instacart_baskets(instacart, action="purchase")[1]["events"][0]["action"] == "purchase"
    assert list(instacart_product_pairs(baskets)) == [("10", "11"), ("10", "12"), ("11", "12")]
    assert len(list(instacart_product_pairs(baskets, max_pairs_per_basket=1))) == 1


def test_instacart_unknown_product_and_bad_rows(instacart):
    with gzip.open(instacart / "order_lines.csv.gz", "at", encoding="utf-8") as fh:
        fh.write("502,2,1,0,0,,99,1,0\n503,2,2,0,0,,10,x,0\n")
    with pytest.raises(InvalidRecordError) as info:
        load_instacart_baskets(instacart)
    assert info.value.field == "add_to_cart_order" and info.value.index == 7
    report = ValidationReport()
    baskets = load_instacart_baskets(instacart, on_error="skip", report=report)
    assert len(baskets) == 2 and (report.seen, report.skipped) == (6, 2)
    assert any("events[0].item_id" in reason for reason in report.reasons)
    _write(instacart / "products.csv", "product_id,product_name,aisle_id,department_id\n10,Banana,9,1\n")
    with pytest.raises(InvalidRecordError) as info:
        load_instacart_catalogue(instacart)
    assert (info.value.index, info.value.field) == (2, "aisle_id")


# -------------------------------------------------------------------------------------- Online Retail


def _retail_file(path: Path) -> Path:
    t = [datetime(2011, 1, d, 10, 0) for d in (1, 2, 3)]
    table = pa.table(
        {
            "InvoiceNo": ["2", "1", "1", "C3", "4", "5"],
            "StockCode": ["A", "A", "B", "A", "B", "Z"],
            "Description": ["MUG", "MUG", "CUP", "MUG", "CUP RED", "Unknown"],
            "Quantity": [1, 2, 3, -1, 1, 1],
            "InvoiceDate": pa.array([t[1], t[0], t[0], t[2], t[0], t[0]], pa.timestamp("us")),
            "UnitPrice": [1.0] * 6,
            "CustomerID": [17850.0, 17850.0, 17850.0, 17850.0, None, 12.0],
            "Country": ["UK"] * 6,
        }
    )
    pq.write_table(table, path)
    return path


def test_online_retail_sessions_and_catalogue(tmp_path):
    path = _retail_file(tmp_path / "online_retail.parquet")
    report = ValidationReport()
    sessions, catalogue = load_online_retail(path, report=report)
    assert report.seen == 6
    assert sessions.column_names == ["session_id", "events", "customer_id", "invoice_nos"]
    assert sessions["session_id"] == ["17850"]  # customer 12 only has an 'Unknown' line
    assert session_item_ids(sessions[0]) == ["A", "B", "A"]  # ordered by date, then file order
    assert sessions[0]["invoice_nos"] == ["1", "1", "2"]
    assert {e["action"] for e in sessions[0]["events"]} == {"purchase"}
    assert (
        sessions[0]["events"][0]["timestamp"]
        == datetime.fromisoformat("2011-01-01T10:00:00+00:00").timestamp()
    )
    assert {r["item_id"]: r["title"] for r in catalogue} == {
        "A": "MUG",
        "B": "CUP",
    }  # most frequent, then first
    assert catalogue[0]["category"] == ["unknown"]
    with_cancel, _ = load_online_retail(path, include_cancellations=True)
    assert [e["action"] for e in with_cancel[0]["events"]] == [
        "purchase",
        "purchase",
        "purchase",
        CANCEL_ACTION,
    ]
    invoices, _ = load_online_retail(path, session_by="invoice")
    assert invoices["session_id"] == ["1", "2", "4"] and invoices["customer_id"] == ["17850", "17850", None]


def test_online_retail_missing_column(tmp_path):
    path = tmp_path / "r.parquet"
    pq.write_table(pa.table({"InvoiceNo": ["1"]}), path)
    with pytest.raises(ValueError, match=r"r\.parquet.*'StockCode'"):
        load_online_retail(path)


# ------------------------------------------------------------------------------- generic catalogue table


def test_catalogue_table_csv_and_parquet(tmp_path):
    text = "sku,name,dept,sub,lbl,text,maker\nA1,Red mug,Home,Kitchen,1,A mug.,Acme\n007,Blue cup,,Cups,2,,\n"
    csv_path = _write(tmp_path / "items.csv", text)
    kwargs = dict(
        id_column="sku",
        title_column="name",
        label_column="lbl",
        category_columns=("dept", "sub"),
        description_column="text",
        brand_column="maker",
    )
    ds = load_catalogue_table(csv_path, **kwargs)
    assert ds.column_names == [*CATALOGUE_FEATURES, "label"]
    assert ds[0] == {
        "item_id": "A1",
        "title": "Red mug",
        "description": "A mug.",
        "category": ["Home", "Kitchen"],
        "brand": "Acme",
        "attributes": [],
        "image": None,
        "label": "1",
    }
    assert (ds[1]["item_id"], ds[1]["category"], ds[1]["brand"], ds[1]["description"]) == (
        "007",
        ["Cups"],
        None,
        None,
    )
    parquet_path = tmp_path / "items.parquet"
    pq.write_table(pa.table({"sku": [1, 2], "name": ["a", "b"], "path": ["x > y", "z"]}), parquet_path)
    ds = load_catalogue_table(
        parquet_path, id_column="sku", title_column="name", category_columns=["path"], category_separator=">"
    )
    assert ds["item_id"] == ["1", "2"] and ds["category"] == [["x", "y"], ["z"]]
    assert load_catalogue_table(parquet_path, id_column="sku", title_column="name")[0]["category"] == [
        "unknown"
    ]


def test_catalogue_table_errors(tmp_path):
    path = _write(tmp_path / "items.csv", "sku,name\nA,Mug\nB,\nA,Cup\nC,Plate\n")
    with pytest.raises(ValueError, match=r"items\.csv.*'brand'"):
        load_catalogue_table(path, id_column="sku", title_column="name", brand_column="brand")
    with pytest.raises(InvalidRecordError) as info:
        load_catalogue_table(path, id_column="sku", title_column="name")
    assert (info.value.source, info.value.index, info.value.field) == (str(path), 1, "name")
    report = ValidationReport()
    ds = load_catalogue_table(path, id_column="sku", title_column="name", on_error="skip", report=report)
    assert ds["item_id"] == ["A", "C"] and (report.seen, report.skipped) == (4, 2)
    assert any("duplicate" in reason for reason in report.reasons)


# ----------------------------------------------------------------------- real data: the README's counts


def _lengths(ds, column: str = "events") -> list[int]:
    """Per-row list lengths, read from Arrow (no conversion of the nested events to Python)."""
    return pc.list_value_length(ds.data.column(column)).to_pylist()


def _distinct_flat(ds, column: str) -> int:
    return pc.count_distinct(pc.list_flatten(ds.data.column(column))).as_py()


def test_diginetica_counts(shared_data):
    folder = shared_data / "diginetica"
    start = time.perf_counter()
    train = load_next_item_dataset(folder, "train")
    assert time.perf_counter() - start < 20
    assert len(train) == 719_470
    assert train[0] == {"session_id": "train:1", "item_ids": ["1"], "target": "2"}
    test = load_next_item_dataset(folder, "test")
    assert len(test) == 60_858
    stats = next_item_statistics(folder)
    assert stats == {
        "train_sessions": 186_670,
        "train_samples": 719_470,
        "test_samples": 60_858,
        "test_sessions": 15_963,
        "items": 43_097,
        "clicks": 982_961,
    }
    ids = next_item_catalogue_ids(folder)
    assert len(ids) == 43_097 and ids[0] == "1" and ids[-1] == "43097"


def test_diginetica_sessions(shared_data):
    sessions = load_next_item_sessions(shared_data / "diginetica")
    assert len(sessions) == 186_670
    assert sum(_lengths(sessions)) == 906_140


def test_rees46_counts(shared_data):
    report = ValidationReport()
    sessions, catalogue = load_rees46(shared_data / "rees46" / "events-2019-10-01-head.csv", report=report)
    assert len(sessions) == 5_066 and len(catalogue) == 6_493
    actions = Counter(pc.struct_field(pc.list_flatten(sessions.data.column("events")), "action").to_pylist())
    # The file's last line is cut off mid-user_id with no user_session. The README counts it (17,056 views,
    # 4,505 users); it cannot be placed in a session, so the loader drops it: one view and one user fewer.
    assert report.seen == 17_435 and report.skipped == 1
    assert actions == {"view": 17_056 - 1, "add_to_cart": 165, "purchase": 214}
    assert len(set(sessions["user_id"])) == 4_505 - 1
    lengths = _lengths(sessions)
    assert sum(n >= 2 for n in lengths) == 2_999 and max(lengths) == 51


def test_instacart_counts(shared_data):
    folder = shared_data / "instacart"
    assert len(load_instacart_catalogue(folder)) == 49_688
    report = ValidationReport()
    baskets = load_instacart_baskets(folder, report=report)
    assert report.seen == 150_000 and report.skipped == 0
    assert len(baskets) == 15_183
    assert sum(_lengths(baskets)) == 150_000
    orders = Counter(baskets["user_id"])
    assert len(orders) == 593
    numbers: dict[str, set[int]] = {}
    for user, number in zip(baskets["user_id"], baskets["order_number"], strict=True):
        numbers.setdefault(user, set()).add(number)
    assert all(numbers[u] == set(range(1, orders[u] + 1)) for u in orders)  # complete histories


def test_online_retail_counts(shared_data):
    path = shared_data / "online_retail" / "online_retail.parquet"
    start = time.perf_counter()
    report = ValidationReport()
    sessions, catalogue = load_online_retail(path, report=report)
    assert time.perf_counter() - start < 20
    assert report.seen == 541_909 and report.skipped == 0
    assert len(sessions) == 4_339  # customers with at least one purchase line
    assert _distinct_flat(sessions, "invoice_nos") == 18_536
    assert sum(_lengths(sessions)) == 397_924
    assert len(catalogue) == 3_958
    with_cancel, _ = load_online_retail(path, include_cancellations=True)
    assert len(with_cancel) == 4_372  # the README's customers
    assert _distinct_flat(with_cancel, "invoice_nos") == 22_190


def test_next_item_samples_of_any_sequences():
    from session_transformers.data import next_item_samples

    ds = next_item_samples([["a", "b", "c"], ["x"], ["p", "q"]], session_ids=["s1", "s2", "s3"])
    assert ds.to_dict() == {
        "session_id": ["s1", "s1", "s3"],
        "item_ids": [["a"], ["a", "b"], ["p"]],
        "target": ["b", "c", "q"],
    }
