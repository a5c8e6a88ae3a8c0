"""Train any registered session model with its own training objective, with Accelerate.

The same script runs on one CPU, several CPU processes, one GPU or many (DDP/FSDP through ``accelerate
config``). Every default of the training protocol (optimiser, learning rate, schedule, batch size, epochs,
clipping, checkpoint selection) is the model's paper's, from its recipe: ``--model X --help`` shows them.
Examples::

    # one CPU process on the synthetic store (the default dataset)
    accelerate launch --cpu --num_processes 1 trainers/pretrain.py --model tagnn_pp --output-dir runs/tagnn

    # two CPU processes (gloo); note: `--cpu --num_processes 2` alone starts ONE process
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 trainers/pretrain.py --model tagnn_pp

    # Diginetica with the paper's protocol: train, select on the validation split, score test.tsv once
    accelerate launch --mixed_precision bf16 trainers/pretrain.py --model tagnn_pp --dataset diginetica

What it does: (1) parse flags (the model's protocol as defaults), (2) build the ``Accelerator`` (checkpoint
rotation by its ``ProjectConfiguration``), (3) let the model's recipe prepare processor, train / validation /
test data and config, (4) build loaders, model, optimiser and schedule from the protocol and ``prepare`` them,
(5) resume from the latest checkpoint if asked, (6) train with gradient accumulation, optional gradient-norm or
adaptive gradient clipping, checkpoints every N optimiser steps and periodic evaluation on the validation split
(keeping the best weights with ``--select-best``), (7) score the test split once with the selected weights,
``save_pretrained`` model and processor, and write ``eval_results.json``.

Resume is exact: the sampler is seedable and re-seeded per epoch, the partial epoch is skipped batch by batch,
checkpoints are taken only at optimiser-step boundaries, and the scheduler, the counters and the best
validation score are saved with each checkpoint.

**Streaming** (``--streaming``, e.g. ``--model tagnn_pp --dataset sessions --data-path DIR --streaming
--max-steps N``): when the recipe's training split is a ``datasets.IterableDataset`` (a corpus larger than
memory), each process reads its own part of it: ``split_dataset_by_node`` (whole shard files per process when
their number is a multiple of the number of processes), shuffled through a buffer of ``--shuffle-buffer``
samples (``shuffle(seed=--seed)``, ``set_epoch`` at every epoch), into a DataLoader that is *not* passed through
``accelerator.prepare`` (accelerate would split the stream again); batches are moved to the device here. The
length of an epoch is unknown, so ``--max-steps`` is required; ``--steps-per-epoch`` (default ``--max-steps /
--num-epochs``) is the nominal epoch of epoch-based schedules and of end-of-epoch evaluation. Every process takes
one batch per micro-step (so the processes step in lockstep) and counts its own epoch and batches: a process
whose stream ends starts its next epoch on its own.

Exact resume of a stream *replays* it. ``IterableDataset.state_dict()`` cannot be used: it does not save the
shuffle buffer, and on ``load_state_dict`` ``datasets`` refills the buffer from the position it saved (its
``BufferShuffledExamplesIterable`` warns "Loading a state dict of a shuffle buffer of a dataset without the buffer
content"), so the resumed order differs from the uninterrupted one. Instead every checkpoint holds each process's
(epoch, batches consumed in it), gathered with ``accelerate.utils.gather_object`` into the registered
``TrainingProgress``; on resume each process takes its own entry, rebuilds that epoch's stream (same seed and
epoch, hence the same order) and skips the batches already consumed, which costs reading and collating them, not
training on them. The replay needs the same number of processes, batch size, ``--num-workers`` (workers
interleave their batches), ``--shuffle-buffer`` and ``--seed``: resume checks them.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import shutil
import sys
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import (
    DataLoaderConfiguration,
    ProjectConfiguration,
    gather_object,
    send_to_device,
    set_seed,
)
from datasets import IterableDataset
from safetensors.torch import load_file
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

import session_transformers  # noqa: F401  (registers the models with the Auto classes)
from session_transformers.optim import adaptive_clip_grad_, agc_parameters, check_agc_supported
from session_transformers.protocol import build_optimizer, build_scheduler, protocol_from_args
from session_transformers.provenance import scrub_paths, training_record, write_training_record
from session_transformers.recipes import resolve_data_arguments, training_parser
from session_transformers.trainer_utils import (
    LengthGroupedEpochSampler,
    LengthOrderedSampler,
    check_activation_checkpointing,
    freeze_parameters,
    settle_selection,
    split_description,
)

BEST_DIR = "best"


class TrainingProgress:
    """Counters saved with every checkpoint, as JSON (``training_state.json``, beside what ``save_state`` writes)."""

    def __init__(self):
        self.optimizer_steps = 0
        self.epoch = 0
        self.batches_in_epoch = 0
        self.samples_seen = 0
        self.best_metric: float | None = None
        self.best_step: int | None = None
        # streaming only: every process's (epoch, batches consumed in it), in process order, and what the replay
        # of the stream depends on (checked on resume)
        self.stream_positions: list[tuple[int, int]] | None = None
        self.stream_signature: dict | None = None

    def state_dict(self) -> dict:
        return dict(self.__dict__)

    def load_state_dict(self, state: dict) -> None:
        self.__dict__.update(state)


def parse_args(argv: list[str] | None = None):
    parser, recipe, _ = training_parser(__doc__.split("\n")[0], argv)
    p = parser
    p.add_argument("--init-from", default=None, help="start from a saved checkpoint instead of from scratch")
    p.add_argument("--output-dir", default="runs/pretrain")
    p.add_argument("--eval-batch-size", type=int, default=None)
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimiser steps")
    p.add_argument("--gradient-accumulation-steps", type=int, default=1)
    p.add_argument("--checkpointing-steps", type=int, default=None, help="save a checkpoint every N steps")
    p.add_argument("--checkpoints-total-limit", type=int, default=3)
    p.add_argument("--resume", action="store_true", help="resume from the latest checkpoint in --output-dir")
    p.add_argument(
        "--eval-steps",
        type=int,
        default=None,
        help="evaluate on the validation split every N optimiser steps (default: at the end of each epoch)",
    )
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument(
        "--shuffle-buffer",
        type=int,
        default=10_000,
        help="streaming: samples in the shuffle buffer of each process's stream (0: no shuffling)",
    )
    p.add_argument(
        "--steps-per-epoch",
        type=int,
        default=None,
        help="streaming: the nominal epoch in optimiser steps, for epoch-based schedules and end-of-epoch "
        "evaluation (default: --max-steps / --num-epochs)",
    )
    p.add_argument("--report-to", default=None, help="an accelerate tracker (tensorboard, wandb, ...)")
    args = p.parse_args(argv)
    if getattr(args, "streaming", False) and not args.max_steps:
        p.error("--streaming needs --max-steps: the length of a streamed epoch is unknown")
    if args.steps_per_epoch is not None and not getattr(args, "streaming", False):
        p.error("--steps-per-epoch is for --streaming (an in-memory epoch has a known length)")
    if args.steps_per_epoch is not None and args.steps_per_epoch < 1:
        p.error("--steps-per-epoch must be >= 1")
    if args.shuffle_buffer < 0:
        p.error("--shuffle-buffer must be >= 0")
    if args.checkpoints_total_limit < 2:
        p.error(
            "--checkpoints-total-limit must be >= 2: the oldest is deleted before the next one is written"
        )
    try:
        stage = recipe.stage(args.stage)
    except ValueError as err:
        p.error(str(err))
    if args.stage > 1:
        previous = recipe.stage(args.stage - 1).name
        if not args.init_from:
            p.error(
                f"stage {args.stage} ({stage.name}) starts from stage {args.stage - 1}'s weights: "
                f"pass --init-from <the output of --stage {args.stage - 1}>"
            )
        done = [s["name"] for s in _stages_done(Path(args.init_from))]
        if previous not in done:
            p.error(
                f"{args.init_from} has not been through stage {args.stage - 1} ({previous}); its stages: {done}"
            )
    check_activation_checkpointing(p, args, stage.task)
    return resolve_data_arguments(p, args, recipe), recipe


STAGES_FILE = "pretraining_stages.json"
"""Written beside a pretrained model: the stages it has been through, each with its protocol and data."""


def _stages_done(folder: Path) -> list[dict]:
    path = folder / STAGES_FILE
    return json.loads(path.read_text())["stages"] if path.exists() else []


def get_dataloaders(args, data, accelerator: Accelerator | None = None):
    """Train loader (shuffled by a seedable sampler), validation and test loaders; ``prepare`` shards them.

    A streamed training split (an ``IterableDataset``) gets this process's part of the stream instead, shuffled
    through a buffer, in a loader that must not be prepared (see the module docstring)."""
    if isinstance(data.train_dataset, IterableDataset):
        from session_transformers.data.streaming import shuffled_split, stream_loader

        if accelerator is None:
            raise ValueError("a streamed training split needs the accelerator (process index and count)")
        stream = shuffled_split(
            data.train_dataset,
            rank=accelerator.process_index,
            world_size=accelerator.num_processes,
            seed=args.seed,
            buffer_size=args.shuffle_buffer,
        )
        train = stream_loader(
            stream, data.collate_fn, batch_size=args.batch_size, num_workers=args.num_workers, seed=args.seed
        )
    else:
        g = torch.Generator().manual_seed(
            args.seed
        )  # own generator: the loader must not draw from the global RNG
        grouped = args.group_by_length and data.train_lengths is not None
        train = DataLoader(
            data.train_dataset,
            batch_size=args.batch_size,
            shuffle=not grouped,
            sampler=LengthGroupedEpochSampler(args.batch_size, data.train_lengths, args.seed)
            if grouped
            else None,
            collate_fn=data.collate_fn,
            num_workers=args.num_workers,
            generator=g,
            drop_last=False,
        )
    eval_collate = getattr(data, "eval_collate_fn", None) or data.collate_fn

    def _eval_loader(dataset):
        if dataset is None:
            return None
        lengths = data.example_lengths(dataset) if data.example_lengths is not None else None
        return DataLoader(
            dataset,
            batch_size=args.eval_batch_size or 4 * args.batch_size,
            shuffle=False,
            sampler=LengthOrderedSampler(lengths) if lengths is not None else None,
            collate_fn=eval_collate,
            num_workers=args.num_workers,
            # iterating a loader draws its base seed from its generator: never from the global RNG, so that
            # evaluating does not change what training draws afterwards
            generator=torch.Generator().manual_seed(args.seed),
        )

    return train, _eval_loader(data.eval_dataset), _eval_loader(data.test_dataset)


@torch.no_grad()
def evaluate(model, dataloader, accelerator: Accelerator, task) -> dict[str, float]:
    """Run the task's eval step on every batch, gather per-example tensors across processes, summarise."""
    was_training = model.training
    model.eval()
    gathered: dict[str, list[torch.Tensor]] = {}
    for batch in dataloader:
        out = task.eval_step(model, dict(batch))
        for k, v in accelerator.gather_for_metrics(out).items():
            gathered.setdefault(k, []).append(v.cpu())
    model.train(was_training)
    return task.summarize({k: torch.cat(v) for k, v in gathered.items()})


def _checkpoint_index(path: Path) -> int:
    return int(path.name.rsplit("_", 1)[1])


COMPLETE = "checkpoint_complete"  # written into a checkpoint folder once every process has saved into it


def _checkpoints(ckpt_dir: Path) -> list[Path]:
    return sorted(ckpt_dir.glob("checkpoint_*"), key=_checkpoint_index) if ckpt_dir.exists() else []


def _latest_checkpoint(ckpt_dir: Path) -> Path | None:
    """The newest *complete* checkpoint: a run killed while writing one leaves it without the marker."""
    complete = [c for c in _checkpoints(ckpt_dir) if (c / COMPLETE).exists()]
    return complete[-1] if complete else None


TRAINING_STATE = "training_state.json"


def _save_checkpoint(accelerator: Accelerator, progress: TrainingProgress, scheduler) -> None:
    """``save_state`` into the next ``checkpoints/checkpoint_<n>`` (accelerate names and rotates them), write the
    counters and the schedule's state as JSON beside it, then mark it complete; resume only ever loads a marked
    one. When streaming, every process's stream position is gathered into ``progress`` first (only the main
    process writes the JSON).

    The counters and the schedule are not registered with ``accelerator.register_for_checkpointing``: accelerate
    pickles registered objects and loads them back with ``weights_only=False``, which would unpickle whatever a
    checkpoint folder holds. What accelerate still writes (weights, optimiser, RNG states) it loads with
    ``weights_only=True``."""
    if progress is not None and progress.stream_signature is not None:
        mine = [(progress.epoch, progress.batches_in_epoch)]
        progress.stream_positions = [tuple(p) for p in gather_object(mine)]
    if accelerator.is_main_process:
        # A folder left half-written by a killed run would count towards accelerate's rotation, which deletes
        # the oldest folders *before* writing the new one: it could delete the last complete checkpoint.
        ckpt_dir = Path(accelerator.project_dir) / "checkpoints"
        for folder in _checkpoints(ckpt_dir):
            if not (folder / COMPLETE).exists():
                shutil.rmtree(folder)
    accelerator.wait_for_everyone()
    path = Path(accelerator.save_state())
    if accelerator.is_main_process:
        state = {"progress": progress.state_dict(), "scheduler": scheduler.state_dict()}
        (path / TRAINING_STATE).write_text(json.dumps(state, indent=1) + "\n")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (path / COMPLETE).touch()


def _check_training_state(path: Path) -> None:
    """Before ``load_state``: the checkpoint keeps its counters as JSON and holds no pickled objects."""
    pickled = sorted(p.name for p in path.glob("custom_checkpoint_*"))
    if pickled or not (path / TRAINING_STATE).exists():
        raise FileNotFoundError(
            f"{path} has "
            + (f"pickled objects ({', '.join(pickled)})" if pickled else f"no {TRAINING_STATE}")
            + ": it was not written by this version, which keeps its counters as JSON and refuses to unpickle "
            "a checkpoint's files; start again without --resume"
        )


def _load_training_state(path: Path, progress: TrainingProgress, scheduler) -> None:
    """The counters and the schedule's state of checkpoint ``path`` (JSON; nothing is unpickled)."""
    state = json.loads((path / TRAINING_STATE).read_text())
    progress.load_state_dict(state["progress"])
    scheduler.load_state_dict(state["scheduler"])


RUN_PROCESSOR = "processor"
"""``<output-dir>/processor``: the processor a run fitted, saved before its first step."""


def _one_processor_per_run(args, output_dir: Path, is_main_process: bool) -> Path | None:
    """Make every process of a run, and every resumption of it, use the same processor; returns the folder the
    run's processor is (or is to be) saved in, or ``None`` when the processor comes from elsewhere.

    A recipe fits its processor on the training data, and fitting is not reproducible: ``tokenizers``'
    WordPiece trainer (CERES, UBM) breaks ties between equally frequent merges by hash-map order, so two fits on
    the same corpus give different vocabularies (huggingface/tokenizers#1794, open; in our runs 8 of 533 tokens
    differed on the tiny synthetic store, and the ids of most of the rest). Two processes fitting their own would
    train one embedding table under two token numberings, and a resumed run would continue the weights under a
    new one. So the processor comes, in this order, from ``--processor-path``; from ``--init-from`` (the
    weights' own vocabulary); on ``--resume``, from ``<output-dir>/processor``; otherwise the main process fits
    it and saves it there (atomically) before anyone trains, and the other processes load it."""
    if args.processor_path:
        return None
    if args.init_from and (Path(args.init_from) / "processor_config.json").exists():
        args.processor_path = args.init_from
        return None
    folder = output_dir / RUN_PROCESSOR
    if folder.exists() and args.resume:
        args.processor_path = str(folder)
    elif is_main_process and folder.exists():  # a fresh run in an old output folder: fitted again
        shutil.rmtree(folder)
    return folder


def _save_processor(processor, folder: Path) -> None:
    """``save_pretrained`` into a temporary sibling, then rename: a killed run never leaves half a processor."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    processor.save_pretrained(tmp)
    tmp.rename(folder)


def _log_record(line: str) -> dict | None:
    """One ``metrics.jsonl`` record, or ``None`` for a line cut short by a killed run."""
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


def _state_dict(accelerator: Accelerator, model) -> dict:
    """The full state dict (gathered from shards under FSDP)."""
    return accelerator.get_state_dict(model)


def _better(value: float, best: float | None, greater: bool) -> bool:
    return best is None or (value > best if greater else value < best)


def _stream_signature(args, accelerator: Accelerator) -> dict:
    """What the order of a process's stream depends on (besides the data): a resume must replay the same."""
    return {
        "num_processes": accelerator.num_processes,
        "batch_size": args.batch_size,
        "num_workers": args.num_workers,
        "shuffle_buffer": args.shuffle_buffer,
        "seed": args.seed,
    }


def _resume_stream(progress: TrainingProgress, signature: dict, rank: int) -> None:
    """After ``load_state``: check that the stream can be replayed and take this process's position."""
    saved = progress.stream_signature
    if saved is None or progress.stream_positions is None:
        raise ValueError("the checkpoint was not written by a streaming run: resume it without --streaming")
    changed = {k: (saved.get(k), v) for k, v in signature.items() if saved.get(k) != v}
    if changed:
        raise ValueError(
            "cannot replay the training stream: "
            + ", ".join(f"{k} was {a}, now {b}" for k, (a, b) in changed.items())
            + "; resume with the checkpoint's values"
        )
    progress.epoch, progress.batches_in_epoch = progress.stream_positions[rank]


_END = object()


def _stream_batches(loader: DataLoader, progress: TrainingProgress, seed: int, rank: int):
    """This process's training batches, epoch after epoch, forever.

    Starts at ``(progress.epoch, progress.batches_in_epoch)``, replaying the consumed part of that epoch, and keeps
    the two counters at the position after each batch it hands out. It reads one batch ahead, so the position of
    an epoch's last batch is already ``(epoch + 1, 0)``: a checkpoint taken there resumes on the next epoch.
    """
    dataset = loader.dataset
    while True:
        epoch, skip = progress.epoch, progress.batches_in_epoch
        dataset.set_epoch(epoch)  # the shard order and the shuffle buffer: a function of (seed, epoch)
        loader.generator.manual_seed(seed + epoch)  # the workers' base seed; never the global RNG
        it = iter(loader)
        for i in range(skip):
            if next(it, _END) is _END:
                raise RuntimeError(
                    f"process {rank}: epoch {epoch} of the training stream has {i} batches but the checkpoint "
                    f"consumed {skip}: the data changed since the checkpoint"
                )
        batch = next(it, _END)
        if batch is _END:
            raise RuntimeError(
                f"process {rank}: the training stream of epoch {epoch} is empty (after {skip} batches): this "
                "process has no samples (more processes than samples?)"
            )
        while batch is not _END:
            following = next(it, _END)
            if following is _END:
                progress.epoch, progress.batches_in_epoch = epoch + 1, 0
            else:
                progress.batches_in_epoch += 1
            yield batch
            batch = following


def main(argv: list[str] | None = None) -> dict:
    # 1. Flags: the model's protocol as defaults.
    args, recipe = parse_args(argv)
    stage = recipe.stage(args.stage)
    task = stage.task
    output_dir = Path(args.output_dir)
    ckpt_dir = output_dir / "checkpoints"

    # 2. Accelerator: mixed precision from --mixed-precision or `accelerate launch`, the device from the latter;
    #    checkpoints rotate by its ProjectConfiguration (checkpoints/checkpoint_<n>, at most
    #    --checkpoints-total-limit kept).
    accelerator = Accelerator(
        mixed_precision=args.mixed_precision,  # None: `accelerate launch` / its config / the environment decide
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        log_with=args.report_to,
        project_config=ProjectConfiguration(
            project_dir=str(output_dir),
            automatic_checkpoint_naming=True,
            total_limit=args.checkpoints_total_limit,
        ),
    )
    set_seed(args.seed)
    if args.report_to:
        accelerator.init_trackers(f"pretrain-{args.model}", config={k: str(v) for k, v in vars(args).items()})

    # 3. Data, processor and config from the model's recipe. The processor is fitted once per run (see
    #    _one_processor_per_run): by the main process, then loaded by the others and by a resumed run.
    run_processor = _one_processor_per_run(args, output_dir, accelerator.is_main_process)
    with accelerator.main_process_first():
        if not accelerator.is_main_process and run_processor is not None:
            args.processor_path = str(run_processor)  # the main process has fitted and saved it
        data = task.prepare(args)
        if accelerator.is_main_process and run_processor is not None and not run_processor.exists():
            _save_processor(data.processor, run_processor)
    streaming = isinstance(data.train_dataset, IterableDataset)
    if streaming and not args.max_steps:
        raise ValueError("the training split is streamed (its epoch length is unknown): give --max-steps")
    accelerator.print(f"data: {data.description}; {split_description(data)}")
    selection_note = settle_selection(args, data, sys.argv[1:] if argv is None else argv)
    if selection_note:
        accelerator.print(selection_note)

    # 4. Loaders, model, optimiser and schedule (the protocol's); prepare once.
    train_dl, eval_dl, test_dl = get_dataloaders(args, data, accelerator)
    if args.init_from:
        model = task.auto_class.from_pretrained(args.init_from, dtype=torch.float32, **args.config_overrides)
    else:
        model = task.auto_class.from_config(data.config)
        if data.init_weights is not None:
            data.init_weights(model)
    # what gradients must not train: the model's own (an EMA target) and, in a stage, what the stage leaves alone
    freeze_parameters(model, stage.trainable)
    if args.activation_checkpointing:  # supported: checked by parse_args
        model.activation_checkpointing_enable()
    config = model.config
    use_agc = bool(getattr(config, "use_adaptive_gradient_clipping", False))
    if use_agc:
        check_agc_supported(accelerator.distributed_type)
    optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad], args)
    if streaming:  # not the stream's loader: accelerate would split it across processes again
        model, optimizer = accelerator.prepare(model, optimizer)
    else:
        model, optimizer, train_dl = accelerator.prepare(model, optimizer, train_dl)
    eval_dl = accelerator.prepare(eval_dl) if eval_dl is not None else None
    test_dl = accelerator.prepare(test_dl) if test_dl is not None else None
    unwrapped = accelerator.unwrap_model(model)
    clip_params = agc_parameters(unwrapped) if use_agc else None

    if streaming:  # a nominal epoch: the stream's length is unknown
        steps_per_epoch = args.steps_per_epoch or max(1, math.ceil(args.max_steps / args.num_epochs))
    else:
        steps_per_epoch = math.ceil(len(train_dl) / args.gradient_accumulation_steps)
    total_steps = args.max_steps or math.ceil(args.num_epochs * steps_per_epoch)
    # Stepped once per optimiser step by this loop (not by accelerate, which would step it once per process).
    scheduler = build_scheduler(optimizer, args, total_steps, steps_per_epoch)
    progress = TrainingProgress()
    if streaming:
        progress.stream_signature = _stream_signature(args, accelerator)
    accelerator.print(
        f"model: {type(unwrapped).__name__}, {sum(p.numel() for p in model.parameters()):,} parameters; "
        f"{total_steps} optimiser steps, {steps_per_epoch} per {'nominal ' if streaming else ''}epoch, "
        f"{accelerator.num_processes} process(es); "
        + (f"streamed (shuffle buffer {args.shuffle_buffer}); " if streaming else "")
        + f"{args.optimizer} lr {args.learning_rate:g} ({args.lr_scheduler_type}), weight decay "
        f"{args.weight_decay:g}, batch {args.batch_size}"
        + (", adaptive gradient clipping" if use_agc else "")
        + (f", gradient norm clipped to {args.max_grad_norm:g}" if args.max_grad_norm else "")
    )

    # 5. Resume.
    log_path = output_dir / "metrics.jsonl"
    if args.resume and (latest := _latest_checkpoint(ckpt_dir)) is not None:
        _check_training_state(latest)
        accelerator.load_state(str(latest))
        _load_training_state(latest, progress, scheduler)
        if streaming:
            _resume_stream(progress, _stream_signature(args, accelerator), accelerator.process_index)
        elif progress.stream_signature is not None:
            raise ValueError(f"{latest} was written by a streaming run: resume it with --streaming")
        # accelerate does not advance its checkpoint counter on load; skip any half-written folder too
        accelerator.project_configuration.iteration = _checkpoint_index(_checkpoints(ckpt_dir)[-1]) + 1
        accelerator.print(f"resumed from {latest} at step {progress.optimizer_steps}")
        if accelerator.is_main_process and log_path.exists():  # drop records of steps that will be replayed
            kept = [
                line
                for line in log_path.read_text().splitlines()
                if (record := _log_record(line)) is not None
                and record.get("step", 0) <= progress.optimizer_steps
            ]
            log_path.write_text("".join(f"{line}\n" for line in kept))
    elif accelerator.is_main_process and log_path.exists():  # a fresh start: records of an earlier run go
        log_path.unlink()

    # 6. Train.
    def _evaluate_and_select(record: dict) -> None:
        if eval_dl is None:
            return
        metrics = evaluate(model, eval_dl, accelerator, task)
        record.update({f"validation/{k}": v for k, v in metrics.items()})
        accelerator.print(
            f"step {progress.optimizer_steps} validation: "
            + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        )
        if args.select_best:
            if args.select_best not in metrics:
                raise KeyError(
                    f"--select-best {args.select_best!r} is not a validation metric: {sorted(metrics)}"
                )
            if _better(metrics[args.select_best], progress.best_metric, args.greater_is_better):
                progress.best_metric, progress.best_step = metrics[args.select_best], progress.optimizer_steps
                unwrapped.save_pretrained(
                    output_dir / BEST_DIR,
                    is_main_process=accelerator.is_main_process,
                    save_function=accelerator.save,
                    state_dict=_state_dict(accelerator, model),
                )

    model.train()
    bar = tqdm(
        total=total_steps,
        initial=progress.optimizer_steps,
        disable=not accelerator.is_local_main_process,
        desc=f"train {args.model}",
    )
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    step_loss = torch.zeros((), device=accelerator.device)
    # streaming: one endless stream per process (it keeps progress.epoch / batches_in_epoch itself)
    stream = _stream_batches(train_dl, progress, args.seed, accelerator.process_index) if streaming else None
    while progress.optimizer_steps < total_steps:
        if streaming:
            batches = stream
        else:
            train_dl.set_epoch(progress.epoch)
            if hasattr(data.collate_fn, "set_epoch"):  # a collator whose random draws are seeded per epoch
                data.collate_fn.set_epoch(progress.epoch)
            batches = (
                accelerator.skip_first_batches(train_dl, progress.batches_in_epoch)
                if progress.batches_in_epoch
                else train_dl
            )
        for batch in batches:
            if streaming:
                batch = send_to_device(batch, accelerator.device)
            if task.before_optimizer_step is not None:  # state that is a function of the step (idempotent)
                task.before_optimizer_step(unwrapped, progress.optimizer_steps + 1, total_steps)
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                step_loss += loss.detach() / args.gradient_accumulation_steps
                if accelerator.sync_gradients:
                    if use_agc:
                        accelerator.unscale_gradients()
                        adaptive_clip_grad_(clip_params, config.agc_clip_factor, config.agc_eps)
                    if args.max_grad_norm:
                        accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            if not streaming:
                progress.batches_in_epoch += 1
            progress.samples_seen += args.batch_size * accelerator.num_processes
            if not accelerator.sync_gradients:
                continue
            lr = scheduler.get_last_lr()[0]
            scheduler.step()
            progress.optimizer_steps += 1
            step = progress.optimizer_steps
            if task.after_optimizer_step is not None:  # e.g. an EMA target network; the same on every process
                task.after_optimizer_step(unwrapped, step, total_steps)
            # the optimiser step's loss: mean over its micro-batches and over processes
            record = {
                "step": step,
                "epoch": progress.epoch,
                "loss": float(accelerator.reduce(step_loss, "mean")),
            }
            record["lr"] = lr
            if not math.isfinite(record["loss"]):  # the same value on every process: all stop together
                last = _latest_checkpoint(ckpt_dir)
                raise FloatingPointError(
                    f"step {step}: the training loss is {record['loss']}; training stopped and nothing after the "
                    + (
                        f"last good checkpoint ({last}) was saved: resume from it with --resume (e.g. with a "
                        "lower --learning-rate or --max-grad-norm)"
                        if last is not None
                        else "start was saved (no checkpoint yet: use --checkpointing-steps)"
                    )
                )
            step_loss.zero_()
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.4f}")
            if streaming:  # each process's epochs end on their own: evaluate at the nominal epoch's end
                epoch_end = step % steps_per_epoch == 0
            else:
                epoch_end = progress.batches_in_epoch >= len(train_dl)  # the last batch always syncs
                if epoch_end:
                    progress.epoch += 1
                    progress.batches_in_epoch = 0
            if (
                (args.eval_steps and step % args.eval_steps == 0)
                or (not args.eval_steps and epoch_end)
                or step >= total_steps  # the final weights are always a candidate
            ):
                _evaluate_and_select(record)
            accelerator.log(record, step=step)
            if accelerator.is_main_process:
                with open(log_path, "a") as fh:
                    fh.write(json.dumps(record) + "\n")
            if args.checkpointing_steps and step % args.checkpointing_steps == 0:
                _save_checkpoint(accelerator, progress, scheduler)
            if step >= total_steps:
                break
    bar.close()
    train_seconds = time.perf_counter() - start

    # 7. The selected weights; the validation figures they had; the test split scored once; save.
    results: dict = {"train_seconds": train_seconds, "optimizer_steps": progress.optimizer_steps}
    accelerator.wait_for_everyone()
    if args.select_best and progress.best_step is not None:
        best = load_file(str(output_dir / BEST_DIR / "model.safetensors"))
        missing, unexpected = unwrapped.load_state_dict(best, strict=False)
        tied = set(getattr(unwrapped, "all_tied_weights_keys", None) or {})  # stored once, under their source
        if unexpected or set(missing) - tied:
            raise RuntimeError(f"the best checkpoint does not fit the model: {missing=} {unexpected=}")
        results.update(selected_step=progress.best_step, selected_by=args.select_best)
    if task.after_training is not None:  # the figures below are the saved model's, as a user reloads it
        task.after_training(unwrapped)
    if eval_dl is not None:
        results["validation"] = evaluate(model, eval_dl, accelerator, task)
    if test_dl is not None:
        results["test"] = evaluate(model, test_dl, accelerator, task)
    unwrapped.save_pretrained(
        output_dir,
        is_main_process=accelerator.is_main_process,
        save_function=accelerator.save,
        state_dict=_state_dict(accelerator, model),
    )
    if accelerator.is_main_process:
        if task.baseline is not None:  # trivial baselines on the same test split, beside the model's results
            results["baseline"] = task.baseline(data)
        data.processor.save_pretrained(output_dir)
        (output_dir / "eval_results.json").write_text(json.dumps(results, indent=2) + "\n")
        before = _stages_done(Path(args.init_from)) if args.init_from else []
        record = {
            "stage": args.stage,
            "name": stage.name,
            "optimizer_steps": progress.optimizer_steps,
            "data": scrub_paths(data.description),
            "protocol": dataclasses.asdict(protocol_from_args(args)),
        }
        (output_dir / STAGES_FILE).write_text(json.dumps({"stages": [*before, record]}, indent=2) + "\n")
        # what ran, for the model card: command, data set (name, fingerprint), split, protocol (no machine path)
        write_training_record(
            output_dir,
            training_record(
                script="pretrain.py",
                argv=sys.argv[1:] if argv is None else argv,
                args=args,
                data=data,
                protocol=record["protocol"],
                optimizer_steps=progress.optimizer_steps,
                results=results,
                stage={"number": args.stage, "name": stage.name},
                num_processes=accelerator.num_processes,
                mixed_precision=accelerator.mixed_precision,
            ),
        )
    for split in ("validation", "test"):
        if split in results:
            accelerator.print(f"{split}: " + ", ".join(f"{k} {v:.4f}" for k, v in results[split].items()))
    for name, figures in results.get("baseline", {}).items():
        accelerator.print(f"baseline {name} (test): " + ", ".join(f"{k} {v:.4f}" for k, v in figures.items()))
    accelerator.log(
        {f"{s}/{k}": v for s in ("validation", "test") for k, v in results.get(s, {}).items()},
        step=progress.optimizer_steps,
    )
    # Release the DDP model (its reducer holds the process group) while every process is still here: a gloo group
    # torn down at interpreter exit, after a peer has already gone, can hang in its destructor.
    accelerator.wait_for_everyone()
    model = optimizer = train_dl = eval_dl = test_dl = None
    accelerator.free_memory()
    gc.collect()
    accelerator.wait_for_everyone()
    accelerator.end_training()  # destroys the process group
    return results


if __name__ == "__main__":
    main()
