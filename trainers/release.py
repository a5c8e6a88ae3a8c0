"""Release trained models on the Hugging Face Hub: evaluate, write the model card, publish in one commit.

Subcommands::

    # 1. build release checkpoints: train a small model per family on the synthetic store (with --real-data also
    #    each family's real-data builds: TAGNN++ on Diginetica, UBM on REES46, Product BYOL on Instacart, CERES on
    #    Home Depot, pretrained then fine-tuned for product search; a family gets one by a
    #    CardFamily.real_data_builds entry), evaluate it, write its card; each folder is ready to push
    python trainers/release.py build --models tagnn_pp ceres --output-dir runs/releases [--real-data]
    python trainers/release.py build --models ubm --real-data --only ubm-rees46   # one build by name

    # 2. publish a trained folder (pretrain.py / finetune.py output): optional re-evaluation, card, release
    #    folder, reload check, then ONE commit and a tag; --dry-run DIR writes the exact folder and stops
    HF_TOKEN=hf_... python trainers/release.py publish runs/releases/tagnn_pp/checkpoint --repo-id me/tagnn-pp
    python trainers/release.py publish runs/releases/tagnn_pp/checkpoint --repo-id me/tagnn-pp --dry-run runs/releases/tagnn_pp/dry-run

    # 3. push a release folder as it is (e.g. one that `build` wrote)
    HF_TOKEN=hf_... python trainers/release.py push runs/releases/tagnn_pp/release --repo-id me/tagnn-pp --public

    # CPU load time of release folders (a speed figure: run it on an otherwise idle machine)
    python trainers/release.py load-time runs/releases/*/release

The token is read from ``HF_TOKEN`` only and never written anywhere. Repos are private unless ``--public``.
Publishing an unchanged release again makes no commit (file hashes are compared with the repo's first). The tag
defaults to ``v<package version>-<12 hex digits of the release's content hash>``, so each distinct release gets
its own tag and re-publishing the same one re-uses it. Library code: :mod:`session_transformers.hub`.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script_module(script: str):
    """``trainers/<script>.py`` as a module (the trainers are scripts, not part of the package), loaded once."""
    name = f"_session_transformers_{script}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{script}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _pretrain_module():
    return _script_module("pretrain")


def _finetune_module():
    return _script_module("finetune")


def is_finetune_run(flags) -> bool:
    """Whether a build's run is a ``trainers/finetune.py`` run (its flags name ``--task``) rather than a
    ``pretrain.py`` stage."""
    return "--task" in flags


def _reset_accelerate() -> None:
    """Runs of ``pretrain.main`` in one process each build their own Accelerator: drop the previous state."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


def _display(path: Path) -> str:
    path = Path(path).resolve()
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------------------


def evaluate_checkpoint(checkpoint: Path, pretrain_args: list[str]) -> dict:
    """Score a saved checkpoint again on the validation and test splits that ``pretrain_args`` (the flags it was
    trained with: ``--model``, data and config flags) select, with the checkpoint's own processor. Returns the
    ``eval_results.json`` shape: ``{"validation": {...}, "test": {...}, "re_evaluated": true}``."""
    import torch
    from accelerate import Accelerator

    pretrain = _pretrain_module()
    with tempfile.TemporaryDirectory() as tmp:
        args, recipe = pretrain.parse_args(
            [*pretrain_args, "--processor-path", str(checkpoint), "--output-dir", tmp]
        )
        task = recipe.stage(args.stage).task
        accelerator = Accelerator()
        data = task.prepare(args)
        _, eval_dl, test_dl = pretrain.get_dataloaders(args, data, accelerator)
        model = task.auto_class.from_pretrained(checkpoint, dtype=torch.float32)
        model = accelerator.prepare(model)
        results: dict = {"re_evaluated": True}
        if eval_dl is not None:
            results["validation"] = pretrain.evaluate(model, accelerator.prepare(eval_dl), accelerator, task)
        if test_dl is not None:
            results["test"] = pretrain.evaluate(model, accelerator.prepare(test_dl), accelerator, task)
    _reset_accelerate()
    return results


def _recorded_pretrain_args(checkpoint: Path) -> list[str] | None:
    info = checkpoint / "release.json"
    if not info.exists():
        return None
    recorded = json.loads(info.read_text()).get("pretrain_args")
    return list(recorded[-1]) if recorded else None


# --------------------------------------------------------------------------------------------------------------
# publish / push
# --------------------------------------------------------------------------------------------------------------


def content_tag(release_dir: Path) -> str:
    """``v<version>-<12 hex>``: the package version and a hash of every file's name and bytes."""
    import session_transformers
    from session_transformers.hub import local_hashes

    digest = hashlib.sha256()
    for path, hashes in local_hashes(release_dir).items():
        digest.update(f"{path}\0{hashes['sha256']}\n".encode())
    return f"v{session_transformers.__version__}-{digest.hexdigest()[:12]}"


def _print_folder(folder: Path) -> None:
    from session_transformers.hub import folder_size

    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        print(f"  {f.relative_to(folder).as_posix():32s} {f.stat().st_size:>12,} bytes")
    print(f"  {'total':32s} {folder_size(folder):>12,} bytes")


def _push(release_dir: Path, args) -> dict:
    from session_transformers.hub import publish

    tag = args.tag or content_tag(release_dir)
    result = publish(
        release_dir,
        args.repo_id,
        private=args.private,
        tag=tag,
        commit_message=args.commit_message or f"Release {tag}",
    )
    if result.committed:
        print(
            f"published {args.repo_id} in one commit {result.commit_oid}: {len(result.files)} file(s), "
            f"{len(result.deleted)} deleted (the Hub client uploads only what changed); tag {tag}"
        )
    else:
        print(f"{args.repo_id} already holds this release ({len(result.files)} files): no commit; tag {tag}")
    return {"repo_id": args.repo_id, "tag": tag, "committed": result.committed, "commit": result.commit_oid}


def cmd_publish(args) -> dict:
    from session_transformers.hub import build_release, finetuned_task, verify_release

    checkpoint = Path(args.checkpoint)
    results = None
    if args.evaluate and finetuned_task(checkpoint):
        raise SystemExit(
            f"--evaluate scores a pretraining task again; {checkpoint} was fine-tuned on "
            f"{finetuned_task(checkpoint)!r} (its figures are its finetune.py run's, in eval_results.json)"
        )
    if args.evaluate:
        flags = shlex.split(args.eval_args) if args.eval_args else _recorded_pretrain_args(checkpoint)
        if not flags:
            raise SystemExit(
                "--evaluate needs the flags the checkpoint was trained with: --eval-args '--model ... ' "
                "(release.json records them for checkpoints built by `release.py build`)"
            )
        fresh = evaluate_checkpoint(checkpoint, flags)
        print("re-evaluated: " + json.dumps({k: v for k, v in fresh.items() if k != "re_evaluated"}))
        stored = checkpoint / "eval_results.json"
        # the trainer's other records (selected step, baselines) stay; the split figures are the new ones
        results = {**(json.loads(stored.read_text()) if stored.exists() else {}), **fresh}
    card_kwargs = {
        "repo_id": args.repo_id,
        "command": args.command,
        "base_model": args.base_model,
        "dataset_name": args.dataset_name,
    }
    with tempfile.TemporaryDirectory() as tmp:
        release_dir = Path(args.dry_run) if args.dry_run else Path(tmp) / "release"
        build_release(checkpoint, release_dir, results=results, plot=not args.no_plot, **card_kwargs)
        if not args.no_verify:
            checked = verify_release(checkpoint, release_dir)
            print("reloaded with the Auto classes, outputs identical: " + ", ".join(checked))
        if args.dry_run:
            print(f"dry run: the folder that would be uploaded to {args.repo_id} is {release_dir}")
            _print_folder(release_dir)
            return {"dry_run": str(release_dir)}
        return _push(release_dir, args)


def cmd_push(args) -> dict:
    release_dir = Path(args.release_dir)
    return _push(release_dir, args)


# --------------------------------------------------------------------------------------------------------------
# build
# --------------------------------------------------------------------------------------------------------------


def build_plan(model_type: str, real_data: bool) -> dict[str, tuple[tuple[str, ...], ...]]:
    """Release name -> pretraining flags per stage: the recipe's ``quickstart`` job when it has one, else the card
    family's ``build_flags``; plus the family's real-data builds with ``real_data``."""
    from session_transformers.hub import card_family
    from session_transformers.recipes import RECIPES

    family = card_family(model_type)
    recipe = RECIPES[model_type]
    quickstart = getattr(recipe, "quickstart", None)
    stages = tuple(quickstart.pretrain_stages) if quickstart is not None else family.build_flags
    if not stages:
        raise ValueError(f"{model_type}: no quickstart job and no build_flags to train a release with")
    plan = {model_type: stages}
    if real_data:
        for suffix, flags in family.real_data_builds.items():
            plan[f"{model_type}-{suffix}"] = flags
    return plan


def train(
    model_type: str, stages, out: Path, overrides: list[str], finetune_overrides: list[str] = ()
) -> tuple[Path, list[list[str]]]:
    """Run ``trainers/pretrain.py`` once per stage (a later stage from the previous one's output), in this
    process, with ``overrides`` appended; a run whose flags name ``--task`` is ``trainers/finetune.py`` on that
    task from the previous run's output, with ``finetune_overrides`` appended. Returns the last run's folder and
    the argument lists run."""
    pretrain = _pretrain_module()
    runs, previous, stage = [], None, 0
    for i, flags in enumerate(stages, 1):
        folder = out / ("checkpoint" if i == len(stages) else f"stage{i}")
        if folder.exists():
            shutil.rmtree(folder)
        if is_finetune_run(flags):
            if previous is None:
                raise ValueError(f"{out.name}: a fine-tuning run needs a pretraining stage before it")
            argv = ["--model", model_type, *flags, *finetune_overrides, "--init-from", str(previous)]
            print(f"== {out.name}: fine-tune ({i}/{len(stages)})", flush=True)
            try:
                _finetune_module().main([*argv, "--output-dir", str(folder)])
            finally:
                _reset_accelerate()
        else:
            stage += 1
            argv = ["--model", model_type, *flags, *overrides]
            if stage > 1:
                argv += ["--stage", str(stage), "--init-from", str(previous)]
            print(f"== {out.name}: pretrain stage {stage} ({i}/{len(stages)})", flush=True)
            try:
                pretrain.main([*argv, "--output-dir", str(folder)])
            finally:
                _reset_accelerate()
        runs.append(argv + ["--output-dir", _display(folder)])
        previous = folder
    return previous, runs


def cmd_build(args) -> dict:
    from session_transformers.hub import build_release, folder_size, split_metrics, verify_release
    from session_transformers.provenance import scrub_paths

    out_root = Path(args.output_dir)
    overrides = []
    if args.store_preset:
        overrides += ["--store-preset", args.store_preset]
    if args.max_steps:
        overrides += ["--max-steps", str(args.max_steps)]
    finetune_overrides = ["--max-steps", str(args.max_steps)] if args.max_steps else []
    overrides += shlex.split(args.extra_args or "")
    summary = {}
    for model_type in args.models:
        for name, stages in build_plan(model_type, args.real_data).items():
            if args.only and name not in args.only:
                continue
            out = out_root / name
            checkpoint, runs = train(model_type, stages, out, overrides, finetune_overrides)
            dataset = next(
                (r[r.index("--dataset") + 1] for r in reversed(runs) if "--dataset" in r), "synthetic"
            )
            info = {
                "model_type": model_type,
                "dataset": dataset,
                # as the training records write them: no machine path (the card shows the records' commands)
                "commands": [
                    scrub_paths(
                        f"python trainers/{'finetune' if is_finetune_run(r) else 'pretrain'}.py {shlex.join(r)}"
                    )
                    for r in runs
                ],
                "pretrain_args": [
                    [a for a in r if a]
                    for r in (run[: run.index("--output-dir")] for run in runs if not is_finetune_run(run))
                ],
            }
            (checkpoint / "release.json").write_text(json.dumps(info, indent=2) + "\n")
            release = build_release(
                checkpoint, out / "release", repo_id=f"{args.namespace}/{name}" if args.namespace else None
            )
            checked = verify_release(checkpoint, release)
            results = json.loads((release / "eval_results.json").read_text())
            split = "test" if results.get("test") else "validation"
            summary[name] = {
                "release": _display(release),
                "bytes": folder_size(release),
                "split": split,
                "metrics": split_metrics(results, split),
                "verified": checked,
            }
            print(
                f"== {name}: release folder {_display(release)} ({folder_size(release):,} bytes), ready to push"
            )
    summary_path = out_root / "summary.json"  # builds of other models into the same folder are kept
    previous = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    summary_path.write_text(json.dumps({**previous, **summary}, indent=2) + "\n")
    for name, s in summary.items():
        shown = ", ".join(f"{k} {v:.2f}" for k, v in s["metrics"].items() if not k.startswith("num_"))
        print(f"  {name:22s} {s['bytes'] / 2**20:7.2f} MiB  {s['split']}: {shown}")
    return summary


def load_times(folders: list[Path], repeats: int = 3) -> dict[str, dict[str, float]]:
    """Seconds to load each release folder on the CPU the way a user does (config, processor, base model and the
    head's Auto class), best of ``repeats``, in this process (imports excluded). A speed figure: run it alone."""
    import time

    import torch
    from transformers import AutoConfig, AutoModel, AutoProcessor

    from session_transformers.hub import _head_auto, card_family

    out = {}
    for folder in folders:
        family = card_family(AutoConfig.from_pretrained(folder).model_type)
        best = {}
        for _ in range(repeats):
            times = {}
            start = time.perf_counter()
            AutoProcessor.from_pretrained(folder)
            times["processor"] = time.perf_counter() - start
            for auto_cls in (AutoModel, _head_auto(family.head_auto_class)):
                start = time.perf_counter()
                auto_cls.from_pretrained(folder, dtype=torch.float32)
                times[auto_cls.__name__] = time.perf_counter() - start
            best = {k: min(v, best.get(k, v)) for k, v in times.items()}
        out[str(folder)] = best
        print(f"{_display(folder)}: " + ", ".join(f"{k} {v:.3f} s" for k, v in best.items()))
    return out


def cmd_load_time(args) -> dict:
    return load_times([Path(f) for f in args.release_dirs], repeats=args.repeats)


# --------------------------------------------------------------------------------------------------------------


def _add_hub_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repo-id", required=True, help="the Hub repo, owner/name")
    vis = p.add_mutually_exclusive_group()
    vis.add_argument(
        "--private", dest="private", action="store_true", default=True, help="private repo (default)"
    )
    vis.add_argument("--public", dest="private", action="store_false", help="public repo")
    p.add_argument("--tag", default=None, help="release tag (default: v<version>-<content hash>)")
    p.add_argument("--commit-message", default=None)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command_name", required=True)

    p = sub.add_parser(
        "publish", help="card + release folder of a trained folder, then one commit to the Hub"
    )
    p.add_argument("checkpoint", help="a trainers/pretrain.py or finetune.py output folder")
    _add_hub_flags(p)
    p.add_argument(
        "--dry-run", metavar="DIR", default=None, help="write the exact upload folder to DIR; no network"
    )
    p.add_argument(
        "--evaluate", action="store_true", help="score the checkpoint again before writing its card"
    )
    p.add_argument(
        "--eval-args", default=None, help="the pretrain.py flags that select its data (with --evaluate)"
    )
    p.add_argument(
        "--command", default=None, help="the exact training command, for the card (if not recorded)"
    )
    p.add_argument("--base-model", default=None, help="Hub id of the model it was initialised from")
    p.add_argument(
        "--dataset-name",
        default=None,
        help="the training data's name in the card and its metadata (default: the checkpoint's training record, "
        "training_record.json; required for a folder without one: the data set is never guessed)",
    )
    p.add_argument("--no-plot", action="store_true", help="no training-curve PNG")
    p.add_argument("--no-verify", action="store_true", help="skip the reload-and-compare check")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("push", help="publish a release folder as it is")
    p.add_argument("release_dir")
    _add_hub_flags(p)
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("build", help="train, evaluate and card a small release checkpoint per model")
    p.add_argument(
        "--models", nargs="+", default=None, help="model families (default: every one with a card)"
    )
    p.add_argument("--output-dir", default=str(ROOT / "runs" / "releases"))
    p.add_argument(
        "--real-data",
        action="store_true",
        help="also each family's real-data builds (CardFamily.real_data_builds: tagnn_pp-diginetica, ubm-rees46, "
        "product_byol-instacart, ceres-homedepot)",
    )
    p.add_argument("--store-preset", choices=("default", "tiny"), default=None, help="synthetic store preset")
    p.add_argument(
        "--max-steps", type=int, default=None, help="override every build's optimiser steps (every run's)"
    )
    p.add_argument(
        "--extra-args",
        default=None,
        help="more pretrain.py flags, appended to every build's pretraining stages",
    )
    p.add_argument("--namespace", default=None, help="Hub owner shown in the cards' usage examples")
    p.add_argument(
        "--only", nargs="+", default=None, metavar="NAME", help="only these builds (e.g. tagnn_pp-diginetica)"
    )
    p.set_defaults(func=cmd_build)
    p = sub.add_parser("load-time", help="CPU load time of release folders (a speed figure: run it alone)")
    p.add_argument("release_dirs", nargs="+")
    p.add_argument("--repeats", type=int, default=3)
    p.set_defaults(func=cmd_load_time)
    args = parser.parse_args(argv)
    if getattr(args, "command_name", None) == "build" and not args.models:
        from session_transformers.hub import CARD_FAMILIES

        args.models = list(CARD_FAMILIES)
    return args


def main(argv: list[str] | None = None) -> dict:
    import session_transformers  # noqa: F401  (registers the models with the Auto classes)

    args = parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    main()
