"""benchmarks/RESULTS.md is made from benchmarks/results/*.json, and the renderer turns figures into tables."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    return importlib.import_module(f"benchmarks.{name}")


def test_results_md_is_generated_from_the_result_files():
    table = _load("make_results_table")
    assert (ROOT / "benchmarks" / "RESULTS.md").read_text() == table.render(), (
        "RESULTS.md is stale: run python -m benchmarks.make_results_table"
    )


def test_every_result_file_records_how_it_was_made():
    for f in sorted((ROOT / "benchmarks" / "results").glob("*.json")):
        record = json.loads(f.read_text())
        assert {"name", "command", "data", "machine", "date", "figures"} <= set(record), f.name
        assert record["name"] == f.stem and record["figures"], f.name
        assert "/work/" not in record["command"] and "/tmp/" not in record["command"], f.name


def test_renderer_makes_row_tables_and_record_tables(tmp_path):
    table = _load("make_results_table")
    record = {
        "name": "demo",
        "command": "python benchmarks/demo.py",
        "data": "d",
        "machine": "m",
        "date": "2026-01-01",
        "figures": {
            "wall_seconds": 12.5,
            "results": {"A": {"MAP@1": 1.0, "n": 3}, "B": {"MAP@1": 2.0, "n": 4}},
            "claims": [{"claim": "A beats B", "verdict": "does not hold"}],
        },
    }
    (tmp_path / "demo.json").write_text(json.dumps(record))
    text = table.render(tmp_path)
    assert "| wall_seconds | 12.5 |" in text
    assert "|  | MAP@1 | n |" in text and "| B | 2 | 4 |" in text
    assert "| # | claim | verdict |" in text and "| 1 | A beats B | does not hold |" in text


def test_benchmarks_are_a_package_without_path_edits():
    """Every benchmark is a module of the ``benchmarks`` package (``python -m benchmarks.<name>``): none edits
    ``sys.path`` to find its neighbours, the package or the trainers."""
    import ast

    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        tree = ast.parse(path.read_text())
        edits = [
            node.lineno
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and node.attr == "path"
            and getattr(node.value, "id", None) == "sys"
        ]
        assert not edits, f"{path.name} uses sys.path (lines {edits})"


def test_the_shared_timer_times_each_call_once_on_the_inputs_in_turn_with_this_processs_threads():
    import torch
    from benchmarks._common import time_calls

    seen, threads = [], []

    def call(x):
        seen.append(x)
        threads.append(torch.get_num_threads())

    before = torch.get_num_threads()
    measured = time_calls(call, ["a", "b", "c"], repeats=4, warmup=2)
    assert seen == ["a", "b", "c", "a", "b", "c"]  # two warm-up calls, then four timed ones, cycling
    assert len(measured.times) == 4 and all(t >= 0 for t in measured.times)
    assert set(threads) == {before}  # the process's threads (torch.utils.benchmark.Timer defaults to 1)
    with pytest.raises(ValueError, match="repeats >= 1"):
        time_calls(call, ["a"], repeats=0)
