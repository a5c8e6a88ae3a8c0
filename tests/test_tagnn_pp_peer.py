"""The peer benchmark's bookkeeping (``benchmarks/tagnn_pp_peer.py``): its work folder is git-ignored, so a new
variant's result file is only complete when the runs already recorded can be recreated from the committed one."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "tagnn_pp_peer.json"


def test_rehydrated_work_folder_summarises_to_the_committed_result(tmp_path):
    peer = importlib.import_module("benchmarks.tagnn_pp_peer")
    recorded = json.loads(RESULT.read_text())["figures"]
    made = peer.rehydrate(tmp_path, RESULT)
    assert len(made) == len(recorded["authors_code"]["runs"]) + len(recorded["ours"]) + 1
    # the forward check too: rewriting the file without --check-forward must not drop it
    assert json.loads((tmp_path / "forward_check.json").read_text()) == recorded["forward_check"]
    authors = {
        int(f.stem[4:]): json.loads(f.read_text()) for f in sorted((tmp_path / "authors").glob("seed*.json"))
    }
    assert peer.summary(authors, 3) == recorded["authors_code"]["by_epoch"]
    for name, variant in recorded["ours"].items():
        runs = peer._runs(tmp_path / "ours" / name)
        epochs = max((len(r) for r in runs.values()), default=0)
        assert peer.summary(runs, epochs) == variant["by_epoch"], name
        settings = peer._variant_settings(tmp_path / "ours" / name / "variant.json")
        assert settings["config"] == variant["config"]
        assert settings["group_by_length"] == variant.get("group_by_length", "false")
        assert settings["item_order"] == variant.get("item_order", "sorted")
    assert peer.rehydrate(tmp_path, RESULT) == []  # runs already there are left as they are


def test_the_peer_row_is_the_fp32_random_batch_default():
    """Only the variant that trains as the authors' code does (random batches, fp32) with today's defaults is
    the peer table's row; length-grouped and bf16 variants of the same config are not."""
    recorded = json.loads(RESULT.read_text())["figures"]
    row = recorded["ours"][recorded["default_variant"]]
    assert row.get("group_by_length", "false") == "false" and row.get("mixed_precision") is None
    assert row.get("item_order", "sorted") == "sorted"
    peer = importlib.import_module("benchmarks.tagnn_pp_peer")
    assert peer.is_default(row["config"])
