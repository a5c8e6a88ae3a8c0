"""CERES through the generic trainers: the paper's protocol as defaults, CERES's own flags, pretrain on the tiny
store, fine-tune product search, train / validation / test splits, REES46 smoke test."""

import json
import math
import sys

import pytest
import torch

from launch import run_script

CONFIG = [
    "--config",
    "hidden_size=32",
    "num_hidden_layers=1",
    "num_attention_heads=2",
    "intermediate_size=64",
    "num_cross_attention_layers=1",
    "num_latent_tokens=2",
    "retrieval_projection_size=16",
    "max_position_embeddings=160",
]
TINY = ["--model", "ceres", "--store-preset", "tiny", "--num-sessions", "200", "--batch-size", "8"]


def _args(argv: list[str], with_task: bool = False):
    from session_transformers.recipes import resolve_data_arguments, training_parser

    parser, recipe, _ = training_parser("test", argv, with_task=with_task)
    return resolve_data_arguments(parser, parser.parse_args(argv), recipe)


def _help(*argv: str) -> str:
    res = run_script([sys.executable, *argv, "--help"])
    assert res.returncode == 0, res.stderr[-3000:]
    return " ".join(res.stdout.split())  # argparse wraps lines


def test_help_shows_the_papers_protocols_and_the_ceres_flags():
    from session_transformers.models.ceres.recipe import FINETUNE_PROTOCOL, PRETRAIN_PROTOCOL
    from session_transformers.recipes import RECIPES, training_parser

    # the paper's Sec. 4.2: Adam, peak 3e-5, 1% linear warm-up, linear decay to 1e-5, 512 sessions a step
    p = PRETRAIN_PROTOCOL
    assert (p.learning_rate, p.warmup_ratio, p.min_learning_rate, p.batch_size) == (3e-5, 0.01, 1e-5, 512)
    assert p.lr_scheduler_type == "linear" and p.optimizer in ("adam", "adamw")
    assert p.select_best == "loss" and p.greater_is_better is False
    # fine-tuning: 10 epochs, lr from the paper's grid, selected by validation MAP@1, the rest as pretraining
    f = FINETUNE_PROTOCOL
    assert f.num_epochs == 10 and f.learning_rate in (1e-4, 1e-5, 5e-5, 5e-6) and f.learning_rate > 1e-5
    assert f.select_best == "MAP@1" and f.greater_is_better is True
    assert (f.optimizer, f.lr_scheduler_type, f.warmup_ratio, f.min_learning_rate) == (
        p.optimizer,
        p.lr_scheduler_type,
        p.warmup_ratio,
        p.min_learning_rate,
    )
    recipe = RECIPES["ceres"]
    assert recipe.protocol is p and recipe.task_protocol(recipe.pretrain) is p
    assert all(recipe.task_protocol(task) is f for task in recipe.finetune.values())

    pre = _help("trainers/pretrain.py", "--model", "ceres")
    for shown in ("3e-05", "512", "1e-05", "linear", "loss"):
        assert f"(default: {shown})" in pre, shown
    assert "CERES paper, Sec. 4.2" in pre and "global batch" in pre
    for flag in ("--item-encoder-from", "--num-candidates", "--eval-pool", "--pretrain-corpus"):
        assert flag in pre, flag
    # finetune.py builds its parser the same way, with the task's protocol (in process: one subprocess less)
    parser, _, _ = training_parser("test", ["--model", "ceres", "--task", "query_search"], with_task=True)
    ft = " ".join(parser.format_help().split())
    for shown in ("5e-05", "10.0", "MAP@1", "True"):
        assert f"(default: {shown})" in ft, shown
    assert "--item-encoder-from PATH" in ft and "--eval-pool {paper,random}" in ft
    tagnn = _help("trainers/pretrain.py", "--model", "tagnn_pp")
    for flag in ("--item-encoder-from", "--num-candidates", "--eval-pool", "--pretrain-corpus"):
        assert flag not in tagnn, flag  # a recipe's own flags stay with it
    # parsed: CERES's flags exist whenever --model ceres, and only then
    args = _args(["--model", "ceres"])
    assert (args.num_candidates, args.eval_pool, args.pretrain_corpus, args.item_encoder_from) == (
        100,
        "paper",
        "sessions",
        None,
    )
    assert not hasattr(_args(["--model", "tagnn_pp"]), "item_encoder_from")


def test_pretrain_then_finetune_product_search(tmp_path):
    pre = run_script(
        [
            sys.executable,
            "trainers/pretrain.py",
            *TINY,
            *CONFIG,
            "--max-steps",
            "3",
            "--output-dir",
            str(tmp_path / "pre"),
        ]
    )
    assert pre.returncode == 0, pre.stderr[-3000:]
    results = json.loads((tmp_path / "pre" / "eval_results.json").read_text())
    assert results["optimizer_steps"] == 3 and results["selected_by"] == "loss"  # the protocol's selection
    for split in ("validation", "test"):
        metrics = results[split]
        assert metrics["num_masked_tokens"] > 0
        # an untrained LM head over the vocabulary: loss near log(V), finite
        assert 0 < metrics["mlm_loss"] < 20 and 0 < metrics["gmlm_loss"] < 20
        assert math.isclose(metrics["loss"], metrics["mlm_loss"] + metrics["gmlm_loss"], rel_tol=1e-6)
    assert (tmp_path / "pre" / "model.safetensors").exists()
    assert (tmp_path / "pre" / "processor_config.json").exists()

    ft = run_script(
        [
            sys.executable,
            "trainers/finetune.py",
            *TINY,
            "--task",
            "product_search",
            "--init-from",
            str(tmp_path / "pre"),
            "--max-steps",
            "2",
            "--use-cpu",
            "--save-steps",
            "1000",
            "--eval-pool",
            "random",
            "--num-candidates",
            "50",
            "--output-dir",
            str(tmp_path / "ft"),
        ]
    )
    assert ft.returncode == 0, ft.stderr[-3000:]
    results = json.loads((tmp_path / "ft" / "eval_results.json").read_text())
    for split in ("validation", "test"):  # each split ranked against its own pool of 50
        out = results[split]
        assert out[f"{split}_num_samples"] >= 1 and out[f"{split}_pool_size"] == 50
        for k in (1, 32, 64):
            assert 0 <= out[f"{split}_MAP@{k}"] <= out[f"{split}_Recall@{k}"] + 1e-6 <= 100 + 1e-6
            # one relevant candidate per session: the paper's Recall@K is the share of relevant items too
            assert out[f"{split}_Recall@{k}"] == out[f"{split}_ItemRecall@{k}"]
        assert out[f"{split}_Recall@64"] == 100.0  # one relevant candidate in a pool of 50


def test_retrieval_tasks_prepare_and_rank(tmp_path):
    """Each fine-tuning task builds examples and a fixed pool per evaluation split (validation, test; both cut by
    --max-eval-samples); per_example turns logits into fixed-width ranks."""
    from session_transformers.models.ceres import CeresCandidatePool, CeresForSessionRetrieval
    from session_transformers.models.ceres.retrieval import CERES_MAX_RELEVANT
    from session_transformers.recipes import RECIPES, resolve_data_arguments, training_parser

    for task_name in ("product_search", "query_search", "entity_linking"):
        argv = [*TINY, "--task", task_name, "--max-eval-samples", "6", *CONFIG]
        parser, recipe, _ = training_parser("test", argv, with_task=True)
        args = resolve_data_arguments(parser, parser.parse_args(argv), recipe)
        task = RECIPES["ceres"].finetune[task_name]
        data = task.prepare(args)
        assert len(data.train_dataset) > 0 and 0 < len(data.eval_dataset) <= 6
        assert 0 < len(data.test_dataset) <= 6
        assert set(data.collate_fn.pools) == {"validation", "test"}
        model = CeresForSessionRetrieval(data.config).eval()
        train_batch = data.collate_fn([data.train_dataset[i] for i in range(min(4, len(data.train_dataset)))])
        assert model(**train_batch).loss.isfinite()
        for split, dataset in (("validation", data.eval_dataset), ("test", data.test_dataset)):
            rows = [dataset[i] for i in range(len(dataset))]
            assert {r["evaluate"] for r in rows} == {split}
            pool = data.collate_fn.pools[split]
            batch = data.collate_fn(rows)
            assert batch["labels"].shape == (len(rows), len(pool))
            assert isinstance(batch["candidate_pool"], CeresCandidatePool)  # tokenised once, not per batch
            assert len(batch["candidate_pool"]) == len(pool) and "candidate_input_ids" not in batch
            with torch.no_grad():
                out = task.per_example(model(**batch).logits, batch["labels"])
            ranks = out["ranks"]
            assert ranks.shape == (len(rows), CERES_MAX_RELEVANT)
            n_relevant = (~ranks.isnan()).sum(1)
            assert torch.equal(n_relevant, batch["labels"].sum(1).long())
            assert bool((ranks[~ranks.isnan()] >= 1).all()) and bool(
                (ranks[~ranks.isnan()] <= out["pool_size"][0]).all()
            )
            summary = task.summarize(out)
            assert 0 <= summary["MAP@1"] <= 100 and summary["num_samples"] == len(rows)
        with pytest.raises(ValueError, match="mixes rows of several splits"):
            data.collate_fn([data.eval_dataset[0], data.test_dataset[0]])


def test_splits_are_disjoint_sessions_test_last():
    """Train / validation / test are disjoint sets of sessions: the last 10% the test split, 10% of the rest
    (the latest) validation; every task and pretraining keep to them. No validation split: test only."""
    from session_transformers.models.ceres.sources import ceres_source
    from session_transformers.recipes import RECIPES

    def index(session_id: str) -> int:
        return int(session_id.rsplit("-", 1)[1])

    args = _args(TINY)
    splits = ceres_source(args)
    ids = {name: [s["session_id"] for s in getattr(splits, name)] for name in ("train", "validation", "test")}
    assert (len(ids["train"]), len(ids["validation"]), len(ids["test"])) == (162, 18, 20)
    assert max(map(index, ids["train"])) < min(map(index, ids["validation"]))
    assert max(map(index, ids["validation"])) < min(map(index, ids["test"]))

    def session_ids(dataset) -> set[str]:
        return set(dataset["session_id"])

    pre = RECIPES["ceres"].pretrain.prepare(args)
    assert session_ids(pre.eval_dataset) == set(ids["validation"]) and session_ids(pre.test_dataset) == set(
        ids["test"]
    )
    for name, task in RECIPES["ceres"].finetune.items():
        data = task.prepare(_args([*TINY, "--task", name], with_task=True))
        train, validation, test = (
            session_ids(d) for d in (data.train_dataset, data.eval_dataset, data.test_dataset)
        )
        assert train <= set(ids["train"]) and validation <= set(ids["validation"]), name
        assert test and test <= set(ids["test"]), name  # so disjoint from train and validation
    data = RECIPES["ceres"].pretrain.prepare(_args([*TINY, "--validation-fraction", "0"]))
    assert data.eval_dataset is None and len(data.test_dataset) == 20  # no validation: never the test split


def test_ranks_known_answer():
    from session_transformers.recipes import RECIPES

    task = RECIPES["ceres"].finetune["product_search"]
    logits = torch.tensor([[0.9, 0.1, 0.5], [0.2, 0.3, 0.1]])
    labels = torch.tensor([[0.0, 0.0, 1.0], [1.0, -1.0, 0.0]])  # row 2: candidate 1 is not in its pool
    out = task.per_example(logits, labels)
    assert out["ranks"][:, 0].tolist() == [2.0, 1.0]
    assert out["pool_size"].tolist() == [3.0, 2.0]
    summary = task.summarize(out)
    assert summary["MAP@1"] == 50.0 and summary["Recall@32"] == 100.0
    # two relevant candidates (ranks 1 and 3 of 4) and one (rank 2): the paper's Recall@K counts a session when
    # all its relevant candidates are in the top K; ItemRecall@K is the share of relevant candidates
    logits = torch.tensor([[0.9, 0.1, 0.5, 0.7], [0.4, 0.3, 0.1, 0.0]])
    labels = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    out = task.per_example(logits, labels)
    assert out["ranks"][0, :2].tolist() == [1.0, 3.0] and out["ranks"][1, 0] == 2.0
    summary = task.summarize(out)
    assert summary["Recall@1"] == 0.0 and summary["ItemRecall@1"] == 25.0  # (1/2 + 0) / 2
    assert summary["MAP@1"] == 50.0  # row 0: 1 / min(2, 1); row 1: 0
    assert summary["Recall@32"] == summary["ItemRecall@32"] == 100.0


def test_pretrain_rees46_smoke(tmp_path, shared_data):
    rees = shared_data / "rees46"
    if not rees.is_dir():
        pytest.skip(f"{rees} is absent")
    res = run_script(
        [
            sys.executable,
            "trainers/pretrain.py",
            "--model",
            "ceres",
            "--dataset",
            "rees46",
            "--data-path",
            str(rees),
            "--max-train-samples",
            "64",
            "--max-eval-samples",
            "32",
            "--batch-size",
            "16",
            *CONFIG,
            "--max-steps",
            "2",
            "--output-dir",
            str(tmp_path / "rees"),
        ]
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "REES46" in res.stdout
    results = json.loads((tmp_path / "rees" / "eval_results.json").read_text())
    assert results["optimizer_steps"] == 2 and 0 < results["validation"]["loss"] < 40


def test_pretrain_item_encoder_from_bert_checkpoint(tmp_path):
    """--item-encoder-from: the BERT folder's tokenizer, sizes and weights start the item encoder."""
    import string

    from safetensors.torch import load_file
    from transformers import BertConfig, BertModel, BertTokenizerFast

    letters = list(string.ascii_lowercase + string.digits)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *letters, *("##" + c for c in letters)]
    bert_dir = tmp_path / "bert"
    BertTokenizerFast(vocab={t: i for i, t in enumerate(vocab)}).save_pretrained(bert_dir)
    torch.manual_seed(0)
    bert_config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=24,
        num_hidden_layers=2,
        num_attention_heads=3,
        intermediate_size=48,
        max_position_embeddings=160,
    )
    BertModel(bert_config).save_pretrained(bert_dir)
    res = run_script(
        [
            sys.executable,
            "trainers/pretrain.py",
            *TINY,
            "--item-encoder-from",
            str(bert_dir),
            "--config",
            "num_cross_attention_layers=1",
            "num_latent_tokens=2",
            "--learning-rate",
            "0",
            "--lr-scheduler-type",
            "constant",  # the protocol's linear decay to 1e-5 needs a peak above it
            "--max-steps",
            "1",
            "--output-dir",
            str(tmp_path / "pre"),
        ]
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "item encoder initialised from" in res.stdout
    config = json.loads((tmp_path / "pre" / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"]) == (24, 2, 3)
    assert config["vocab_size"] > len(vocab)  # [SEARCH] and the [ATTRTYPE] tokens were added
    ours = load_file(str(tmp_path / "pre" / "model.safetensors"))
    theirs = load_file(str(bert_dir / "model.safetensors"))
    prefix = "ceres.item_encoder."
    assert torch.equal(
        ours[prefix + "layers.1.attention.query.weight"],
        theirs["encoder.layer.1.attention.self.query.weight"],
    )
    assert torch.equal(
        ours[prefix + "embeddings.word_embeddings.weight"][: len(vocab)],
        theirs["embeddings.word_embeddings.weight"],
    )
