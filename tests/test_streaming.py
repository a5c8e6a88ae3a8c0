"""Streaming corpora: sharded synthetic stores, the TAGNN++ ``sessions`` source, the engine's streaming branch.

Sharded Parquet written by the synthetic CLI; held-out files; 2 processes reading disjoint shards; a streaming run
killed with SIGKILL resuming to the uninterrupted run's weights; the memory benchmark on a small corpus.
"""

import importlib
import json
import os
import signal
import socket
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from datasets import IterableDataset
from safetensors.torch import load_file

from launch import ROOT, launch_processes, run_script
from session_transformers.data import streaming
from session_transformers.data.io import load_sessions, write_sessions
from session_transformers.data.schema import session_item_ids
from session_transformers.data.synthetic import main as synthetic_cli

sys.path.insert(0, str(ROOT / "trainers"))
import pretrain
from test_trainers import _kill_when_logged

MODEL = [
    "--model",
    "tagnn_pp",
    "--batch-size",
    "16",
    "--config",
    "hidden_size=16",
    "num_attention_heads=2",
    "score_chunk_size=64",
]


def _corpus(folder: Path, shards: int, sessions: int = 200, fmt: str = "parquet") -> Path:
    synthetic_cli(
        ["--out", str(folder), "--tiny", "--num-sessions", str(sessions), "--num-shards", str(shards)]
        + ["--format", fmt]
    )
    return folder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """The tiny store (200 sessions) in 6 Parquet shards: 4 train files, 1 validation, 1 test."""
    return _corpus(tmp_path_factory.mktemp("corpus"), 6)


def _args(*argv: str):
    args, recipe = pretrain.parse_args([*MODEL, *argv])
    return args, recipe.stage(args.stage).task


# -- the synthetic CLI's shards ------------------------------------------------------------------------------


def test_cli_writes_complete_parquet_shards_and_removes_stale_ones(tmp_path):
    one = _corpus(tmp_path / "one", 1, sessions=30)
    four = _corpus(tmp_path / "four", 4, sessions=30)
    names = sorted(p.name for p in four.glob("session*"))
    assert names == [f"session_labels-0000{i}-of-00004.parquet" for i in range(4)] + [
        f"sessions-0000{i}-of-00004.parquet" for i in range(4)
    ]
    shards = streaming.session_files(four)
    assert [len(load_sessions(p)) for p in shards] == [8, 8, 7, 7]  # contiguous ranges, sizes within one
    whole = load_sessions(one / "sessions.parquet")
    in_shards = [r for p in shards for r in load_sessions(p).to_list()]
    assert in_shards == whole.to_list()  # the same sessions, in order
    assert not list(four.glob(".*.part"))  # atomic writes leave no temporary file
    # rewriting the folder with another shard count leaves no stale shard behind
    _corpus(four, 2, sessions=30)
    assert [p.name for p in streaming.session_files(four)] == [
        "sessions-00000-of-00002.parquet",
        "sessions-00001-of-00002.parquet",
    ]
    assert len(list(four.glob("session_labels*"))) == 2
    with pytest.raises(SystemExit):
        synthetic_cli(["--out", str(tmp_path / "bad"), "--tiny", "--num-sessions", "3", "--num-shards", "4"])
    (four / "sessions-00001-of-00002.parquet").unlink()
    with pytest.raises(ValueError, match="missing indices"):
        streaming.session_files(four)


# -- the TAGNN++ `sessions` source ---------------------------------------------------------------------------


def test_streaming_and_in_memory_sources_give_the_same_splits(corpus):
    args, task = _args("--dataset", "sessions", "--data-path", str(corpus), "--streaming", "--max-steps", "5")
    streamed = task.prepare(args)
    args, task = _args("--dataset", "sessions", "--data-path", str(corpus))
    loaded = task.prepare(args)
    assert isinstance(streamed.train_dataset, IterableDataset)
    assert streamed.eval_dataset.to_list() == loaded.eval_dataset.to_list()
    assert streamed.test_dataset.to_list() == loaded.test_dataset.to_list()
    assert list(streamed.train_dataset) == loaded.train_dataset.to_list()  # same samples, same order
    files = streaming.session_files(corpus)
    # the vocabulary: the catalogue's items that the training files hold (the same streamed or not)
    trained = {i for f in files[:-2] for r in load_sessions(f) for i in session_item_ids(r)}
    assert streamed.processor.item_vocab == loaded.processor.item_vocab == sorted(trained)
    ids = lambda p: set(load_sessions(p)["session_id"])  # noqa: E731
    assert set(loaded.eval_dataset["session_id"]) <= ids(files[-2])  # validation: the file before the last
    assert set(loaded.test_dataset["session_id"]) <= ids(files[-1])  # test: the last file
    assert set(loaded.train_dataset["session_id"]) <= set().union(*map(ids, files[:-2]))
    assert "streamed" in streamed.description and "in memory" in loaded.description


def test_one_or_two_files_hold_out_their_last_sessions(tmp_path):
    for shards, fmt in ((1, "parquet"), (2, "jsonl")):
        folder = _corpus(tmp_path / str(shards), shards, sessions=40, fmt=fmt)
        split = streaming.split_corpus(folder, validation_fraction=0.1, eval_fraction=0.1)
        pieces = split.train + split.validation + split.test
        rows = [(Path(p).name, a, b) for p, a, b in pieces]
        if shards == 1:  # test: the last 4 of 40; validation: the last 3 of the other 36
            assert rows == [
                ("sessions.parquet", 0, 33),
                ("sessions.parquet", 33, 36),
                ("sessions.parquet", 36, 40),
            ]
        else:  # test: the second file; validation: the last 2 of the first file's 20
            name = "sessions-0000{}-of-00002.jsonl"
            assert rows == [(name.format(0), 0, 18), (name.format(0), 18, 20), (name.format(1), 0, None)]
        seen = [r["session_id"] for p in pieces for r in streaming.iter_sessions([p])]
        assert len(seen) == len(set(seen)) == 40  # disjoint and complete
        args, task = _args(
            "--dataset", "sessions", "--data-path", str(folder), "--streaming", "--max-steps", "1"
        )
        data = task.prepare(args)  # the vocabulary: catalogue.<fmt>'s items of the training split
        trained = {i for p in split.train for r in streaming.iter_sessions([p]) for i in session_item_ids(r)}
        assert data.processor.item_vocab == sorted(trained) and len(data.test_dataset) > 0
        assert set(data.test_dataset["session_id"]) <= set(seen[-(4 if shards == 1 else 20) :])
    with pytest.raises(FileNotFoundError, match="no session files"):
        streaming.split_corpus(tmp_path)


def test_streaming_flags_are_checked(corpus, capsys):
    with pytest.raises(SystemExit):
        _args("--dataset", "sessions", "--data-path", str(corpus), "--streaming")
    assert "--streaming needs --max-steps" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _args("--steps-per-epoch", "3")
    assert "--steps-per-epoch is for --streaming" in capsys.readouterr().err
    args, task = _args("--streaming", "--max-steps", "3")  # the synthetic source loads in memory
    with pytest.raises(ValueError, match="--dataset sessions"):
        task.prepare(args)


def test_resume_refuses_a_stream_it_cannot_replay():
    progress = pretrain.TrainingProgress()
    progress.stream_positions = [(1, 5), (2, 0)]
    progress.stream_signature = {"num_processes": 2, "batch_size": 16, "num_workers": 0, "seed": 1}
    pretrain._resume_stream(progress, dict(progress.stream_signature), rank=1)
    assert (progress.epoch, progress.batches_in_epoch) == (2, 0)
    with pytest.raises(ValueError, match="num_processes was 2, now 1"):
        pretrain._resume_stream(progress, {**progress.stream_signature, "num_processes": 1}, rank=0)


# -- processes and workers -----------------------------------------------------------------------------------


def _split_worker(folder: str, out_dir: str) -> None:
    from accelerate import Accelerator

    acc = Accelerator(cpu=True)
    seen = {}
    for epoch in (0, 1):
        ds = streaming.shuffled_split(
            streaming.stream_next_item_samples(
                streaming.stream_sessions(streaming.split_corpus(folder).train)
            ),
            rank=acc.process_index,
            world_size=acc.num_processes,
            seed=7,
            buffer_size=32,
        )
        ds.set_epoch(epoch)
        seen[epoch] = [(r["session_id"], len(r["item_ids"])) for r in ds]
    Path(out_dir, f"{acc.process_index}.json").write_text(json.dumps(seen))


@pytest.mark.parametrize("train_files", [4, 3])
def test_two_processes_read_disjoint_parts_covering_the_corpus(tmp_path, train_files):
    folder = _corpus(tmp_path / "c", train_files + 2, sessions=60)
    everything = sorted(
        [r["session_id"], len(r["item_ids"])]
        for r in streaming.next_item_dataset(streaming.split_corpus(folder).train).to_list()
    )
    with tempfile.TemporaryDirectory() as out:
        launch_processes(_split_worker, args=(str(folder), out), num_processes=2)
        parts = [json.loads(Path(out, f"{r}.json").read_text()) for r in (0, 1)]
    for epoch in ("0", "1"):
        a, b = parts[0][epoch], parts[1][epoch]
        assert a and b and sorted(a + b) == everything  # disjoint samples that cover the training files
        if train_files == 4:  # shards % processes == 0: whole files per process
            assert not {s for s, _ in a} & {s for s, _ in b}
    assert parts[0]["0"] != parts[0]["1"]  # set_epoch reshuffles


def test_dataloader_workers_share_the_shards(corpus):
    ds = streaming.stream_next_item_samples(streaming.stream_sessions(streaming.split_corpus(corpus).train))

    def samples(workers: int) -> list:
        loader = streaming.stream_loader(ds, lambda rows: rows, batch_size=8, num_workers=workers)
        return sorted((r["session_id"], len(r["item_ids"])) for batch in loader for r in batch)

    assert samples(2) == samples(0)


# -- the engine ----------------------------------------------------------------------------------------------


def test_streaming_run_killed_after_a_checkpoint_resumes_exactly(tmp_path, corpus):
    # the linear schedule changes the lr at every step, so a resumed step counter that is off shows in the weights;
    # 4 training files of ~25 batches: the run crosses epochs, the small buffer reshuffles within each
    common = [
        sys.executable,
        "trainers/pretrain.py",
        *MODEL,
        "--dataset",
        "sessions",
        "--data-path",
        str(corpus),
        "--streaming",
        "--shuffle-buffer",
        "64",
        "--num-workers",
        "2",
        "--max-steps",
        "40",
        "--checkpointing-steps",
        "4",
        "--eval-steps",
        "1000",
        "--lr-scheduler-type",
        "linear",
        "--warmup-ratio",
        "0.3",
        "--learning-rate",
        "1e-3",
    ]
    full = run_script([*common, "--output-dir", str(tmp_path / "full")])
    assert full.returncode == 0, full.stderr[-3000:]
    assert "streamed" in full.stdout
    resumed_dir = tmp_path / "resumed"
    code = _kill_when_logged([*common, "--output-dir", str(resumed_dir)], resumed_dir / "metrics.jsonl", 10)
    assert code == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (resumed_dir / "model.safetensors").exists()
    resumed = run_script([*common, "--output-dir", str(resumed_dir), "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout
    a, b = (
        load_file(str(tmp_path / "full" / "model.safetensors")),
        load_file(str(resumed_dir / "model.safetensors")),
    )
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=0, rtol=0, msg=f"{k} differs after resume")
    full_log = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    res_log = [json.loads(x) for x in (resumed_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in res_log] == list(range(1, 41))
    assert [(r["loss"], r["epoch"]) for r in res_log] == [(r["loss"], r["epoch"]) for r in full_log]
    assert full_log[-1]["epoch"] >= 1  # it crossed an epoch boundary
    state = sorted((resumed_dir / "checkpoints").glob("checkpoint_*/training_state.json"))[-1]
    progress = json.loads(state.read_text())["progress"]  # the counters are JSON: nothing is unpickled
    assert progress["stream_positions"] == [[progress["epoch"], progress["batches_in_epoch"]]]


def test_two_process_streaming_run_resumes_from_an_earlier_checkpoint(tmp_path):
    """2 CPU processes step in lockstep on their own files; losing the last checkpoints replays to the same end."""
    folder = _corpus(tmp_path / "c", 6, sessions=120)
    short = streaming.session_files(folder)[
        0
    ]  # a short training file: the processes' epochs differ in length
    write_sessions(load_sessions(short).select(range(4)), short)
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    with socket.socket() as sock:  # a free port: other 2-process runs on this machine use the default one
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    launch = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    launch += ["--main_process_port", port]
    launch += ["--mixed_precision", "no", "--dynamo_backend", "no", "trainers/pretrain.py"]
    common = [*launch, *MODEL, "--dataset", "sessions", "--data-path", str(folder), "--streaming"]
    common += [
        "--shuffle-buffer",
        "16",
        "--max-steps",
        "16",
        "--checkpointing-steps",
        "4",
        "--eval-steps",
        "1000",
    ]
    common += ["--lr-scheduler-type", "linear", "--learning-rate", "1e-3"]
    out = tmp_path / "run"
    first = run_script([*common, "--output-dir", str(out)], ACCELERATE_USE_CPU="1")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "2 process(es)" in first.stdout
    ckpts = sorted((out / "checkpoints").glob("checkpoint_*"), key=lambda p: int(p.name.rsplit("_", 1)[1]))
    positions = [
        json.loads((c / "training_state.json").read_text())["progress"]["stream_positions"] for c in ckpts
    ]
    assert all(len(p) == 2 for p in positions)  # both processes' positions, at every checkpoint
    assert any(e > 0 for p in positions for e, _ in p)  # the short epochs ended and restarted on their own
    assert any(p[0] != p[1] for p in positions)  # ... each process on its own
    final = load_file(str(out / "model.safetensors"))
    for lost in ckpts[-2:]:  # as if the run died after the step-8 checkpoint
        for f in lost.iterdir():
            f.unlink()
        lost.rmdir()
    again = run_script([*common, "--output-dir", str(out), "--resume"], ACCELERATE_USE_CPU="1")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "at step 8" in again.stdout
    replayed = load_file(str(out / "model.safetensors"))
    for k in final:
        torch.testing.assert_close(final[k], replayed[k], atol=0, rtol=0, msg=f"{k} differs after resume")


# -- the memory benchmark ------------------------------------------------------------------------------------


def test_streaming_memory_benchmark_records_rss_along_the_stream(tmp_path, monkeypatch):
    bench = importlib.import_module("benchmarks.streaming_memory")  # by name: its corpus writer is spawned
    path = bench.main(
        ["--num-sessions", "300", "--num-shards", "5", "--every", "50", "--results-dir", str(tmp_path / "r")]
        + ["--corpus-dir", str(tmp_path / "corpus"), "--shuffle-buffer", "100"]
    )
    record = json.loads(Path(path).read_text())
    figures = record["figures"]
    assert figures["corpus"]["session_files"] == 5 and figures["corpus"]["written"]
    marks = figures["rss_checkpoints"]
    assert len(marks) >= 3 and marks[-1]["sessions"] == figures["stream"]["sessions_with_samples"] > 0
    assert all(m["rss_mib"] > 0 and "load_1m" in m for m in marks)
    assert figures["stream"]["samples"] > figures["stream"]["sessions_with_samples"]
    assert "<corpus>" in record["data"] and os.fspath(tmp_path) not in record["data"]
    again = bench.main(
        ["--num-sessions", "300", "--num-shards", "5", "--every", "50", "--results-dir", str(tmp_path / "r")]
        + ["--corpus-dir", str(tmp_path / "corpus")]
    )
    assert not json.loads(Path(again).read_text())["figures"]["corpus"]["written"]  # the corpus was reused
