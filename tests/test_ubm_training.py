"""UBM training: both pretraining stages through ``trainers/pretrain.py``, fine-tuning through ``trainers/finetune.py``
(in-process), the paper's task construction, baselines, and learning tests (losses fall, metrics beat baselines)."""

import argparse
import json
import random
import sys
from pathlib import Path

import pytest
import torch

from session_transformers.data.schema import item_event, query_event
from session_transformers.models.ubm import UbmConfig, UbmForPreTraining, UbmStage1Collator, UbmStage2Collator
from session_transformers.models.ubm.recipe import _TINY as QUICKSTART_CONFIG  # the quickstart's model size
from session_transformers.models.ubm.recipe import (
    RECIPE,
    next_item_examples,
    purchase_intent_examples,
    remaining_length_examples,
    ubm_source,
)
from session_transformers.models.ubm.tasks import action_features, nip_baseline, pip_baseline, rlp_baseline
from session_transformers.trainer_utils import PreparedData, freeze_parameters

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "trainers"))
import finetune
import pretrain

TINY = [
    "--store-preset",
    "tiny",
    "--vocab-size",
    "400",
    "--max-validation-samples",
    "32",
    "--max-eval-samples",
    "32",
    "--eval-batch-size",
    "32",
]
TINY_CONFIG = [
    "--config",
    "hidden_size=32",
    "num_hidden_layers=1",
    "num_attention_heads=2",
    "intermediate_size=64",
    "num_session_layers=1",
    "session_num_attention_heads=2",
    "session_intermediate_size=64",
    "interaction_pooling=mean",
]


@pytest.fixture(scope="module")
def stage2_dir(tmp_path_factory):
    """Stage 1 then stage 2 of UBM pretraining through ``pretrain.main``, at toy size."""
    out = tmp_path_factory.mktemp("ubm")
    pretrain.main(
        [
            "--model",
            "ubm",
            "--stage",
            "1",
            *TINY,
            *TINY_CONFIG,
            "--max-steps",
            "2",
            "--batch-size",
            "16",
            "--output-dir",
            str(out / "s1"),
        ]
    )
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    pretrain.main(
        [
            "--model",
            "ubm",
            "--stage",
            "2",
            *TINY,
            "--max-steps",
            "2",
            "--batch-size",
            "8",
            "--init-from",
            str(out / "s1"),
            "--output-dir",
            str(out / "s2"),
        ]
    )
    return out


def test_two_stages_through_pretrain(stage2_dir):
    s1 = json.loads((stage2_dir / "s1" / "eval_results.json").read_text())
    assert {"loss", "loss1", "loss2"} <= s1["test"].keys()
    s2 = json.loads((stage2_dir / "s2" / "eval_results.json").read_text())
    assert {"loss", "loss3", "loss4"} <= s2["test"].keys()
    stages = json.loads((stage2_dir / "s2" / "pretraining_stages.json").read_text())["stages"]
    assert [s["name"] for s in stages] == ["interaction_encoder", "session"]
    assert stages[0]["protocol"]["learning_rate"] == 3e-5 and stages[1]["protocol"]["batch_size"] == 8
    assert (stage2_dir / "s2" / "tokenizer.json").exists()
    config = UbmConfig.from_pretrained(stage2_dir / "s2")
    assert config.hidden_size == 32  # stage 2 kept stage 1's architecture


def test_activation_checkpointing_flag_in_both_trainers(stage2_dir, tmp_path, monkeypatch, capsys):
    """``--activation-checkpointing`` turns it on in ``pretrain.py`` (stage 2 from the same stage-1 weights gives the
    same losses as without it) and through the Trainer in ``finetune.py``; a model without it is refused before
    any data is read."""
    from accelerate.state import AcceleratorState

    from session_transformers.models.ubm import UbmForNextItemPrediction

    enabled = []
    for cls in (UbmForPreTraining, UbmForNextItemPrediction):
        original = cls.activation_checkpointing_enable
        monkeypatch.setattr(
            cls,
            "activation_checkpointing_enable",
            lambda self, *a, _o=original, **k: enabled.append(type(self).__name__) or _o(self, *a, **k),
        )
    stage2 = ["--model", "ubm", "--stage", "2", *TINY, "--max-steps", "2", "--batch-size", "8"]
    stage2 += ["--init-from", str(stage2_dir / "s1")]
    results = {}
    for flag in ((), ("--activation-checkpointing",)):
        AcceleratorState._reset_state(reset_partial_state=True)
        out = tmp_path / ("ckpt" if flag else "plain")
        pretrain.main([*stage2, *flag, "--output-dir", str(out)])
        results[bool(flag)] = json.loads((out / "eval_results.json").read_text())["test"]
    assert enabled == ["UbmForPreTraining"]
    for key in ("loss", "loss3", "loss4"):
        assert results[True][key] == pytest.approx(results[False][key], rel=1e-5, abs=1e-6), key

    finetune.main(
        [
            "--model", "ubm", "--task", "next_item", *TINY, "--init-from", str(stage2_dir / "s2"),
            "--max-steps", "1", "--batch-size", "8", "--nip-negatives", "8", "--use-cpu",
            "--output-dir", str(tmp_path / "nip"), "--save-steps", "1000", "--activation-checkpointing",
        ]
    )  # fmt: skip
    assert enabled == ["UbmForPreTraining", "UbmForNextItemPrediction"]

    with pytest.raises(SystemExit):
        pretrain.parse_args(["--model", "muvcog", "--activation-checkpointing"])
    assert (
        "MuvcogForPreTraining (muvcog) does not support activation checkpointing" in capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        finetune.parse_args(["--model", "product_byol", "--activation-checkpointing"])
    assert "(product_byol) does not support activation checkpointing" in capsys.readouterr().err


def test_stage2_refuses_a_folder_without_stage1(tmp_path):
    with pytest.raises(SystemExit):
        pretrain.parse_args(["--model", "ubm", "--stage", "2", "--init-from", str(tmp_path)])
    with pytest.raises(SystemExit):
        pretrain.parse_args(["--model", "ubm", "--stage", "2"])


def test_stage1_trains_only_the_interaction_encoder():
    model = UbmForPreTraining(
        UbmConfig(
            vocab_size=50,
            hidden_size=16,
            num_attention_heads=2,
            intermediate_size=32,
            num_hidden_layers=1,
            num_session_layers=1,
            session_num_attention_heads=2,
            session_intermediate_size=32,
        )
    )
    freeze_parameters(model, RECIPE.stage(1).trainable)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("ubm.interaction_encoder.") for n in trainable)
    assert any(n.startswith("ubm.session_encoder.") for n, _ in model.named_parameters())
    protocols = [RECIPE.stage_protocol(s) for s in RECIPE.pretraining_stages()]
    assert [p.batch_size for p in protocols] == [512, 128]
    assert all(
        p.learning_rate == 3e-5 and p.warmup_ratio == 0.1 and p.lr_scheduler_type == "linear"
        for p in protocols
    )
    ft = RECIPE.task_protocol(RECIPE.finetune["purchase_intent"])
    # purchase intent selects by validation AUROC (its validation loss is lowest before the head has learnt)
    assert (ft.batch_size, ft.learning_rate, ft.select_best, ft.greater_is_better) == (
        32,
        3e-5,
        "AUROC",
        True,
    )
    for task in ("remaining_length", "next_item"):  # the paper's rule: the lowest validation loss
        other = RECIPE.task_protocol(RECIPE.finetune[task])
        assert (other.batch_size, other.select_best, other.greater_is_better) == (32, "loss", False)


def test_finetune_next_item_from_the_pretrained_model(stage2_dir, tmp_path):
    results = finetune.main(
        [
            "--model",
            "ubm",
            "--task",
            "next_item",
            *TINY,
            "--init-from",
            str(stage2_dir / "s2"),
            "--max-steps",
            "2",
            "--batch-size",
            "8",
            "--nip-negatives",
            "8",
            "--use-cpu",
            "--output-dir",
            str(tmp_path / "nip"),
            "--save-steps",
            "1000",
        ]
    )
    assert {"test_HR@10", "test_HR@20", "test_MRR@10", "test_MRR@20", "test_loss"} <= results["test"].keys()
    assert (tmp_path / "nip" / "model.safetensors").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "task,keys", [("purchase_intent", ("AUROC", "kappa")), ("remaining_length", ("MSLE", "R2"))]
)
def test_finetune_session_tasks(stage2_dir, tmp_path, task, keys):
    results = finetune.main(
        [
            "--model",
            "ubm",
            "--task",
            task,
            *TINY,
            "--init-from",
            str(stage2_dir / "s2"),
            "--max-steps",
            "2",
            "--batch-size",
            "8",
            "--use-cpu",
            "--output-dir",
            str(tmp_path / task),
            "--save-steps",
            "1000",
        ]
    )
    assert {f"test_{k}" for k in keys} <= results["test"].keys()


# --- task construction and baselines -----------------------------------------------------------------------


def _session(sid, actions, items=None):
    items = items or [f"i{k}" for k in range(len(actions))]
    return {"session_id": sid, "events": [item_event(a, i) for a, i in zip(actions, items)]}


def test_purchase_intent_examples_cut_before_the_purchase():
    sessions = [
        _session("buy", ["view"] * 5 + ["add_to_cart", "purchase", "view"]),
        _session("short_buy", ["view"] * 3 + ["purchase"]),
        _session("browse", ["view"] * 5),
        _session("short", ["view"] * 4),
    ]
    ex = purchase_intent_examples(sessions)
    assert [(e["session_id"], len(e["events"]), e["label"]) for e in ex] == [
        ("buy", 6, 1.0),
        ("browse", 5, 0.0),
    ]
    assert all(ev["action"] != "purchase" for e in ex for ev in e["events"])


def test_remaining_length_examples_cut_before_the_32nd():
    sessions = [_session(f"s{n}", ["view"] * n) for n in (5, 6, 9, 60)]
    ex = remaining_length_examples(sessions, random.Random(0))
    assert [e["session_id"] for e in ex] == ["s6", "s9", "s60"]
    for e in ex:
        n = int(e["session_id"][1:])
        assert 5 <= len(e["events"]) <= min(n - 1, 31) and e["label"] == n - len(e["events"])


def test_next_item_filtering():
    common = [f"c{k}" for k in range(3)]
    train = [_session(f"t{k}", ["view"] * 3, common) for k in range(5)]
    train.append(
        {
            "session_id": "q",
            "events": [query_event("search", "x"), item_event("view", "rare"), item_event("view", "c0")],
        }
    )
    test = [_session("e0", ["view"] * 3, ["c0", "c1", "c2"])]
    test.append({"session_id": "e1", "events": [item_event("view", "c2"), *[item_event("view", "late")] * 5]})
    ex, pool, what = next_item_examples({"train": train, "validation": [], "test": test})
    assert "rare" not in pool and "late" in pool and set(common) <= set(pool)
    assert all(e["target"] != "rare" for e in ex["train"])  # seen once: dropped
    assert [e["target"] for e in ex["test"]] == ["c1", "c2"]  # "late" never a training target: removed
    q = [e for e in ex["train"] if e["session_id"].startswith("q#")]
    assert [(len(e["events"]), e["target"]) for e in q] == [(1, "c0")]  # the query is the prefix
    assert "pool of" in what


def test_baselines_known_answers():
    from datasets import Dataset

    train = Dataset.from_list([{"label": 1.0}, {"label": 0.0}, {"label": 0.0}, {"label": 0.0}])
    test = Dataset.from_list([{"label": 0.0}] * 3 + [{"label": 1.0}])
    data = PreparedData(None, train, None, None, None, test_dataset=test)
    pip = pip_baseline(data)["majority class"]
    assert pip["accuracy"] == 0.75 and pip["F1"] == 0.0 and pip["AUROC"] == 0.5 and pip["kappa"] == 0.0

    # the baselines a practitioner tries first: the purchase rate after the prefix's last action, and a logistic
    # regression on its action counts; on prefixes that end in a cart exactly when a purchase follows, both are
    # perfect while the majority class is not
    def _prefix(actions):
        return [item_event(a, f"i{k}") for k, a in enumerate(actions)]

    rows = [(["view", "view", "add_to_cart"], 1.0), (["view", "click", "view"], 0.0)] * 4
    rows += [(["view", "add_to_cart", "view", "add_to_cart"], 1.0), (["click", "view"], 0.0)] * 2
    train = Dataset.from_list([{"events": _prefix(a), "label": y} for a, y in rows])
    test = Dataset.from_list([{"events": _prefix(a), "label": y} for a, y in rows[:4]])
    out = pip_baseline(PreparedData(None, train, None, None, None, test_dataset=test))
    assert out["last action"]["AUROC"] == 1.0 and out["action counts"]["AUROC"] == 1.0
    assert out["majority class"]["AUROC"] == 0.5
    assert action_features(_prefix(["view", "add_to_cart"]), ["add_to_cart", "view"]) == (
        [2.0, 1.0, 1.0] + [1.0, 0.0] + [0.0, 1.0] + [0.0, 0.0]
    )
    train = Dataset.from_list([{"label": 2.0}, {"label": 4.0}])
    test = Dataset.from_list([{"label": 1.0}, {"label": 5.0}])
    rlp = rlp_baseline(PreparedData(None, train, None, None, None, test_dataset=test))["mean length"]
    assert rlp["MAE"] == 2.0 and rlp["MSE"] == 4.0
    train = Dataset.from_list([{"target": t} for t in ["a", "b", "b", "c", "c", "c"]])
    views = lambda *items: [{"action": "view", "item_id": i} for i in items]  # noqa: E731
    test = Dataset.from_list(
        [
            {
                "events": views("a", "q"),
                "target": "c",
            },  # c after the session's q, a (a was 3rd in popularity)
            {"events": views("a", "z", "a"), "target": "a"},  # the most recent item
            {"events": views("a"), "target": "z"},  # never a training target: a miss
        ]
    )
    out = nip_baseline(PreparedData(None, train, None, None, None, test_dataset=test))
    nip = out["popularity"]
    assert nip["HR@10"] == pytest.approx(200 / 3) and nip["MRR@10"] == pytest.approx(100 * (1 + 1 / 3) / 3)
    session_first = out["session items, then popularity"]  # ranks 3 (q, a, then c), 1, miss
    assert session_first["HR@10"] == pytest.approx(200 / 3)
    assert session_first["MRR@10"] == pytest.approx(100 * (1 / 3 + 1) / 3)


# --- learning ----------------------------------------------------------------------------------------------


def _args(**kw):
    base = dict(
        dataset="synthetic",
        data_path=None,
        store_preset="tiny",
        seed=0,
        num_sessions=None,
        eval_fraction=0.1,
        validation_fraction=0.1,
    )
    return argparse.Namespace(**{**base, **kw})


def _contrastive_run(stage: int, steps: int = 30):
    from session_transformers.models.ubm.processing_ubm import (
        UbmProcessor,
        catalogue_attribute_names,
        iter_corpus,
    )
    from session_transformers.models.ubm.recipe import next_item_pairs

    train, validation, test, catalogue, _ = ubm_source(_args())
    proc = UbmProcessor.train_tokenizer(
        iter_corpus(train, catalogue), 400, catalogue_attribute_names(catalogue)
    )
    config = UbmConfig(
        vocab_size=len(proc.tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_session_layers=1,
        session_num_attention_heads=2,
        session_intermediate_size=64,
        interaction_pooling="mean",
    )
    torch.manual_seed(0)
    model = UbmForPreTraining(config)
    if stage == 1:
        rows, held = next_item_pairs(train), next_item_pairs(validation + test)[:32]
        collate = UbmStage1Collator(proc, catalogue, config, generator=torch.Generator().manual_seed(0))
        fixed = UbmStage1Collator(proc, catalogue, config, seed=0)(held)
    else:
        rows, held = train, (validation + test)[:32]
        collate = UbmStage2Collator(proc, catalogue, config, generator=torch.Generator().manual_seed(0))
        fixed = UbmStage2Collator(proc, catalogue, config, seed=0)(held)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4)

    def held_out() -> float:
        model.eval()
        with torch.no_grad():
            value = float(model(**fixed).loss)
        model.train()
        return value

    before = held_out()
    rng = random.Random(0)
    for _ in range(steps):
        loss = model(**collate(rng.sample(rows, 32))).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return before, held_out()


@pytest.mark.parametrize("stage", [1, 2])
def test_pretraining_stage_reduces_the_held_out_contrastive_loss(stage):
    before, after = _contrastive_run(stage)
    assert after < 0.8 * before, (before, after)


def _learning_run(out: Path, flags: list[str]) -> tuple[dict, list[float]]:
    """``finetune.main(flags)`` on the CPU into ``out``: its results and the training losses it logged."""
    results = finetune.main([*flags, "--use-cpu", "--output-dir", str(out), "--save-steps", "1000"])
    state = json.loads(next(out.glob("checkpoint-*/trainer_state.json")).read_text())
    return results, [r["loss"] for r in state["log_history"] if "loss" in r]


@pytest.mark.slow
@pytest.mark.real_data
def test_next_item_on_rees46_learns_and_beats_popularity(shared_data, tmp_path):
    """REES46 next-item prediction from scratch (tiny UBM): the training loss falls and test HR@10 / MRR@10 beat
    the popularity baseline by a margin. Items are text (brand, category words, price band), so candidates the
    model was never trained on as targets can still be ranked."""
    out = tmp_path / "rees_nip"
    results, logged = _learning_run(
        out,
        [
            "--model",
            "ubm",
            "--task",
            "next_item",
            "--dataset",
            "rees46",
            "--data-path",
            str(shared_data / "rees46"),
            "--vocab-size",
            "3000",
            "--config",
            "hidden_size=64",
            "num_hidden_layers=2",
            "num_attention_heads=2",
            "intermediate_size=128",
            "num_session_layers=1",
            "session_num_attention_heads=2",
            "session_intermediate_size=128",
            "next_item_similarity=cosine",
            "interaction_pooling=mean",
            "--max-steps",
            "150",
            "--batch-size",
            "32",
            "--learning-rate",
            "1e-3",
            "--max-train-samples",
            "4800",
            "--eval-steps",
            "150",
            "--logging-steps",
            "10",
        ],
    )
    assert sum(logged[-3:]) / 3 < 0.8 * sum(logged[:2]) / 2, logged
    args = argparse.Namespace(
        dataset="rees46",
        data_path=str(shared_data / "rees46"),
        store_preset="default",
        seed=42,
        num_sessions=None,
        eval_fraction=0.1,
        validation_fraction=0.1,
    )
    splits = ubm_source(args)
    ex, _, _ = next_item_examples(
        {"train": splits.train, "validation": splits.validation, "test": splits.test}
    )
    from datasets import Dataset

    popularity = nip_baseline(
        PreparedData(
            None,
            Dataset.from_list([{"target": e["target"]} for e in ex["train"]]),
            None,
            None,
            None,
            test_dataset=Dataset.from_list(
                [{"events": e["events"], "target": e["target"]} for e in ex["test"]]
            ),
        )
    )["popularity"]
    test = results["test"]
    assert test["test_num_samples"] == len(ex["test"])
    assert test["test_HR@10"] > popularity["HR@10"] + 10.0, (test, popularity)
    assert test["test_MRR@10"] > popularity["MRR@10"] + 5.0, (test, popularity)


@pytest.mark.slow
def test_purchase_intent_head_leaves_its_plateau_and_beats_the_baselines(tmp_path):
    """Purchase intent on the synthetic store from scratch (small UBM): the head starts on a plateau (loss at
    ln 2 with balanced classes; ``benchmarks/ubm_claims.py`` measured 100 steps not to leave it), and a few hundred
    steps must leave it: the training loss falls well below ln 2, and test AUROC and kappa beat the random and
    majority-class baselines by a margin. In this store a cart as the last event nearly decides the label, so a
    session encoder that reads its interactions in order finds it."""
    out = tmp_path / "pip"
    results, logged = _learning_run(
        out,
        [
            "--model",
            "ubm",
            "--task",
            "purchase_intent",
            "--dataset",
            "synthetic",
            "--num-sessions",
            "6000",
            "--vocab-size",
            "2000",
            *QUICKSTART_CONFIG,
            "--max-steps",
            "400",
            "--batch-size",
            "32",
            "--learning-rate",
            "5e-4",
            "--max-validation-samples",
            "200",
            "--eval-steps",
            "400",
            "--logging-steps",
            "20",
        ],
    )
    assert sum(logged[-3:]) / 3 < 0.75 * 0.6931, logged  # ln 2: the plateau
    test, baselines = results["test"], results["baseline"]
    # the trivial baselines; "last action" and "action counts" (AUROC 0.94 / 0.98 here) beat this small UBM, as
    # the README's main-job table says, so they are printed beside it rather than asserted against
    trivial = {k: baselines[k] for k in ("majority class", "random")}
    assert test["test_AUROC"] > max(b["AUROC"] for b in trivial.values()) + 0.2, (test, baselines)
    assert test["test_kappa"] > max(b["kappa"] for b in trivial.values()) + 0.2, (test, baselines)


def test_interaction_encoder_from_flag_loads_through_the_base_model(capsys):
    """--interaction-encoder-from: the recipe's init_weights hands the path to the base model's BERT loader (the
    loader itself is tested in test_modeling_ubm); no path, no initialiser."""
    import argparse
    from types import SimpleNamespace

    from session_transformers.models.ubm import recipe as ubm_recipe

    assert ubm_recipe._bert_initializer(argparse.Namespace(interaction_encoder_from=None)) is None
    calls = []
    base = SimpleNamespace(
        load_interaction_encoder_from_bert=lambda path: calls.append(path) or {"loaded": [1, 2]}
    )
    init = ubm_recipe._bert_initializer(argparse.Namespace(interaction_encoder_from="/some/bert"))
    init(SimpleNamespace(base_model=base))
    assert calls == ["/some/bert"]
    assert "interaction encoder initialised from /some/bert: 2 tensors loaded" in capsys.readouterr().out
