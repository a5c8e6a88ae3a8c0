"""A model trained on a shop's own data gets a card that describes that training: the data set's name (never the
synthetic store by default), its fingerprint, the exact commands, the split, the fine-tuning protocol, the
checkpoint's own figures, and no path of the machine that trained it.

The end-to-end test trains on a renamed slice of Diginetica copied into a temporary folder (a stand-in for a shop's
``train_sessions.txt`` + ``test.tsv``): pretraining, then fine-tuning from it, then ``release.py publish --dry-run``
of both, exactly as a user would.
"""

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from launch import ROOT, run_script
from session_transformers import hub
from session_transformers.provenance import (
    PROVENANCE_FILE,
    fingerprint,
    portable_command,
    portable_path,
    scrub_paths,
    training_history,
)

TINY_MODEL = ["--config", "hidden_size=16", "num_attention_heads=2", "--batch-size", "32", "--threads", "1"]


def test_portable_paths_and_commands(tmp_path):
    inside = ROOT / "runs" / "x"
    assert portable_path(inside, cwd=ROOT) == "runs/x"
    assert portable_path("relative/data") == "relative/data"
    assert portable_path(tmp_path / "my-shop", cwd=ROOT) == "path/to/my-shop"
    text = f"read {tmp_path}/my-shop/train_sessions.txt and ../shared/data/diginetica at 69 samples/s"
    scrubbed = scrub_paths(text, cwd=ROOT)
    assert str(tmp_path) not in scrubbed and "path/to/train_sessions.txt" in scrubbed
    assert (
        "../shared/data/diginetica" in scrubbed and "samples/s" in scrubbed
    )  # relative paths and units stay
    assert scrub_paths("https://arxiv.org/abs/2204.04303") == "https://arxiv.org/abs/2204.04303"
    command = portable_command(
        "pretrain.py",
        ["--data-path", str(tmp_path / "shop"), f"--output-dir={tmp_path}/out"],
        num_processes=2,
    )
    assert command == (
        "accelerate launch --num_processes 2 trainers/pretrain.py --data-path path/to/shop --output-dir=path/to/out"
    )
    # mixed precision from the launcher is said by the launcher, from the script's own flag by the flag alone
    assert portable_command("pretrain.py", ["--model", "x"], mixed_precision="bf16") == (
        "accelerate launch --num_processes 1 --mixed_precision bf16 trainers/pretrain.py --model x"
    )
    flagged = ["--model", "x", "--mixed-precision", "bf16"]
    assert portable_command("pretrain.py", flagged, mixed_precision="bf16") == (
        "python trainers/pretrain.py --model x --mixed-precision bf16"
    )


def test_fingerprint_follows_the_content_not_the_location(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
        (folder / "train_sessions.txt").write_text("1 2 3\n4 5\n")
        (folder / "test.tsv").write_text("prefix\ttarget\n1 2\t3\n")
    assert fingerprint(a) == fingerprint(b) and fingerprint(a)["files"] == 2
    (b / "test.tsv").write_text("prefix\ttarget\n1 2\t4\n")
    assert fingerprint(a)["sha256"] != fingerprint(b)["sha256"]


def test_a_folder_without_a_record_must_be_named(tmp_path):
    """Never the synthetic store by default: an unrecorded folder's card needs the data set's name."""
    from test_hub_cards import FOLDERS

    FOLDERS["tagnn_pp"](tmp_path)
    (tmp_path / "eval_results.json").write_text(json.dumps({"test": {"HR@20": 12.0}}))
    with pytest.raises(ValueError, match="--dataset-name"):
        hub.render_card(tmp_path)
    text = str(hub.render_card(tmp_path, dataset_name="corner-shop"))
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["datasets"] == ["corner-shop"] and "synthetic" not in text.split("## How to use")[0]
    assert "The training command was not recorded" in text


def _slice(shared_data: Path, folder: Path, sessions: int = 1500, cases: int = 300) -> None:
    """The first ``sessions`` training sessions and ``cases`` test cases of Diginetica, under another name."""
    folder.mkdir()
    source = shared_data / "diginetica"
    with open(source / "train_sessions.txt") as fh:
        (folder / "train_sessions.txt").write_text("".join(next(fh) for _ in range(sessions)))
    with open(source / "test.tsv") as fh:
        (folder / "test.tsv").write_text("".join(next(fh) for _ in range(cases + 1)))


def _card_text(release: Path) -> str:
    return (release / "README.md").read_text()


def _no_machine_path(release: Path, *paths: Path) -> None:
    for f in release.iterdir():
        if f.suffix in (".md", ".json"):
            text = f.read_text()
            for p in paths:
                assert str(p) not in text, f"{f.name} holds the machine path {p}"
            assert not re.search(r"(?<![\w.])/(tmp|home|root|work|Users)/", text), f"{f.name}: {text[:2000]}"


@pytest.mark.real_data
def test_card_of_a_model_trained_on_a_renamed_real_data_set(tmp_path, shared_data):
    shop = tmp_path / "corner-shop"
    _slice(shared_data, shop)
    pre, fine = tmp_path / "pre", tmp_path / "fine"
    common = ["--model", "tagnn_pp", "--dataset", "session_lines", "--data-path", str(shop), *TINY_MODEL]
    res = run_script(
        [sys.executable, "trainers/pretrain.py", *common, "--max-steps", "6", "--learning-rate", "1e-3"]
        + ["--output-dir", str(pre)]
    )
    assert res.returncode == 0, res.stderr[-3000:]
    res = run_script(
        [sys.executable, "trainers/finetune.py", *common, "--task", "next_item", "--init-from", str(pre)]
        + ["--max-steps", "4", "--logging-steps", "2", "--use-cpu", "--output-dir", str(fine)]
    )
    assert res.returncode == 0, res.stderr[-3000:]

    # the record: name, fingerprint, split sizes, protocol; items seen only in test.tsv are not in the vocabulary
    record = json.loads((pre / PROVENANCE_FILE).read_text())
    assert record["dataset"]["name"] == "corner-shop" and record["dataset"]["loader"] == "session_lines"
    assert record["dataset"]["fingerprint"] == fingerprint(shop)
    assert record["dataset"]["path"] == "path/to/corner-shop"
    assert record["protocol"]["learning_rate"] == 1e-3 and record["optimizer_steps"] == 6
    vocab = json.loads((pre / "processor_config.json").read_text())["item_vocab"]
    train_items = {i for line in (shop / "train_sessions.txt").read_text().splitlines() for i in line.split()}
    assert set(vocab) == train_items
    results = json.loads((pre / "eval_results.json").read_text())
    assert results["test"]["num_unknown_targets"] > 0  # test targets never seen in training: counted misses
    # the data line's count of cases that cannot be hit is the figure the evaluation reports
    misses = int(results["test"]["num_unknown_targets"])
    assert f"test_cases_scored_as_misses {misses}" in record["split"]["description"]
    assert record["split"]["test"] == results["test"]["num_samples"]
    history = training_history(json.loads((fine / PROVENANCE_FILE).read_text()))
    assert [r["script"] for r in history] == ["pretrain.py", "finetune.py"]

    for folder, script in ((pre, "pretrain.py"), (fine, "finetune.py")):
        release = tmp_path / f"release-{folder.name}"
        res = run_script(
            [sys.executable, "trainers/release.py", "publish", str(folder), "--repo-id", "me/corner-shop"]
            + ["--dry-run", str(release)]
        )
        assert res.returncode == 0, res.stderr[-3000:]
        text = _card_text(release)
        meta = hub.check_card_metadata(text)
        assert meta["datasets"] == ["corner-shop"]
        index = meta["model-index"][0]["results"][0]
        assert index["dataset"]["name"] == "corner-shop" and index["dataset"]["split"] == "test"
        figures = hub.split_metrics(json.loads((folder / "eval_results.json").read_text()), "test")
        assert {m["name"]: m["value"] for m in index["metrics"]}["HR@20"] == round(figures["HR@20"], 4)
        assert "# TAGNN++ session recommender (corner-shop)" in text
        assert "synthetic store" not in text.split("## Evaluation results")[0]
        assert "not recorded" not in text
        assert (
            f"python trainers/pretrain.py {' '.join(common).replace(str(shop), 'path/to/corner-shop')}"
            in text
        )
        assert f"python trainers/{script} " in text
        assert record["dataset"]["fingerprint"]["sha256"][:16] in text
        assert "samples_per_second" not in text and "runtime" not in text
        assert "strongest trivial baseline" in text
        assert f"{int(figures['num_unknown_targets'])} of the test cases hold items outside" in text
        _no_machine_path(release, tmp_path, ROOT)
    # the fine-tuning card describes both runs and the fine-tuning protocol
    assert (
        "**Pretraining stage 1**" in text
        and "**Fine-tuning** (`trainers/finetune.py`, task `next_item`)" in text
    )
    assert text.count("Protocol: adam") == 2

    # publish --dataset-name overrides the record
    release = tmp_path / "renamed"
    res = run_script(
        [sys.executable, "trainers/release.py", "publish", str(pre), "--repo-id", "me/x", "--no-verify"]
        + ["--no-plot", "--dataset-name", "acme-sessions-2024", "--dry-run", str(release)]
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert hub.check_card_metadata(_card_text(release))["datasets"] == ["acme-sessions-2024"]
