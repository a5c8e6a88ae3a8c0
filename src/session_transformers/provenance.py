"""What a training run was, recorded beside its output: the card of a model is rendered from this record.

``trainers/pretrain.py`` and ``trainers/finetune.py`` write :data:`PROVENANCE_FILE` into their output folder when they
save the model::

    {
      "format": 1,
      "script": "pretrain.py",                       # or "finetune.py"
      "command": "python trainers/pretrain.py --model tagnn_pp --dataset session_lines --data-path path/to/my-shop ...",
      "model_type": "tagnn_pp",
      "stage": {"number": 1, "name": "pretrain"},    # pretrain.py; finetune.py writes "task": "next_item"
      "dataset": {"name": "my-shop", "loader": "session_lines", "path": "path/to/my-shop",
                  "fingerprint": {"sha256": "...", "files": 2, "bytes": 123456}},
      "split": {"description": "...", "train": 1234, "validation": 137, "test": 420,
                "validation_fraction": 0.1, "eval_fraction": 0.1, "seed": 42},
      "protocol": {"optimizer": "adam", "learning_rate": 0.001, ...},
      "optimizer_steps": 225, "selected_step": 200, "selected_by": "HR@20",
      "init": {... the record of the --init-from checkpoint, when it has one ...},
      "package_version": "0.1.0"
    }

No machine path is ever written: a path inside the working directory is written relative to it, any other absolute
path as ``path/to/<its last component>`` (:func:`portable_path`), in the command and in free text alike
(:func:`scrub_paths`). The data set's **name** is ``--dataset-name`` when given, else the synthetic store's name for
``--dataset synthetic``, else the name of the data folder (or file); its **fingerprint** is a SHA-256 over every file
under the data path (relative name, size and bytes), so two runs can tell whether they read the same data.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

PROVENANCE_FILE = "training_record.json"
"""Written by both trainers beside the model they save."""

SYNTHETIC_DATASET = "session-transformers-synthetic-store"
"""The name of ``--dataset synthetic`` in records, cards and ``model-index`` metadata."""

_FORMAT = 1


def portable_path(path: str | os.PathLike, cwd: str | os.PathLike | None = None) -> str:
    """A path as a card may show it: relative paths as given, absolute ones relative to ``cwd`` when inside it,
    else ``path/to/<last component>`` (no user name, home or mount point of the machine that trained)."""
    text = os.fspath(path)
    expanded = os.path.expanduser(text)
    if not os.path.isabs(expanded):
        return text
    here = Path(cwd or os.getcwd()).resolve()
    resolved = Path(expanded).resolve()
    try:
        relative = resolved.relative_to(here)
    except ValueError:
        return f"path/to/{resolved.name or 'root'}"
    return relative.as_posix() or "."


_ABSOLUTE = re.compile(r"(?<![\w.~/-])(?:~|/)(?:[\w.+@%-]+/)*[\w.+@%-]+")
"""An absolute POSIX path (or ``~/...``) inside free text."""


def scrub_paths(text: str, cwd: str | os.PathLike | None = None) -> str:
    """``text`` with every absolute path in it replaced by its :func:`portable_path`."""
    if not isinstance(text, str):
        return text

    def portable(match: re.Match) -> str:
        found = match.group(0)
        if found.count("/") < 2 and not found.startswith("~"):  # "/s", a lone "/x": a ratio, not a path
            return found
        return portable_path(found, cwd)

    return _ABSOLUTE.sub(portable, text)


def portable_command(
    script: str,
    argv: Sequence[str],
    *,
    num_processes: int = 1,
    mixed_precision: str | None = None,
    cwd: str | os.PathLike | None = None,
) -> str:
    """The command that reproduces a run: ``python trainers/<script> ...`` (``accelerate launch ...`` for several
    processes or mixed precision), every absolute path made portable."""
    words = []
    for word in argv:
        word = str(word)
        if word.startswith("--") and "=" in word:
            flag, value = word.split("=", 1)
            words.append(f"{flag}={scrub_paths(value, cwd)}")
        else:
            words.append(scrub_paths(word, cwd))
    if any(str(w).startswith("--mixed-precision") for w in argv):  # the script's own flag says it already
        mixed_precision = None
    launcher = ["python"]
    if num_processes > 1 or (mixed_precision and mixed_precision != "no"):
        launcher = ["accelerate", "launch", "--num_processes", str(num_processes)]
        if mixed_precision and mixed_precision != "no":
            launcher += ["--mixed_precision", str(mixed_precision)]
    return shlex.join([*launcher, f"trainers/{script}", *words])


def fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """SHA-256 over every file under ``path`` (a folder, recursively, hidden names skipped; or one file): each
    file's relative name, size and bytes, in name order. Returns ``{"sha256", "files", "bytes"}``."""
    root = Path(path)
    if root.is_file():
        files = [root]
        base = root.parent
    elif root.is_dir():
        files = sorted(
            p
            for p in root.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
        )
        base = root
    else:
        raise FileNotFoundError(f"{path}: no such file or folder to fingerprint")
    digest, total = hashlib.sha256(), 0
    for file in files:
        size = file.stat().st_size
        total += size
        digest.update(f"{file.relative_to(base).as_posix()}\0{size}\0".encode())
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return {"sha256": digest.hexdigest(), "files": len(files), "bytes": total}


def dataset_name(args) -> str:
    """``--dataset-name``, else :data:`SYNTHETIC_DATASET` for the synthetic store, else the data folder's name."""
    given = getattr(args, "dataset_name", None)
    if given:
        return str(given)
    if getattr(args, "dataset", "synthetic") == "synthetic":
        return SYNTHETIC_DATASET
    path = getattr(args, "data_path", None)
    if not path:
        return str(args.dataset)
    resolved = Path(os.path.expanduser(str(path))).resolve()
    return resolved.stem if resolved.is_file() else resolved.name


def dataset_record(args) -> dict[str, Any]:
    """The ``"dataset"`` entry of a record: name, loader, portable path and fingerprint (the synthetic store: its
    generation settings instead of files)."""
    record: dict[str, Any] = {"name": dataset_name(args), "loader": getattr(args, "dataset", "synthetic")}
    if record["loader"] == "synthetic":
        record["generated"] = {
            "store_preset": getattr(args, "store_preset", "default"),
            "query_reformulation": getattr(args, "query_reformulation", "mix"),
            "num_sessions": getattr(args, "num_sessions", None),
            "seed": getattr(args, "seed", None),
        }
        return record
    path = getattr(args, "data_path", None)
    if path:
        record["path"] = portable_path(path)
        try:
            record["fingerprint"] = fingerprint(os.path.expanduser(str(path)))
        except FileNotFoundError:
            record["fingerprint"] = None
    return record


def _size(dataset) -> int | str | None:
    if dataset is None:
        return None
    try:
        return len(dataset)
    except TypeError:  # a stream
        return "streamed"


def split_record(args, data) -> dict[str, Any]:
    """The ``"split"`` entry: the recipe's description of the data and rule (paths scrubbed), the sizes of the three
    splits in samples, and the flags that set them."""
    out: dict[str, Any] = {
        "description": scrub_paths(getattr(data, "description", "") or ""),
        "train": _size(data.train_dataset),
        "validation": _size(data.eval_dataset),
        "test": _size(getattr(data, "test_dataset", None)),
    }
    for flag in (
        "eval_fraction",
        "validation_fraction",
        "seed",
        "max_train_samples",
        "max_eval_samples",
        "max_validation_samples",
    ):
        value = getattr(args, flag, None)
        if value is not None:
            out[flag] = value
    return out


def read_training_record(folder: str | os.PathLike) -> dict | None:
    """The record of a trained folder, or ``None`` (a folder written before records existed)."""
    path = Path(folder) / PROVENANCE_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def training_record(
    *,
    script: str,
    argv: Sequence[str],
    args,
    data,
    protocol: Mapping[str, Any],
    optimizer_steps: int | None,
    results: Mapping[str, Any] | None = None,
    stage: Mapping[str, Any] | None = None,
    task: str | None = None,
    num_processes: int = 1,
    mixed_precision: str | None = None,
) -> dict[str, Any]:
    """The record of one run (see the module docstring); ``init`` holds the ``--init-from`` folder's own record."""
    import session_transformers

    results = results or {}
    record: dict[str, Any] = {
        "format": _FORMAT,
        "script": script,
        "command": portable_command(
            script, argv, num_processes=num_processes, mixed_precision=mixed_precision
        ),
        "model_type": getattr(args, "model", None),
    }
    if stage is not None:
        record["stage"] = dict(stage)
    if task is not None:
        record["task"] = task
    record["dataset"] = dataset_record(args)
    record["split"] = split_record(args, data)
    record["protocol"] = {k: scrub_paths(v) for k, v in dict(protocol).items()}
    record["optimizer_steps"] = optimizer_steps
    for key in ("selected_step", "selected_by", "selected_checkpoint"):
        if results.get(key) is not None:
            record[key] = results[key]
    init = getattr(args, "init_from", None)
    if init:
        record["init"] = read_training_record(init) if os.path.isdir(init) else None
        record["init_from"] = portable_path(init) if os.path.isdir(init) else str(init)
    record["package_version"] = session_transformers.__version__
    return record


def write_training_record(output_dir: str | os.PathLike, record: Mapping[str, Any]) -> Path:
    path = Path(output_dir) / PROVENANCE_FILE
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def training_history(record: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The runs behind a model, oldest first: the record's ``init`` chain, then the record itself."""
    chain: list[dict[str, Any]] = []
    while record:
        chain.append({k: v for k, v in record.items() if k != "init"})
        record = record.get("init")
    return chain[::-1]


__all__ = [
    "PROVENANCE_FILE",
    "SYNTHETIC_DATASET",
    "dataset_name",
    "dataset_record",
    "fingerprint",
    "portable_command",
    "portable_path",
    "read_training_record",
    "scrub_paths",
    "split_record",
    "training_history",
    "training_record",
    "write_training_record",
]
