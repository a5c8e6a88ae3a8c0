"""trainers/release.py without network: the build path at toy size, dry-run release folders that reload with the
Auto classes and reproduce the checkpoint's outputs exactly, publishing through a fake Hub client intercepted at
the commit boundary (one commit, a tag, no commit when re-published), and the token kept out of every file."""

import hashlib
import importlib.util
import json
import os
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.hf_api import CommitInfo
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel, AutoProcessor

from launch import ROOT
from session_transformers import hub
from session_transformers.families import discover

TOKEN = "hf_test_token_never_written_0123456789"
TINY_ARGS = {name: shlex.join(family.tiny_flags) for name, family in discover().items() if family.tiny_flags}
"""Per family: its descriptor's ``tiny_flags`` (``models/<family>/family.py``), appended to every pretraining stage of
its release build."""
FAMILIES = tuple(TINY_ARGS)


def _release_module():
    spec = importlib.util.spec_from_file_location("release_cli", ROOT / "trainers" / "release.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["release_cli"] = module
    spec.loader.exec_module(module)
    return module


release = _release_module()


class FakeHub:
    """Stands in for the Hub behind ``HfApi``: repos are folders and commits are recorded. ``create_commit`` does
    what the Hub client and server do together: an added file whose bytes the repo already holds is left out (the
    preupload answer ``shouldIgnore``), and when no operation is left no commit is made and the head is returned."""

    def __init__(self, root: Path):
        self.root = root
        self.repos: dict[str, dict] = {}
        self.commits: list[dict] = []
        self.tags: dict[tuple[str, str], str] = {}
        self.tokens: list = []
        self.calls: list[str] = []
        self.heads: dict[str, str] = {}

    def folder(self, repo_id: str) -> Path:
        return self.root / repo_id.replace("/", "--")

    def install(self, monkeypatch) -> None:
        fake = self

        def create_repo(api, repo_id, *, private=None, exist_ok=False, repo_type=None, token=None, **kwargs):
            fake.calls.append("create_repo")
            fake.tokens.append(token or api.token)
            if repo_id in fake.repos and not exist_ok:
                raise RuntimeError("409 repo exists")
            if repo_id not in fake.repos:
                fake.repos[repo_id] = {"private": private}
                fake.folder(repo_id).mkdir(parents=True)
                (fake.folder(repo_id) / ".gitattributes").write_text("*.safetensors filter=lfs\n")
            return f"https://huggingface.co/{repo_id}"

        def list_repo_files(api, repo_id, *, revision=None, repo_type=None, **kwargs):
            fake.calls.append("list_repo_files")
            fake.tokens.append(api.token)
            folder = fake.folder(repo_id)
            return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())

        def repo_info(api, repo_id, *, revision=None, repo_type=None, **kwargs):
            fake.calls.append("repo_info")
            fake.tokens.append(api.token)
            return SimpleNamespace(sha=fake.heads.get(repo_id, "initial"))

        def create_commit(api, repo_id, operations, *, commit_message, revision=None, **kwargs):
            fake.calls.append("create_commit")
            fake.tokens.append(api.token)
            folder = fake.folder(repo_id)
            added, deleted = [], []
            for op in operations:
                if isinstance(op, CommitOperationAdd):
                    target = folder / op.path_in_repo
                    if target.is_file() and target.read_bytes() == Path(op.path_or_fileobj).read_bytes():
                        continue  # the Hub already holds it
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(Path(op.path_or_fileobj).read_bytes())
                    added.append(op.path_in_repo)
                elif isinstance(op, CommitOperationDelete):
                    (folder / op.path_in_repo).unlink()
                    deleted.append(op.path_in_repo)
                else:
                    raise TypeError(op)
            if not added and not deleted:  # no empty commit: the head it already is
                return CommitInfo(
                    commit_url=f"https://huggingface.co/{repo_id}/commit/{fake.heads.get(repo_id, 'initial')}",
                    commit_message=commit_message,
                    commit_description="",
                    oid=fake.heads.get(repo_id, "initial"),
                )
            oid = hashlib.sha1(f"{len(fake.commits)}{commit_message}".encode()).hexdigest()
            fake.heads[repo_id] = oid
            fake.commits.append(
                {"repo": repo_id, "message": commit_message, "added": added, "deleted": deleted}
            )
            return CommitInfo(
                commit_url=f"https://huggingface.co/{repo_id}/commit/{oid}",
                commit_message=commit_message,
                commit_description="",
                oid=oid,
            )

        def create_tag(api, repo_id, *, tag, revision=None, exist_ok=False, **kwargs):
            fake.calls.append("create_tag")
            if (repo_id, tag) in fake.tags and not exist_ok:
                raise RuntimeError("409 tag exists")
            fake.tags.setdefault((repo_id, tag), revision)

        for name, fn in {
            "create_repo": create_repo,
            "list_repo_files": list_repo_files,
            "repo_info": repo_info,
            "create_commit": create_commit,
            "create_tag": create_tag,
        }.items():
            monkeypatch.setattr(HfApi, name, fn)


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    fake = FakeHub(tmp_path / "hub")
    fake.install(monkeypatch)
    return fake


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """``release.py build`` at toy size for every family (the real build command, in this process): each
    family's recipe quickstart flags, then the tiny overrides."""
    out = tmp_path_factory.mktemp("releases")
    common = ["build", "--output-dir", str(out), "--store-preset", "tiny", "--max-steps", "2"]
    summary = {}
    for model_type, extra in TINY_ARGS.items():
        summary.update(release.main([*common, "--models", model_type, "--extra-args", extra]))
    return out, summary


def _example_outputs(path: Path, auto_cls, model_type: str) -> dict[str, torch.Tensor]:
    inputs = hub.card_family(model_type).example_inputs(AutoProcessor.from_pretrained(path))
    model = auto_cls.from_pretrained(path, dtype=torch.float32).eval()
    with torch.no_grad():
        out = model(**inputs)
    return {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}


def _assert_same_model(release_dir: Path, checkpoint: Path, model_type: str) -> None:
    """Loaded the way a user does (after ``import session_transformers``), the release reproduces the
    checkpoint exactly: config, weights and every output of the base model and of the head."""
    assert type(AutoConfig.from_pretrained(release_dir)).model_type == model_type
    assert (
        load_file(release_dir / "model.safetensors").keys()
        == load_file(checkpoint / "model.safetensors").keys()
    )
    head = hub._head_auto(hub.card_family(model_type).head_auto_class)
    for auto_cls in (AutoModel, head):
        got = _example_outputs(release_dir, auto_cls, model_type)
        expected = _example_outputs(checkpoint, auto_cls, model_type)
        assert got.keys() == expected.keys() and got
        for name in expected:
            assert torch.equal(got[name], expected[name]), f"{auto_cls.__name__}: {name} differs"


def test_build_leaves_release_folders_ready_to_push(builds):
    out, summary = builds
    assert set(summary) == set(FAMILIES) == set(hub.CARD_FAMILIES)
    for name, s in summary.items():
        release_dir = out / name / "release"
        files = {p.name for p in release_dir.iterdir()}
        assert {
            "README.md",
            "config.json",
            "model.safetensors",
            "eval_results.json",
            "training_curve.png",
        } <= files
        assert "processor_config.json" in files
        assert not files & {"training_args.bin", "best", "checkpoints", "release.json"}
        assert s["bytes"] == hub.folder_size(release_dir) and s["metrics"]
        assert len(s["verified"]) == 2  # AutoModel and the head's Auto class reproduced the checkpoint
        if name == "muvcog":
            assert "word_vectors.safetensors" in files  # the processor's word vectors travel with it
        info = json.loads((out / name / "checkpoint" / "release.json").read_text())
        text = (release_dir / "README.md").read_text()
        assert info["commands"][0] in text  # the exact command that trained it
        assert "--store-preset tiny --max-steps 2" in info["commands"][0]
        assert len(info["commands"]) == len(release.build_plan(name, False)[name])  # every stage (UBM: 2)
        for c in info["commands"]:
            assert c in text
        assert str(out) not in text and str(out) not in (release_dir / "training_record.json").read_text()
        meta = hub.check_card_metadata(text)
        trained = hub.split_metrics(
            json.loads((out / name / "checkpoint" / "eval_results.json").read_text()), "test"
        )
        index = {m["name"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
        assert index == {m: round(trained[m], 4) for m in hub.card_family(name).metrics}
        for baseline in json.loads((release_dir / "eval_results.json").read_text()).get("baseline", {}):
            assert f"| {baseline} |" in text  # the trainer's trivial baselines are in the card
    assert json.loads((out / "summary.json").read_text()).keys() == summary.keys()


@pytest.mark.parametrize("model_type", FAMILIES)
def test_dry_run_folder_reloads_and_reproduces_outputs(builds, fake_hub, tmp_path, monkeypatch, model_type):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    out, _ = builds
    checkpoint = out / model_type / "checkpoint"
    dry = tmp_path / "dry"
    argv = ["publish", str(checkpoint), "--repo-id", f"me/{model_type}", "--dry-run", str(dry)]
    result = release.main(argv)
    assert result == {"dry_run": str(dry)}
    assert fake_hub.calls == []  # no network at all
    assert (dry / "README.md").exists() and (dry / "model.safetensors").exists()
    _assert_same_model(dry, checkpoint, model_type)
    # the dry run is the folder `build` left: same files, same bytes (the card differs only in the repo id)
    built = hub.local_hashes(out / model_type / "release")
    dried = hub.local_hashes(dry)
    assert dried.keys() == built.keys()
    assert {k: v for k, v in dried.items() if k != "README.md"} == {
        k: v for k, v in built.items() if k != "README.md"
    }
    assert f"me/{model_type}" in (dry / "README.md").read_text()
    # --evaluate: the card and the evaluation JSON carry the re-evaluated figures, the same as the trainer's
    release.main([*argv, "--evaluate"])
    again = json.loads((dry / "eval_results.json").read_text())
    recorded = json.loads((checkpoint / "eval_results.json").read_text())
    assert again["re_evaluated"] is True
    assert again.get("selected_step") == recorded.get("selected_step")  # the trainer's other records stay
    assert again.get("baseline") == recorded.get("baseline")
    for k, v in recorded["test"].items():
        assert again["test"][k] == pytest.approx(v, rel=1e-6, abs=1e-9), k
    hub.check_card_metadata((dry / "README.md").read_text())


def test_publish_in_one_commit_then_republish_is_a_no_op(builds, fake_hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    out, _ = builds
    checkpoint = out / "tagnn_pp" / "checkpoint"
    argv = ["publish", str(checkpoint), "--repo-id", "me/tagnn-pp", "--public"]
    first = release.main(argv)
    assert first["committed"] and len(fake_hub.commits) == 1
    commit = fake_hub.commits[0]
    remote = fake_hub.folder("me/tagnn-pp")
    assert sorted(commit["added"]) == sorted(p.name for p in remote.iterdir() if p.name != ".gitattributes")
    assert fake_hub.repos["me/tagnn-pp"]["private"] is False
    assert (("me/tagnn-pp", first["tag"])) in fake_hub.tags and first["tag"].startswith("v")
    assert fake_hub.tags[("me/tagnn-pp", first["tag"])] == first["commit"]
    assert set(fake_hub.tokens) == {TOKEN}  # the environment's token, on every call
    _assert_same_model(remote, checkpoint, "tagnn_pp")

    second = release.main(argv)
    assert not second["committed"] and len(fake_hub.commits) == 1  # nothing changed: no commit
    assert second["tag"] == first["tag"]

    # a changed release (no plot) is one commit holding only the difference
    third = release.main([*argv, "--no-plot"])
    assert third["committed"] and len(fake_hub.commits) == 2
    assert fake_hub.commits[1]["added"] == ["README.md"]
    assert fake_hub.commits[1]["deleted"] == ["training_curve.png"]
    assert third["tag"] != first["tag"]

    # the token is in no file anywhere: the fake Hub, the checkpoint, the release, the HF home
    for folder in (fake_hub.root, out, tmp_path, Path(os.environ["HF_HOME"])):
        for path in folder.rglob("*"):
            if path.is_file():
                assert TOKEN.encode() not in path.read_bytes(), path


def test_publish_a_private_release_folder_with_push(builds, fake_hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    out, _ = builds
    result = release.main(
        ["push", str(out / "ceres" / "release"), "--repo-id", "me/ceres", "--tag", "v-test"]
    )
    assert result["committed"] and fake_hub.repos["me/ceres"]["private"] is True
    assert ("me/ceres", "v-test") in fake_hub.tags
    _assert_same_model(fake_hub.folder("me/ceres"), out / "ceres" / "checkpoint", "ceres")


def test_publish_without_a_token_touches_nothing(builds, fake_hub, monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    out, _ = builds
    with pytest.raises(RuntimeError, match="HF_TOKEN"):
        release.main(["push", str(out / "tagnn_pp" / "release"), "--repo-id", "me/x"])
    assert fake_hub.calls == []


def test_load_time_reports_every_part(builds):
    out, _ = builds  # a functional check only: timings under test load are not figures
    times = release.main(["load-time", str(out / "tagnn_pp" / "release"), "--repeats", "1"])
    (parts,) = times.values()
    assert set(parts) == {"processor", "AutoModel", "AutoModelForNextItemPrediction"}
    assert all(v > 0 for v in parts.values())


def test_build_plan_uses_the_quickstart_job_else_the_registry_flags(monkeypatch):
    import dataclasses

    from session_transformers.recipes import RECIPES

    recipe = RECIPES["tagnn_pp"]
    family = hub.card_family("tagnn_pp")
    if recipe.quickstart is not None:
        assert release.build_plan("tagnn_pp", False) == {"tagnn_pp": tuple(recipe.quickstart.pretrain_stages)}
    monkeypatch.setitem(RECIPES, "tagnn_pp", dataclasses.replace(recipe, quickstart=None))
    plan = release.build_plan("tagnn_pp", True)
    assert plan["tagnn_pp"] == family.build_flags
    assert plan["tagnn_pp-diginetica"] == family.real_data_builds["diginetica"]
    with pytest.raises(KeyError, match="CARD_FAMILIES"):
        release.build_plan("no_such_family", False)


def test_tagnn_pp_diginetica_build_trains_with_the_peer_benchmarks_settings(tmp_path):
    """The Diginetica release trains as the best run of ``benchmarks/tagnn_pp_peer.py`` (ours against the authors'
    code): its optimiser, batch, size, schedule and item reduction, and today's default architecture (no other
    ``--config``), for the three epochs whose last gave its best test figures."""
    peer = importlib.import_module("benchmarks.tagnn_pp_peer")
    options = SimpleNamespace(  # the peer script's defaults (its result file's command adds only --config)
        data_path=ROOT / "path" / "to" / "diginetica",
        top_items=3000,
        config=[],
        mixed_precision=None,
        group_by_length="false",
        item_order="sorted",
        max_samples=None,
    )
    command = peer.ours_command(options, 0, 3, tmp_path / "run", 4512)
    pretrain = release._pretrain_module()
    theirs, _ = pretrain.parse_args(command[command.index("--model") :])
    (flags,) = release.build_plan("tagnn_pp", True)["tagnn_pp-diginetica"]
    ours, _ = pretrain.parse_args(["--model", "tagnn_pp", *flags])
    for name in (
        "dataset",
        "top_items",
        "batch_size",
        "learning_rate",
        "weight_decay",
        "lr_scheduler_type",
        "lr_decay_epochs",
        "lr_decay_rate",
        "group_by_length",
        "num_epochs",
        "config_overrides",
        "mixed_precision",
    ):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.config_overrides == {"hidden_size": 100, "num_attention_heads": 2}


def test_an_installed_wheel_renders_a_card_from_its_own_templates(builds, tmp_path):
    """The wheel (``pip wheel .``) carries every family's card template as package data: unpacked outside the
    checkout and imported from there (not from ``src/``), it renders a checkpoint's card."""
    import subprocess
    import sys
    import zipfile

    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("session_transformers-*.whl")
    installed = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(installed)
    out, _ = builds
    script = (
        "import sys, session_transformers.hub as hub\n"
        f"assert hub.__file__.startswith({str(installed)!r}), hub.__file__\n"
        f"card = hub.render_card({str(out / 'tagnn_pp' / 'checkpoint')!r}, plot=None)\n"
        "print(card.data.to_dict()['library_name'], 'TAGNN++' in card.text)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(installed), "HF_HUB_OFFLINE": "1"}
    env.pop("SESSION_TRANSFORMERS_HUB_CARDS", None)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "True", done.stdout
