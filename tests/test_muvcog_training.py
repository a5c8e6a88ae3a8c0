"""MUVCOG through the generic trainers, in process and at toy size, and a learning test on the synthetic store.

MUVCOG's inputs (keyword, product and image queries) exist in no real data set under ``../shared/data``, so every
test here runs on the synthetic store (its image vectors carry a visual pattern that no text field has).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate.state import AcceleratorState
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "trainers"))
import finetune
import pretrain
from session_transformers.models.muvcog.tasks import COPY_SCALES, choose_copy_scale

TINY = ["--model", "muvcog", "--store-preset", "tiny", "--num-sessions", "300", "--word2vec-epochs", "1"]
SMALL = [
    "--config",
    "hidden_size=16",
    "discriminator_hidden_sizes=[32,16]",
    "query_suggestion_hidden_size=32",
]


def _args(**overrides) -> argparse.Namespace:
    from session_transformers.recipes import resolve_data_arguments, training_parser

    argv = [*TINY, *SMALL]
    parser, recipe, _ = training_parser("test", argv)
    args = resolve_data_arguments(parser, parser.parse_args(argv), recipe)
    for k, v in overrides.items():
        setattr(args, k, v)
    return args


def test_recipe_protocol_flags_and_splits():
    from session_transformers.models.muvcog.recipe import PRETRAIN_PROTOCOL
    from session_transformers.models.muvcog.sources import muvcog_source
    from session_transformers.recipes import RECIPES

    recipe = RECIPES["muvcog"]
    assert recipe.protocol is PRETRAIN_PROTOCOL and PRETRAIN_PROTOCOL.optimizer == "adam"
    assert set(recipe.finetune) == {"query_suggestion", "click_prediction"}
    assert all(task.baseline is not None for task in recipe.finetune.values())
    assert recipe.quickstart is not None and recipe.quickstart.finetune_task in recipe.finetune
    args = _args()
    assert args.min_queries == 2 and not args.text_only and args.image_query_rate == 0.6
    splits = muvcog_source(args)
    ids = [{s["session_id"] for s in part} for part in (splits.train, splits.validation, splits.test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2]) and all(ids)
    assert all(sum(e["subject"] != "item" for e in s["events"]) >= 2 for s in splits.train)
    assert any(e["subject"] == "image_query" for s in splits.train for e in s["events"])


def test_pretrain_then_finetune_both_tasks_in_process(tmp_path):
    results = (
        pretrain.main(  # two random-negative warm-up steps, then hard negatives: the trainer's step hook
            [*TINY, *SMALL, "hard_negative_warmup_steps=2", "--max-steps", "3", "--batch-size", "16"]
            + ["--output-dir", str(tmp_path / "pre")]
        )
    )
    AcceleratorState._reset_state(reset_partial_state=True)
    assert results["optimizer_steps"] == 3 and results["selected_by"] == "selection_loss"
    for split in ("validation", "test"):
        m = results[split]
        assert m["num_samples"] >= 1 and m["loss"] > 0 and 0 <= m["pair_accuracy"] <= 100
        assert 1 <= m["distinct_hard_negatives"] <= 16  # pools of the training batch size
    log = [json.loads(line) for line in (tmp_path / "pre" / "metrics.jsonl").read_text().splitlines()]
    assert any("validation/distinct_hard_negatives" in r for r in log)  # the hub effect, logged over training
    assert json.loads((tmp_path / "pre" / "config.json").read_text())["hard_negative_warmup_steps"] == 2
    for name in ("model.safetensors", "processor_config.json", "word_vectors.safetensors"):
        assert (tmp_path / "pre" / name).exists(), name
    for task, metric in (("query_suggestion", "Avg.Sim"), ("click_prediction", "MRR@10")):
        out = finetune.main(
            [
                *TINY,
                "--task",
                task,
                "--init-from",
                str(tmp_path / "pre"),
                "--max-steps",
                "2",
                "--batch-size",
                "16",
            ]
            + ["--use-cpu", "--save-steps", "1000", "--output-dir", str(tmp_path / task)]
        )
        AcceleratorState._reset_state(reset_partial_state=True)
        test = out["test"]
        if task == "query_suggestion":  # the copy head's scale, set on the validation split before test
            tuned = out["tuned_on_validation"]
            assert tuned["copy_scale"] in COPY_SCALES and len(tuned["validation NDCG@10 by copy scale"]) == 6
            recorded = json.loads((tmp_path / task / "eval_results.json").read_text())["tuned_on_validation"]
            assert recorded == tuned
        else:
            assert out["tuned_on_validation"] is None if "tuned_on_validation" in out else True
        assert test["test_num_samples"] >= 1 and 0 <= test["test_HR@10"] <= 1
        assert test["test_NDCG@10"] <= test["test_HR@10"] + 1e-9 and f"test_{metric}" in test
        saved = json.loads((tmp_path / task / "config.json").read_text())
        assert saved["model_type"] == "muvcog" and saved["hidden_size"] == 16
    # the click head's catalogue came from the task, although the pretrained checkpoint had none
    assert json.loads((tmp_path / "click_prediction" / "config.json").read_text())["num_items"] == 96


class _CopyHead(torch.nn.Module):
    def __init__(self, weights):
        super().__init__()
        self.copy_weights = torch.nn.Parameter(torch.tensor(weights))


def test_copy_scale_is_the_best_on_validation_and_ties_keep_the_smaller():
    head = _CopyHead([1.0, 0.5, 0.25])
    by_scale = {1.0: 0.50, 1.5: 0.52, 2.0: 0.53, 2.5: 0.53, 3.0: 0.51, 4.0: 0.40}

    def score():  # what the validation split would give at the head's current weights
        return {"NDCG@10": by_scale[float(head.copy_weights[0])], "HR@10": 0.9}

    chosen = choose_copy_scale(head, score)
    assert chosen["copy_scale"] == 2.0  # 2.0 and 2.5 tie: the smaller change wins
    assert chosen["validation NDCG@10 by copy scale"] == {str(k): v for k, v in by_scale.items()}
    assert head.copy_weights.tolist() == [2.0, 1.0, 0.5]  # the model keeps the chosen weights
    assert choose_copy_scale(torch.nn.Linear(2, 2), score) is None  # the paper's head: nothing to set


def test_finetuning_twice_with_one_seed_gives_the_same_model(tmp_path):
    """The head a pretrained checkpoint lacks is initialised after ``set_seed``: before, it came from whatever the
    global RNG held, and two runs of one command selected different checkpoints (the main job's MUVCOG row moved
    from run to run)."""
    pretrain.main(
        [*TINY, *SMALL, "--max-steps", "2", "--batch-size", "16", "--output-dir", str(tmp_path / "pre")]
    )
    AcceleratorState._reset_state(reset_partial_state=True)
    weights = []
    for run in ("a", "b"):
        torch.manual_seed(len(run) * 7 + ord(run))  # a different global RNG state before each run
        finetune.main(
            [*TINY, "--task", "query_suggestion", "--init-from", str(tmp_path / "pre"), "--max-steps", "3"]
            + ["--batch-size", "16", "--use-cpu", "--save-steps", "1000", "--output-dir", str(tmp_path / run)]
        )
        AcceleratorState._reset_state(reset_partial_state=True)
        weights.append(load_file(tmp_path / run / "model.safetensors"))
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        assert torch.equal(weights[0][name], weights[1][name]), name


def test_word_vectors_are_the_same_on_two_threads_run_to_run():
    """The skip-gram's lookups are ``F.embedding``: the backward of ``vectors[ids]`` accumulates on several CPU
    threads in no fixed order, and the vectors (and every MUVCOG figure trained on them) differed run to run."""
    from session_transformers.models.muvcog.processing_muvcog import train_word_vectors

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(300)]
    sentences = [list(rng.choice(words, size=rng.integers(2, 8))) for _ in range(6000)]
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runs = [train_word_vectors(sentences, dim=16, epochs=1, batch_size=4096)[1] for _ in range(3)]
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(runs[0], runs[1]) and torch.equal(runs[0], runs[2])


def _train(model, data, steps: int, lr: float, batch_size: int = 64, seed: int = 0) -> list[float]:
    from session_transformers.trainer_utils import freeze_parameters

    freeze_parameters(model)
    torch.manual_seed(seed)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    loader = torch.utils.data.DataLoader(
        data.train_dataset, batch_size, shuffle=True, collate_fn=data.collate_fn
    )
    losses, step = [], 0
    model.train()
    while step < steps:
        for batch in loader:
            if hasattr(model, "set_training_step"):  # what the trainers' before_optimizer_step hook does
                model.set_training_step(step + 1)
            loss = model(**batch).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(float(loss.detach()))
            step += 1
            if step >= steps:
                break
    return losses


def _intent(model, data, args, level: int, classifier: str) -> dict:
    from session_transformers.models.muvcog.sources import muvcog_source
    from session_transformers.models.muvcog.tasks import (
        evaluate_intent_classification,
        intent_labels,
        session_features,
    )

    splits = muvcog_source(args)
    (train_x, train_i), (test_x, test_i) = (
        session_features(model, data.processor, part) for part in (splits.train, splits.test)
    )
    labels = [intent_labels(part, level) for part in (splits.train, splits.test)]
    return evaluate_intent_classification(
        train_x,
        [labels[0][i] for i in train_i],
        test_x,
        [labels[1][i] for i in test_i],
        classifier=classifier,
    )


def _pretrained(args, steps: int, lr: float, batch_size: int):
    from session_transformers.models.muvcog import MuvcogForPreTraining
    from session_transformers.models.muvcog.recipe import _prepare_pretrain

    data = _prepare_pretrain(args)
    torch.manual_seed(0)
    model = MuvcogForPreTraining(data.config)
    data.init_weights(model)
    losses = _train(model, data, steps=steps, lr=lr, batch_size=batch_size)
    return model, data, losses


def test_learns_at_toy_size():
    """Tiny store: the contrastive loss falls in both phases of the negatives (random for 20 steps, then hard:
    the switch raises the loss, so each phase is compared with itself), and intent classification (the leaf
    category's parent) on the frozen session features beats the majority class on held-out sessions."""
    args = _args(num_sessions=600, config_overrides={"hard_negative_warmup_steps": 20})  # random, then hard
    model, data, losses = _pretrained(args, steps=60, lr=1e-2, batch_size=32)
    random_phase, hard_phase = losses[:20], losses[20:]
    assert np.mean(random_phase[-10:]) < np.mean(random_phase[:10]) - 0.05, random_phase
    assert np.mean(hard_phase[-10:]) < np.mean(hard_phase[:10]) - 0.05, hard_phase
    scores = _intent(model, data, args, level=1, classifier="logistic")
    assert scores["model"]["Acc"] > scores["majority"]["Acc"] + 0.15, scores


@pytest.mark.slow
def test_learns_on_the_synthetic_store():
    """Default store: the loss falls in the random-negative warm-up (100 steps) and again once hard negatives
    take over (their loss starts higher: they are harder); frozen features + the query-suggestion head (the default,
    with its copy head) beat the popularity baseline on held-out sessions and the paper's head trained alike;
    intent classification beats the majority class. (At this size the copy head does not beat repeating the
    previous query: 0.36 against 0.41 NDCG@10 on 161 test sessions; at 8,000 sessions it does, see the MUVCOG
    claims benchmark.)"""
    from session_transformers.models.muvcog import MuvcogForQuerySuggestion
    from session_transformers.models.muvcog.recipe import RECIPE
    from session_transformers.models.muvcog.tasks import _prepare_query_suggestion, evaluate_task

    args = _args(
        store_preset="default",
        num_sessions=2000,
        word2vec_epochs=3,
        config_overrides={"hard_negative_warmup_steps": 100},
    )
    model, data, losses = _pretrained(args, steps=200, lr=5e-3, batch_size=64)
    warmup, hard = losses[:100], losses[100:]
    assert np.mean(warmup[-20:]) < np.mean(warmup[:20]) - 0.1, (warmup[:5], warmup[-5:])
    assert np.mean(hard[-20:]) < np.mean(hard[:20]) - 0.1, (hard[:5], hard[-5:])

    scores = _intent(model, data, args, level=0, classifier="hgb")
    assert scores["model"]["Acc"] > scores["majority"]["Acc"] + 0.2, scores

    qs = _prepare_query_suggestion(args)
    task = RECIPE.finetune["query_suggestion"]
    got = {}
    for copy in (True, False):  # the default copy head (not the paper's), and the paper's head
        head = MuvcogForQuerySuggestion(
            qs.config.__class__(**{**qs.config.to_dict(), "query_suggestion_copy": copy})
        )
        head.muvcog.load_state_dict(model.muvcog.state_dict())
        _train(head, qs, steps=600, lr=1e-2)
        got[copy] = evaluate_task(head, qs, task)
    baselines = task.baseline(qs)
    print({"copy head": got[True], "paper's head": got[False], **baselines})  # shown with pytest -s
    assert got[True]["NDCG@10"] > baselines["popularity"]["NDCG@10"] + 0.03, (got, baselines)
    assert got[True]["NDCG@10"] > got[False]["NDCG@10"] + 0.03, got
