"""The training engine's recipe contract, on a toy model family: stages, step hooks (an EMA target), resume.

The toy family is registered in this process only (``RECIPES`` is a plain dict), and ``trainers/pretrain.py``'s
``main`` runs in-process.
"""

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from huggingface_hub.dataclasses import strict
from safetensors.torch import load_file
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

from session_transformers.optim import byol_momentum, ema_update_
from session_transformers.recipes import RECIPES
from session_transformers.trainer_utils import PreparedData, Recipe, Stage, Task, TrainingProtocol

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "trainers"))
import pretrain


@strict
class ToyConfig(PreTrainedConfig):
    model_type = "st_engine_toy"
    hidden: int = 4


@dataclass
class ToyOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None


class ToyModel(PreTrainedModel):
    """``head(encoder(x))`` regresses on a target network's output; the target moves only by EMA."""

    config_class = ToyConfig
    main_input_name = "x"
    _frozen_parameters = ("target.",)  # moved by the EMA hook only
    accepts_loss_kwargs = False

    def __init__(self, config):
        super().__init__(config)
        self.encoder = nn.Linear(config.hidden, config.hidden)
        self.head = nn.Linear(config.hidden, config.hidden)
        self.target = nn.Linear(config.hidden, config.hidden)
        self.dropout = nn.Dropout(0.2)
        self.post_init()

    def forward(self, x, labels=None):
        pred = self.head(self.dropout(torch.tanh(self.encoder(x)))) + self.target(x).detach()
        loss = None if labels is None else (pred - labels).pow(2).mean()
        return ToyOutput(loss=loss, logits=pred)


class ToyProcessor:
    def save_pretrained(self, path):
        Path(path, "toy_processor.json").write_text("{}")


CRASH_AT: list[int] = []
NAN_AT: list[int] = []
PROCESSOR_PATHS: list = []  # what each prepare() was given as --processor-path


def ema_hook(model, step: int, total_steps: int) -> None:
    if CRASH_AT and step == CRASH_AT[0]:
        raise RuntimeError("simulated crash")
    if NAN_AT and step == NAN_AT[0]:  # simulated divergence: the next step's loss is NaN
        with torch.no_grad():
            model.encoder.weight.fill_(float("nan"))
    ema_update_(model.target, model.encoder, byol_momentum(step, total_steps, base=0.9))


def _prepare(args) -> PreparedData:
    PROCESSOR_PATHS.append(args.processor_path)
    g = torch.Generator().manual_seed(0)
    rows = {"x": torch.randn(64, 4, generator=g).tolist(), "labels": torch.randn(64, 4, generator=g).tolist()}
    ds = Dataset.from_dict(rows)

    def collate(batch):
        return {k: torch.tensor([r[k] for r in batch]) for k in ("x", "labels")}

    return PreparedData(
        ToyProcessor(),
        ds.select(range(48)),
        ds.select(range(48, 56)),
        collate,
        ToyConfig(),
        "toy",
        test_dataset=ds.select(range(56, 64)),
    )


class _Auto:
    from_config = staticmethod(lambda config: ToyModel(config))
    from_pretrained = staticmethod(lambda path, **kw: ToyModel.from_pretrained(path, **kw))


def _task(hook=None) -> Task:
    return Task(
        _prepare,
        _Auto,
        lambda logits, labels: {"err": (logits - labels).pow(2).mean(1)},
        lambda g: {"loss": float(g["err"].mean())},
        after_optimizer_step=hook,
    )


PROTOCOL = TrainingProtocol(learning_rate=1e-2, batch_size=8, num_epochs=2, lr_scheduler_type="linear")


def _toy_recipe() -> Recipe:
    return Recipe(
        pretrain=_task(ema_hook),
        finetune={"toy": _task()},
        protocol=PROTOCOL,
        stages=(
            Stage("encoder", _task(), PROTOCOL.replace(num_epochs=1), trainable=("encoder.",)),
            Stage("everything", _task(ema_hook), PROTOCOL),
        ),
    )


@pytest.fixture
def toy(monkeypatch):
    recipe = _toy_recipe()
    monkeypatch.setitem(RECIPES, "st_engine_toy", recipe)
    CRASH_AT.clear()
    NAN_AT.clear()
    PROCESSOR_PATHS.clear()
    return recipe


def _run(*argv: str):
    return pretrain.main(["--model", "st_engine_toy", *argv])


def test_stage_one_trains_only_its_modules_and_stage_two_needs_its_weights(toy, tmp_path):
    init = ToyModel(ToyConfig())  # what stage 1 starts from (same seed as the trainer's)
    _run("--stage", "1", "--output-dir", str(tmp_path / "s1"), "--seed", "3")
    w1 = load_file(str(tmp_path / "s1" / "model.safetensors"))
    torch.manual_seed(3)
    init = ToyModel(ToyConfig())
    assert torch.equal(w1["head.weight"], init.head.weight) and torch.equal(
        w1["target.weight"], init.target.weight
    )
    assert not torch.equal(w1["encoder.weight"], init.encoder.weight)  # only the encoder trained
    with pytest.raises(SystemExit):
        _run("--stage", "2", "--output-dir", str(tmp_path / "s2"))  # no --init-from
    with pytest.raises(SystemExit):
        _run("--stage", "3", "--output-dir", str(tmp_path / "s3"))  # there is no stage 3
    _run("--stage", "2", "--init-from", str(tmp_path / "s1"), "--output-dir", str(tmp_path / "s2"))
    stages = json.loads((tmp_path / "s2" / "pretraining_stages.json").read_text())["stages"]
    assert [(s["stage"], s["name"]) for s in stages] == [(1, "encoder"), (2, "everything")]
    assert stages[0]["protocol"]["num_epochs"] == 1 and stages[1]["protocol"]["num_epochs"] == 2
    w2 = load_file(str(tmp_path / "s2" / "model.safetensors"))
    assert not torch.equal(w2["head.weight"], w1["head.weight"])  # stage 2 trains everything
    assert not torch.equal(w2["target.weight"], w1["target.weight"])  # ... and its hook moved the target


def test_ema_target_gets_no_gradient_and_resumes_exactly_after_a_crash(toy, tmp_path):
    common = ["--stage", "2", "--init-from", None, "--checkpointing-steps", "3", "--select-best", "none"]
    _run("--stage", "1", "--output-dir", str(tmp_path / "s1"))
    common[3] = str(tmp_path / "s1")
    full = tmp_path / "full"
    _run(*common, "--output-dir", str(full))
    CRASH_AT.append(5)  # after the step-3 checkpoint, before the step-6 one
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(*common, "--output-dir", str(tmp_path / "crashed"))
    CRASH_AT.clear()
    _run(*common, "--output-dir", str(tmp_path / "crashed"), "--resume")
    a, b = (
        load_file(str(full / "model.safetensors")),
        load_file(str(tmp_path / "crashed" / "model.safetensors")),
    )
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=0, rtol=0, msg=k)
    s1 = load_file(str(tmp_path / "s1" / "model.safetensors"))
    # the target moved only by EMA towards the encoder: it is a convex mix of the two at every step
    assert not torch.equal(a["target.weight"], s1["target.weight"])


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(toy, tmp_path):
    _run("--stage", "1", "--output-dir", str(tmp_path / "s1"))
    out = tmp_path / "diverged"
    NAN_AT.append(4)
    with pytest.raises(
        FloatingPointError, match=r"step 5: the training loss is nan.*checkpoints.checkpoint_0"
    ):
        _run(
            "--stage", "2", "--init-from", str(tmp_path / "s1"), "--checkpointing-steps", "3",
            "--select-best", "none", "--output-dir", str(out),
        )  # fmt: skip
    assert not (out / "model.safetensors").exists()  # no diverged weights saved as a result
    good = out / "checkpoints" / "checkpoint_0"  # accelerate numbers saves, not steps
    assert (good / pretrain.COMPLETE).exists()
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # the NaN step is not logged as a result either
    NAN_AT.clear()
    _run(
        "--stage", "2", "--init-from", str(tmp_path / "s1"), "--checkpointing-steps", "3",
        "--select-best", "none", "--output-dir", str(out), "--resume",
    )  # fmt: skip
    assert all(torch.isfinite(t).all() for t in load_file(str(out / "model.safetensors")).values())


def test_ema_update_and_momentum_schedule():
    target, online = nn.Linear(2, 2), nn.Linear(2, 2)
    t0, o = target.weight.detach().clone(), online.weight.detach().clone()
    ema_update_(target, online, 0.75)
    torch.testing.assert_close(target.weight, 0.75 * t0 + 0.25 * o)
    assert byol_momentum(0, 100) == pytest.approx(0.996) and byol_momentum(100, 100) == pytest.approx(1.0)
    assert byol_momentum(50, 100) == pytest.approx(0.998)
    with pytest.raises(ValueError, match="structure"):
        ema_update_(nn.Linear(2, 3), online, 0.5)


def _two_process_worker(out_dir: str) -> None:
    import os

    os.environ["ACCELERATE_USE_CPU"] = "1"  # what `accelerate launch` sets for a multi-process CPU run

    def hook(model, step, total_steps):
        ema_hook(model, step, total_steps)
        if step == total_steps:  # what every process holds after the last update
            rank = torch.distributed.get_rank()
            torch.save(model.target.state_dict(), Path(out_dir, f"target{rank}.pt"))

    recipe = RECIPES["st_engine_toy"] = _toy_recipe()  # a spawned worker: the test's registration is not here
    recipe.stages[1].task.after_optimizer_step = hook
    _run("--stage", "2", "--init-from", str(Path(out_dir, "s1")), "--output-dir", str(Path(out_dir, "s2")))


def test_ema_target_is_identical_on_every_process(toy, tmp_path):
    from launch import launch_processes

    _run("--stage", "1", "--output-dir", str(tmp_path / "s1"))
    launch_processes(_two_process_worker, args=(str(tmp_path),), num_processes=2)
    a, b = (torch.load(tmp_path / f"target{r}.pt", weights_only=True) for r in (0, 1))
    s1 = load_file(str(tmp_path / "s1" / "model.safetensors"))
    assert not torch.equal(a["weight"], s1["target.weight"])  # it moved
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_a_run_fits_its_processor_once_and_a_resumed_run_reuses_it(toy, tmp_path):
    # a processor fitted afresh on resume (or by each process) could number tokens differently from the weights
    out = tmp_path / "run"
    _run("--output-dir", str(out), "--max-steps", "4", "--checkpointing-steps", "2")
    assert PROCESSOR_PATHS == [None]  # fitted by the recipe...
    assert (out / "processor" / "toy_processor.json").exists()  # ...and saved before training
    assert not (out / "processor.tmp").exists()
    _run("--output-dir", str(out), "--max-steps", "6", "--checkpointing-steps", "2", "--resume")
    assert PROCESSOR_PATHS[-1] == str(out / "processor")
    _run("--output-dir", str(out), "--max-steps", "2")  # a fresh run in the same folder fits its own
    assert PROCESSOR_PATHS[-1] is None
    given = tmp_path / "given"
    _run("--output-dir", str(tmp_path / "other"), "--max-steps", "2", "--processor-path", str(given))
    assert PROCESSOR_PATHS[-1] == str(given) and not (tmp_path / "other" / "processor").exists()


class _Planted:
    """Unpickling this object writes a marker file: a resumed run that unpickled a checkpoint file would show it."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path(self.marker).write_text, ("unpickled",))


def test_resume_reads_its_counters_from_json_and_unpickles_nothing(toy, tmp_path):
    import pickle

    out = tmp_path / "run"
    _run("--output-dir", str(out), "--max-steps", "4", "--checkpointing-steps", "2")
    ckpt = max((out / "checkpoints").glob("checkpoint_*"), key=lambda p: int(p.name.rsplit("_", 1)[1]))
    state = json.loads((ckpt / "training_state.json").read_text())
    assert state["progress"]["optimizer_steps"] == 4 and state["scheduler"]["last_epoch"] == 4
    assert not list(ckpt.glob("custom_checkpoint_*"))  # accelerate pickles what is registered with it
    # a hostile pickle planted where accelerate would look for registered objects is never loaded
    _run("--output-dir", str(out), "--max-steps", "6", "--checkpointing-steps", "2", "--resume")
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]  # resumed at step 4 from the JSON counters
    # a checkpoint holding pickled objects (an older version's, or planted) is refused, never unpickled
    newest = max((out / "checkpoints").glob("checkpoint_*"), key=lambda p: int(p.name.rsplit("_", 1)[1]))
    marker = tmp_path / "marker"
    (newest / "custom_checkpoint_0.pkl").write_bytes(pickle.dumps(_Planted(str(marker))))
    with pytest.raises(FileNotFoundError, match="refuses to unpickle"):
        _run("--output-dir", str(out), "--max-steps", "8", "--checkpointing-steps", "2", "--resume")
    assert not marker.exists()
    (newest / "custom_checkpoint_0.pkl").unlink()
    (newest / "training_state.json").unlink()  # and one without its counters
    with pytest.raises(FileNotFoundError, match="no training_state.json"):
        _run("--output-dir", str(out), "--max-steps", "8", "--checkpointing-steps", "2", "--resume")


def test_before_step_hook_sees_each_step_before_its_forward_passes_and_again_after_resume(toy, tmp_path):
    calls: list[int] = []
    toy.stages[0].task.before_optimizer_step = lambda model, step, total: calls.append(step)
    out = tmp_path / "run"
    flags = ("--output-dir", str(out), "--gradient-accumulation-steps", "2", "--checkpointing-steps", "2")
    _run(*flags, "--max-steps", "4")
    assert calls == [1, 1, 2, 2, 3, 3, 4, 4]  # once per micro-batch, the step they belong to
    calls.clear()
    _run(*flags, "--max-steps", "6", "--resume")
    assert calls == [5, 5, 6, 6]  # a resumed run starts at the step it resumes


def test_finetune_step_hooks_run_under_the_trainer(toy, tmp_path):
    import dataclasses

    import finetune

    seen: dict[str, list[int]] = {"before": [], "after": []}
    toy.finetune["toy"] = dataclasses.replace(
        toy.finetune["toy"],
        before_optimizer_step=lambda model, step, total: seen["before"].append(step),
        after_optimizer_step=lambda model, step, total: seen["after"].append(step),
    )
    finetune.main(
        [
            "--model",
            "st_engine_toy",
            "--task",
            "toy",
            "--output-dir",
            str(tmp_path / "ft"),
            "--max-steps",
            "3",
        ]
        + ["--use-cpu", "--report-to", "none"]
    )
    assert seen == {"before": [1, 2, 3], "after": [1, 2, 3]}
