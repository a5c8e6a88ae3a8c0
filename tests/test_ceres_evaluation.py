"""CERES evaluation through the recipe: the paper's eval pools (one per evaluation split, from its own sessions),
the pool embedded once per evaluation (with the same metrics as encoding it in every batch), and fixed pretraining
eval masks."""

import argparse
import dataclasses

import numpy as np
import pytest
import torch

from session_transformers.models.ceres import (
    CeresForPreTraining,
    CeresForSessionRetrieval,
    retrieval,
    sources,
    tasks,
)
from session_transformers.models.ceres.processing_ceres import candidate_key
from session_transformers.recipes import RECIPES, resolve_data_arguments, training_parser

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
    "hidden_dropout_prob=0.0",
    "attention_probs_dropout_prob=0.0",
]
TINY = ["--model", "ceres", "--store-preset", "tiny", "--num-sessions", "200"]
TASKS = ("product_search", "query_search", "entity_linking")


def recipe_args(*argv: str, task: str | None = None) -> argparse.Namespace:
    """The trainers' flags for the tiny store (parsed as the trainers parse them), the given ones added."""
    argv = [*TINY, *(["--task", task] if task else []), *argv, *CONFIG]
    parser, found, _ = training_parser("test", argv, with_task=task is not None)
    return resolve_data_arguments(parser, parser.parse_args(argv), found)


def _tiny_store(args):
    from session_transformers.data.synthetic import SyntheticStore, SyntheticStoreConfig

    return SyntheticStore(
        dataclasses.replace(SyntheticStoreConfig.tiny(), seed=args.seed, num_sessions=args.num_sessions)
    )


# --- 1. the eval pools --------------------------------------------------------------------------------------


def test_synthetic_search_results_are_the_lists_the_shopper_browsed(monkeypatch):
    from session_transformers.data import synthetic

    store = _tiny_store(argparse.Namespace(seed=42, num_sessions=120))
    browsed: dict[int, list[list[str]]] = {}
    set_results = synthetic._Shopper._set_results

    def record(shopper, results):
        browsed.setdefault(shopper.index, []).append([store.item_ids[k] for k in results])
        set_results(shopper, results)

    monkeypatch.setattr(synthetic._Shopper, "_set_results", record)
    sessions = [store.session(i) for i in range(120)]
    monkeypatch.setattr(synthetic._Shopper, "_set_results", set_results)
    subjects = {ev["subject"] for s in sessions for ev in s["events"] if ev["action"] == "search"}
    assert subjects == {"keyword_query", "product_query", "image_query"}
    for i, session in enumerate(sessions):
        expected = [r[: sources.PAPER_SEARCH_RESULTS] for r in browsed.get(i, [])]
        assert sources.synthetic_search_results(store, session) == expected


def test_paper_product_search_pool_is_the_purchases_plus_the_search_engines_first_ten():
    args = recipe_args(task="product_search")
    assert args.eval_pool == "paper"
    data = RECIPES["ceres"].finetune["product_search"].prepare(args)
    store = _tiny_store(args)
    # one pool per evaluation split, from that split's own sessions only
    for split, dataset in (("validation", data.eval_dataset), ("test", data.test_dataset)):
        purchased, shown = [], []
        for row in dataset:
            purchased.append(row["targets"][0]["item_id"])
            # the session with its image vectors
            raw = store.session(int(row["session_id"].rsplit("-", 1)[1]))
            for ev in raw["events"]:
                if ev["action"] != "search":
                    continue
                if ev["query"] is not None:
                    found = store.search(ev["query"].split())
                else:
                    found = list(store.search_image(np.asarray(ev["image"], dtype=np.float32)))
                shown += [store.item_ids[k] for k in found[:10]]
        expected = list(dict.fromkeys(purchased + shown))
        assert [c["item_id"] for c in data.collate_fn.pools[split]] == expected, split
        assert len(expected) > len(set(purchased))  # hard negatives joined the purchases
        assert f"{split} eval pool (the paper's)" in data.description
    assert data.collate_fn.pools["validation"] != data.collate_fn.pools["test"]
    assert "first 10 results" in data.description
    purchased = [row["targets"][0]["item_id"] for row in data.eval_dataset]

    random_pool = (
        RECIPES["ceres"]
        .finetune["product_search"]
        .prepare(recipe_args("--eval-pool", "random", "--num-candidates", "30", task="product_search"))
    )
    pool = random_pool.collate_fn.pools["validation"]
    assert len(pool) == 30 and [c["item_id"] for c in pool[: len(set(purchased))]] == list(
        dict.fromkeys(purchased)
    )
    assert "eval pool (random)" in random_pool.description


def test_paper_pool_without_search_results_falls_back_to_purchases_and_seeded_products():
    args = recipe_args(task="product_search")
    splits = sources.ceres_source(args)
    catalogue = splits.catalogue
    evaluation = tasks.product_search_examples(splits.test)
    train = tasks.product_search_examples(splits.train)
    bare = [{k: v for k, v in s.items() if k != "search_results"} for s in splits.test]  # as REES46's
    ns = argparse.Namespace(dataset="rees46", seed=3, num_candidates=40)
    pool, description = retrieval._eval_pool(
        "product_search", "paper", evaluation, train, bare, catalogue, None, ns
    )
    targets = tasks.candidate_pool(evaluation)
    assert len(pool) == 40 and pool[: len(targets)] == targets
    assert all(c["item_id"] in catalogue for c in pool)
    assert "no search-engine results" in description and "falls back" in description
    again, _ = retrieval._eval_pool("product_search", "paper", evaluation, train, bare, catalogue, None, ns)
    assert again == pool  # seeded


def test_rees46_paper_pool_falls_back(shared_data):
    rees = shared_data / "rees46"
    if not rees.is_dir():
        pytest.skip(f"{rees} is absent")
    argv = ["--dataset", "rees46", "--data-path", str(rees), "--eval-fraction", "0.5"]
    args = recipe_args(*argv, "--max-eval-samples", "20", "--num-candidates", "60", task="product_search")
    data = RECIPES["ceres"].finetune["product_search"].prepare(args)
    assert len(data.collate_fn.pools["validation"]) == len(data.collate_fn.pools["test"]) == 60
    assert "rees46 sessions carry no search-engine results" in data.description
    assert "falls back" in data.description
    # REES46 sessions are split by time: the test sessions are the latest
    assert "ordered by start time" in data.description
    splits = sources.ceres_source(args)

    def start(session):
        return min(ev["timestamp"] for ev in session["events"])

    assert max(map(start, splits.train)) <= min(map(start, splits.validation))
    assert max(map(start, splits.validation)) <= min(map(start, splits.test))
    test_ids = {s["session_id"] for s in splits.test}
    assert set(data.test_dataset["session_id"]) <= test_ids
    assert not test_ids & (set(data.train_dataset["session_id"]) | set(data.eval_dataset["session_id"]))


def test_paper_query_search_and_entity_linking_pools():
    args = recipe_args(task="query_search")
    data = RECIPES["ceres"].finetune["query_search"].prepare(args)
    for split, dataset in (("validation", data.eval_dataset), ("test", data.test_dataset)):
        last_queries = list(dict.fromkeys(r["targets"][0]["query"] for r in dataset))
        # all last queries of the split, nothing else
        assert [c["query"] for c in data.collate_fn.pools[split]] == last_queries, split
        assert (
            f"{split} eval pool (the paper's): all {len(last_queries)} distinct last queries"
            in data.description
        )

    args = recipe_args(task="entity_linking")
    data = RECIPES["ceres"].finetune["entity_linking"].prepare(args)
    splits = sources.ceres_source(args)
    catalogue = splits.catalogue
    every_entity = {candidate_key(e) for i in catalogue for e in tasks.product_entities(i, catalogue)}
    every_label = {
        candidate_key(t)
        for ex in tasks.entity_linking_examples(splits.train, catalogue)
        for t in ex["targets"]
    }
    for split, dataset in (("validation", data.eval_dataset), ("test", data.test_dataset)):
        pool = [candidate_key(c) for c in data.collate_fn.pools[split]]
        assert len(pool) == len(set(pool))
        eval_targets = list(dict.fromkeys(candidate_key(t) for r in dataset for t in _clean(r["targets"])))
        assert pool[: len(eval_targets)] == eval_targets  # the split's own labels first
        assert every_entity | every_label <= set(pool)  # every possible product attribute
    assert "every possible product attribute" in data.description


def _clean(specs):
    return [{k: v for k, v in s.items() if v is not None} for s in specs]


# --- 2. the pool embedded once per evaluation -------------------------------------------------------------


def _counters(model):
    calls = {"candidates": 0, "item_encoder": 0}
    encode = model.embed_candidates

    def counted(*args, **kwargs):
        calls["candidates"] += 1
        return encode(*args, **kwargs)

    model.embed_candidates = counted
    model.ceres.item_encoder.register_forward_hook(
        lambda *_: calls.__setitem__("item_encoder", calls["item_encoder"] + 1)
    )
    return calls


@pytest.mark.parametrize("name", TASKS)
def test_eval_pool_is_embedded_once_per_evaluation_with_the_per_batch_metrics(name):
    task = RECIPES["ceres"].finetune[name]
    data = task.prepare(recipe_args(task=name))
    torch.manual_seed(0)
    model = CeresForSessionRetrieval(data.config).eval()
    calls = _counters(model)
    rows = list(data.eval_dataset)
    batches = [data.collate_fn(rows[i : i + 2]) for i in range(0, len(rows), 2)]
    assert len(batches) >= 2 and all("candidate_input_ids" not in b for b in batches)
    # what the collator used to attach to every eval batch: the whole pool's inputs
    pool = data.collate_fn.pools["validation"]
    pool_inputs = dict(data.processor.encode_candidates(pool, data.collate_fn.catalogue))

    def evaluate(make_batch):
        with torch.no_grad():
            outs = [task.eval_step(model, make_batch(b)) for b in batches]
        return task.summarize({k: torch.cat([o[k] for o in outs]) for k in outs[0]}), outs

    new, new_outs = evaluate(dict)
    assert calls == {"candidates": 1, "item_encoder": len(batches) + 1}  # sessions per batch, the pool once
    old, old_outs = evaluate(
        lambda b: {**{k: v for k, v in b.items() if k != "candidate_pool"}, **pool_inputs}
    )
    assert calls["candidates"] == 1 + len(batches)
    assert new == old
    for a, b in zip(new_outs, old_outs):
        torch.testing.assert_close(a["ranks"], b["ranks"], rtol=0, atol=0, equal_nan=True)
    # a second evaluation (eval() again, as the trainers do) embeds the pool once more
    model.eval()
    assert evaluate(dict)[0] == new and calls["candidates"] == 2 + len(batches)
    # retrieval.evaluate_retrieval is this same evaluation
    examples = [{**r, "targets": _clean(r["targets"])} for r in rows]
    assert retrieval.evaluate_retrieval(
        model, data.processor, examples, data.collate_fn.catalogue, pool, batch_size=2
    ) == pytest.approx(new)


def test_trainer_and_accelerate_evaluations_embed_the_pool_once(tmp_path):
    from accelerate import Accelerator
    from torch.utils.data import DataLoader
    from transformers import Trainer, TrainingArguments

    task = RECIPES["ceres"].finetune["query_search"]
    data = task.prepare(recipe_args(task="query_search"))
    torch.manual_seed(0)
    model = CeresForSessionRetrieval(data.config).eval()
    calls = _counters(model)
    reference = retrieval.evaluate_retrieval(
        model,
        data.processor,
        [{**r, "targets": _clean(r["targets"])} for r in data.eval_dataset],
        data.collate_fn.catalogue,
        data.collate_fn.pools["validation"],
        batch_size=2,
    )
    keys: list[str] = []

    def preprocess(logits, labels):
        out = task.per_example(logits, labels)
        keys[:] = sorted(out)
        return tuple(out[k] for k in keys)

    def compute(prediction):
        return task.summarize({k: torch.as_tensor(v) for k, v in zip(keys, prediction.predictions)})

    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            output_dir=str(tmp_path),
            per_device_eval_batch_size=2,
            use_cpu=True,
            report_to="none",
            remove_unused_columns=False,
        ),
        eval_dataset=data.eval_dataset,
        data_collator=data.collate_fn,
        compute_metrics=compute,
        preprocess_logits_for_metrics=preprocess,
    )
    calls["candidates"] = 0
    result = trainer.evaluate()
    assert calls["candidates"] == 1 and len(data.eval_dataset) > 2  # several batches, one pool embedding
    for k, v in reference.items():
        assert result[f"eval_{k}"] == pytest.approx(v)

    accelerator = Accelerator(cpu=True)
    loader = accelerator.prepare(DataLoader(data.eval_dataset, batch_size=2, collate_fn=data.collate_fn))
    model.eval()
    calls["candidates"] = 0
    with torch.no_grad():
        outs = [task.eval_step(model, dict(batch)) for batch in loader]
    assert calls["candidates"] == 1
    assert task.summarize({k: torch.cat([o[k] for o in outs]) for k in outs[0]}) == pytest.approx(reference)


# --- 3. fixed pretraining eval masks ------------------------------------------------------------------------


def test_pretraining_eval_masks_are_fixed_and_leave_the_training_masks_alone():
    task = RECIPES["ceres"].pretrain
    data = task.prepare(recipe_args())
    assert data.eval_collate_fn is not None
    eval_rows = list(data.eval_dataset)
    train_rows = [data.train_dataset[i] for i in range(16)]
    torch.manual_seed(0)
    model = CeresForPreTraining(data.config)

    def evaluate(collate):
        model.eval()
        with torch.no_grad():
            outs = [
                task.eval_step(model, dict(collate(eval_rows[i : i + 4])))
                for i in range(0, len(eval_rows), 4)
            ]
        model.train()
        return task.summarize({k: torch.cat([o[k] for o in outs]) for k in outs[0]})

    first = evaluate(data.collate_fn)  # the trainers' collate_fn sees the eval rows' "evaluate" flag
    torch.rand(3)  # training draws from the global RNG in between
    assert evaluate(data.collate_fn) == first and first["num_masked_tokens"] > 0
    assert evaluate(data.eval_collate_fn) == first

    def training_batches(evaluate_in_between: bool):
        torch.manual_seed(1)
        a = data.collate_fn(train_rows[:8])
        if evaluate_in_between:
            evaluate(data.collate_fn)
            evaluate(data.eval_collate_fn)
        return a, data.collate_fn(train_rows[8:])

    for plain, with_eval in zip(training_batches(False), training_batches(True)):
        assert torch.equal(plain["input_ids"], with_eval["input_ids"])
        assert torch.equal(plain["labels"], with_eval["labels"])
