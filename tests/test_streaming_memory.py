"""benchmarks/streaming_memory.py for the processors of CERES, UBM, MUVCOG and Product BYOL: a 2,000-session corpus
streamed through each family's collator, the report's structure, and the sessions (and pairs) it counts against
counts made independently from the corpus. (TAGNN++'s mode is tested in test_streaming.py.)"""

import json
import os
from pathlib import Path

import pytest

from session_transformers.data import streaming
from session_transformers.data.io import iter_records
from session_transformers.models.product_byol.processing_product_byol import session_pairs

ROOT = Path(__file__).resolve().parents[1]
NUM_SESSIONS = 2000


# imported by name, as test_process_parity does: the benchmark's spawned corpus writer finds it in the child
from benchmarks import streaming_memory  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The benchmark's main on one corpus (written by the first call, reused by the others)."""
    bench, tmp = streaming_memory, tmp_path_factory.mktemp("streaming-memory")
    corpus, results = tmp / "corpus", tmp / "results"

    def _run(family: str, *extra: str) -> tuple[dict, Path]:
        argv = ["--processor", family, "--num-sessions", str(NUM_SESSIONS), "--num-shards", "4"]
        argv += ["--every", "500", "--corpus-dir", str(corpus), "--results-dir", str(results)]
        argv += ["--fit-sessions", "300", "--vocab-size", "600", "--word2vec-epochs", "0", *extra]
        path = bench.main(argv)
        assert Path(path).name == f"streaming_memory_{family}.json"
        return json.loads(Path(path).read_text()), corpus

    return _run


def _sessions(corpus: Path) -> list[dict]:
    return list(streaming.iter_sessions([(str(f), 0, None) for f in streaming.session_files(corpus)]))


def _check_report(record: dict, family: str) -> dict:
    figures = record["figures"]
    assert record["name"] == f"streaming_memory_{family}" and figures["processor"] == family
    assert figures["sessions"] == NUM_SESSIONS and figures["corpus"]["session_files"] == 4
    assert "/tmp/" not in record["data"] and os.fspath(ROOT) not in record["data"]
    marks = figures["rss_checkpoints"]
    assert [m["sessions"] for m in marks] == sorted(m["sessions"] for m in marks)
    assert marks[-1]["sessions"] == figures["stream"]["sessions_read"] == NUM_SESSIONS
    assert all(m["rss_mib"] > 0 and m["peak_rss_mib"] >= m["rss_mib"] - 1 and "load_1m" in m for m in marks)
    assert figures["peak_rss_mib"] >= max(m["rss_mib"] for m in marks) - 1
    assert figures["rss_range_while_streaming_mib"] >= 0 and figures["sessions_per_s"] > 0
    assert figures["load_average_1m"].keys() == {"start", "end"}
    return figures


@pytest.mark.parametrize("family", ["ceres", "ubm"])
def test_text_families_collate_every_session_with_text(run, family):
    record, corpus = run(family)
    figures = _check_report(record, family)
    assert len(figures["rss_checkpoints"]) >= 4  # every 500 sessions of 2,000 (batches of 128 / 512)
    sessions = _sessions(corpus)
    with_text = sum(
        any(ev["subject"] in ("item", "keyword_query", "product_query") for ev in s["events"])
        for s in sessions
    )
    stream = figures["stream"]
    assert stream["sessions_collated"] == with_text > 0
    assert stream["sessions_skipped"] == NUM_SESSIONS - with_text
    assert stream["batches"] == -(-NUM_SESSIONS // figures["settings"]["batch_size"])


def test_muvcog_collates_both_views_of_every_session_with_a_query(run):
    record, corpus = run("muvcog", "--batch-size", "100")
    figures = _check_report(record, "muvcog")
    stream = figures["stream"]
    assert stream["batches"] == NUM_SESSIONS // 100
    with_query = sum(any(ev["subject"] != "item" for ev in s["events"]) for s in _sessions(corpus))
    # a query whose words are all outside the fitted vocabulary (and no image) leaves its session out
    assert 0.9 * with_query <= stream["sessions_collated"] <= with_query
    assert stream["sessions_collated"] + stream["sessions_skipped"] == NUM_SESSIONS


def test_product_byol_streams_the_pairs_of_every_session(run):
    record, corpus = run("product_byol", "--batch-size", "512", "--shuffle-buffer", "100")
    figures = _check_report(record, "product_byol")
    catalogue = {
        r["item_id"]
        for r in iter_records(streaming.catalogue_path(corpus, prefer=".parquet"))
        if r.get("title")
    }
    expected = sum(
        len(
            list(
                session_pairs(
                    [
                        ev["item_id"]
                        for ev in s["events"]
                        if ev["subject"] == "item" and ev["item_id"] in catalogue
                    ]
                )
            )
        )
        for s in _sessions(corpus)
    )
    stream = figures["stream"]
    assert stream["pairs"] == expected > NUM_SESSIONS
    assert stream["batches"] == -(-expected // 512)
    # streamed, not read first: the first batch comes before the reader has read every session (the pair map
    # reads 1,000 sessions at a time, so 2,000 sessions give two marks)
    marks = figures["rss_checkpoints"]
    assert len(marks) >= 2 and marks[0]["sessions"] < NUM_SESSIONS


def test_a_partial_run_streams_the_first_sessions_of_the_corpus(run):
    _, corpus = run("ubm")  # the corpus of the other tests
    files = streaming.session_files(corpus)
    pieces = streaming_memory._pieces(files, 1300)
    assert sum(b - a for _, a, b in pieces) == 1300 and [p[0] for p in pieces] == [str(f) for f in files[:3]]
    assert [s["session_id"] for s in streaming.iter_sessions(pieces)] == [
        s["session_id"] for s in _sessions(corpus)
    ][:1300]
    assert streaming_memory._pieces(files, None) == [(str(f), 0, None) for f in files]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--processor", "all"], "needs --corpus-dir"),
        (["--max-sessions", "10"], "not to tagnn_pp"),
        (["--processor", "product_byol", "--num-workers", "2"], "--num-workers 0"),
    ],
)
def test_flags_are_checked_before_anything_runs(argv, message, capsys):
    with pytest.raises(SystemExit):
        streaming_memory.main(["--num-sessions", "300", "--num-shards", "3", *argv])
    assert message in capsys.readouterr().err
