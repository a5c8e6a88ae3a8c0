"""Model families (issue 28): every registry and harness list is built from the same descriptors, and a sixth family
that lives only in ``tests/toy_family/`` is picked up by the Auto classes, the trainers, the main job, a model card
and the bad-input / kill / parity harnesses once registered, with no edit outside its folder."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import random
import shlex
import sys
from pathlib import Path

import pytest
import torch
from transformers import CONFIG_MAPPING, AutoConfig, AutoModel, AutoProcessor
from transformers.models.auto.processing_auto import PROCESSOR_MAPPING
from transformers.pipelines import SUPPORTED_TASKS

from session_transformers import hub
from session_transformers.auto import MODEL_TABLE, AutoModelForNextItemPrediction
from session_transformers.families import FAMILIES_ENV, discover, register_family, unregister_family
from session_transformers.recipes import RECIPES

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "trainers"))
from benchmarks import process_parity  # noqa: E402

import quickstart  # noqa: E402


def _script(name: str, folder: str = "benchmarks"):
    """A repository script as a module (``benchmarks.<name>``; ``trainers/<name>.py`` under a name of its own)."""
    if folder == "benchmarks":
        return importlib.import_module(f"benchmarks.{name}")
    spec = importlib.util.spec_from_file_location(f"families_{name}", ROOT / folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_package_families_in_the_main_jobs_order():
    assert list(discover()) == ["tagnn_pp", "ceres", "ubm", "muvcog", "product_byol"]


def test_every_registry_and_harness_lists_the_same_families():
    families = discover()
    names = list(families)
    # the package's registries: the Auto table, the recipes, the model cards
    assert list(MODEL_TABLE) == list(RECIPES) == list(hub.CARD_FAMILIES) == names
    for name, family in families.items():
        # the Auto classes resolve every model class the descriptor names, and its processor
        assert CONFIG_MAPPING[name] is family.config
        for auto_cls, model_cls in family.models.items():
            assert auto_cls._model_mapping[family.config] is model_cls, (name, auto_cls.__name__)
        assert PROCESSOR_MAPPING[family.config] is family.processor
        assert family.recipe is RECIPES[name] and family.card is hub.CARD_FAMILIES[name]
        assert family.quickstart is RECIPES[name].quickstart
    # the pipelines load through the Auto classes: feature extraction takes every family (AutoModel), the
    # recommender every family with a next-item head
    assert SUPPORTED_TASKS["session-feature-extraction"]["pt"] == (AutoModel,)
    assert SUPPORTED_TASKS["session-recommendation"]["pt"] == (AutoModelForNextItemPrediction,)
    assert {n for n, f in families.items() if AutoModelForNextItemPrediction in f.models} >= {
        "tagnn_pp",
        "ubm",
    }
    # the main job, the release tests' tiny runs and the harnesses
    assert set(quickstart._quickstart_jobs()) <= set(names)
    assert all(f.tiny_flags for f in families.values())
    bad_inputs = _script("bad_inputs")
    assert bad_inputs.processor_families() == tuple(names)
    for name, family in families.items():  # each has a check: its descriptor's hook or the corpus's own
        assert family.bad_inputs is not None or hasattr(bad_inputs.ProcessorSuite, f"_{name}"), name
    assert list(_script("kill_trials").models()) == names
    parity = process_parity
    assert list(parity.merges()) == names
    assert {case.family for case in parity.cases().values()} == set(names)
    streaming = _script("streaming_memory")  # its pipelines are its own code: it must still name every family
    assert set(streaming.FAMILIES) == set(names)
    assert streaming.BATCH_SIZES == {
        "tagnn_pp": 50,
        "ceres": 512,
        "ubm": 128,
        "muvcog": 128,
        "product_byol": 4096,
    }


# --- the sixth family ---------------------------------------------------------------------------------------------


@pytest.fixture
def toy(monkeypatch):
    """The toy family registered in this process, and named for the processes the harnesses start
    (``SESSION_TRANSFORMERS_FAMILIES`` with ``tests/`` on ``PYTHONPATH``); unregistered afterwards."""
    from toy_family.family import FAMILY

    register_family(FAMILY)
    monkeypatch.setenv(FAMILIES_ENV, "toy_family.family")
    path = [str(ROOT / "tests"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(path))
    yield FAMILY
    unregister_family("toy")


def test_registering_adds_the_family_to_every_registry_and_unregistering_removes_it(toy):
    for registry in (MODEL_TABLE, RECIPES, hub.CARD_FAMILIES):
        assert list(registry)[-1] == "toy"
    assert hub.card_family("toy") is toy.card
    assert register_family(toy) is toy  # the same descriptor again: nothing changes
    with pytest.raises(ValueError, match="already registered"):
        register_family(dataclasses.replace(toy, order=1))
    unregister_family("toy")
    assert "toy" not in RECIPES and "toy" not in hub.CARD_FAMILIES and "toy" not in MODEL_TABLE
    register_family(toy)  # for the fixture's teardown


def test_toy_family_round_trips_through_the_auto_classes(toy, tmp_path):
    from toy_family import ToyForNextItemPrediction, ToyModel, ToyProcessor

    processor = ToyProcessor(item_vocab=["a", "b", "c", "d"])
    config = AutoConfig.for_model("toy", num_items=processor.num_items, hidden_size=4)
    head = AutoModelForNextItemPrediction.from_config(config)
    assert isinstance(head, ToyForNextItemPrediction)
    head.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert type(AutoConfig.from_pretrained(tmp_path)) is toy.config
    base = AutoModel.from_pretrained(tmp_path)
    assert isinstance(base, ToyModel)
    assert torch.equal(base.item_embeddings.weight, head.toy.item_embeddings.weight)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, ToyProcessor) and loaded.item_vocab == processor.item_vocab
    batch = loaded([["a", "b"], ["c"]], targets=["c", "d"])
    out = AutoModelForNextItemPrediction.from_pretrained(tmp_path)(**batch)
    assert out.logits.shape == (2, processor.num_items) and out.loss is not None


def test_toy_family_trains_in_the_main_job_and_renders_a_card(toy, tmp_path, capsys):
    """``trainers/quickstart.py --tiny --models toy``: ``pretrain.main(--model toy)``, the reload with the Auto
    classes and ``finetune.main``; then the card of the pretrained folder."""
    args = ["--tiny", "--models", "toy", "--no-launch", "--threads", "1", "--output-dir", str(tmp_path)]
    summary = quickstart.main(args)
    assert list(summary["results"]) == ["toy"]
    assert set(summary["results"]["toy"]["metrics"]) == {"HR@20", "MRR@20"}
    assert "== toy: reload with the Auto classes" in capsys.readouterr().out
    card = hub.render_card(tmp_path / "toy" / "pretrain")
    meta = hub.check_card_metadata(str(card))
    assert meta["library_name"] == "session_transformers" and "toy" in meta["tags"]
    assert "Toy (synthetic)" in str(card) and str(tmp_path) not in str(card)


def test_toy_family_builds_a_release_with_its_tiny_flags(toy, tmp_path):
    """``trainers/release.py build --models toy`` with the descriptor's ``tiny_flags`` (as ``tests/test_release.py``
    runs every family): trained, carded, and reloaded exactly by the Auto classes."""
    release = _script("release", "trainers")
    argv = ["build", "--output-dir", str(tmp_path), "--store-preset", "tiny", "--max-steps", "2"]
    summary = release.main([*argv, "--models", "toy", "--extra-args", shlex.join(toy.tiny_flags)])
    assert (
        len(summary["toy"]["verified"]) == 2
    )  # AutoModel and the head's Auto class reproduced the checkpoint
    hub.check_card_metadata((tmp_path / "toy" / "release" / "README.md").read_text())


def test_toy_family_goes_through_the_bad_input_corpus(toy):
    corpus = _script("bad_inputs")
    suite = corpus.ProcessorSuite()
    assert suite.names[-1] == "toy"
    result = corpus.run_corpus(random_cases=10, seed=1, suite=suite)
    accepted, raw = result["processors"]["accepted"]["toy"], result["processors"]["raw"]["toy"]
    assert accepted["records"] > 0 and raw.get("refused", 0) > 0, (accepted, raw)
    assert not any(corpus._is_failure(o) for o in {**accepted, **raw}), (accepted, raw)


def test_toy_family_is_killed_and_resumes_exactly(toy, tmp_path):
    """``benchmarks/kill_trials.py``: its runs are ``trainers/pretrain.py`` subprocesses, which find the toy family
    through ``SESSION_TRANSFORMERS_FAMILIES``."""
    kt = _script("kill_trials")
    assert "toy" in kt.models()
    duration, ref = kt.reference("toy", tmp_path / "reference")
    out = kt.trial("toy", "checkpoint", tmp_path / "checkpoint", random.Random(0), duration, ref)
    assert out["ok"], out


def test_toy_family_two_processes_agree_with_one(toy):
    pp = process_parity
    assert pp.cases()["toy"].family == "toy" and pp.merges()["toy"] is toy.merge_batches
    figures = pp.measure(["toy"], per_process=2, steps=1)
    assert figures["toy"]["passed"], json.dumps(figures["toy"], default=str)[:2000]


def test_every_forward_states_its_shapes():
    """Every ``forward`` of the package's modules has a docstring (the shapes in and out), as issue 28 asks."""
    import ast

    missing = []
    for path in sorted((ROOT / "src" / "session_transformers").rglob("*.py")):
        for cls in (n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ClassDef)):
            for fn in cls.body:
                if isinstance(fn, ast.FunctionDef) and fn.name == "forward" and not ast.get_docstring(fn):
                    missing.append(f"{path.name}:{cls.name}")
    assert not missing, missing
