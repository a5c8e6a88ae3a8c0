"""Release folders: the files of a checkpoint that are published, and the check that a release reloads and
reproduces the checkpoint exactly (see :mod:`session_transformers.hub`)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .cards import (
    EVAL_FILE,
    PLOT_FILE,
    STAGES_FILE,
    _head_auto,
    card_family,
    finetuned_task,
    render_card,
)
from .records import training_curve

RELEASE_FILES: tuple[str, ...] = (
    "config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "processor_config.json",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "word_vectors.safetensors",  # MUVCOG's processor: the word vectors beside processor_config.json
    EVAL_FILE,
    STAGES_FILE,
    "training_record.json",  # provenance.PROVENANCE_FILE: what ran (no machine path in it)
)
"""Files of a checkpoint folder that go into a release (plus sharded ``model-*.safetensors``). Never pickles
(``training_args.bin``), optimiser state or intermediate checkpoints."""


def release_files(checkpoint: Path) -> list[Path]:
    checkpoint = Path(checkpoint)
    files = [checkpoint / name for name in RELEASE_FILES if (checkpoint / name).is_file()]
    files += sorted(checkpoint.glob("model-*-of-*.safetensors"))
    if not (checkpoint / "config.json").is_file():
        raise FileNotFoundError(f"{checkpoint} has no config.json: not a saved model folder")
    if not any(f.name.endswith(".safetensors") for f in files):
        raise FileNotFoundError(f"{checkpoint} has no safetensors weights")
    return files


def build_release(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    model_type: str | None = None,
    results: Mapping[str, Any] | None = None,
    plot: bool = True,
    **card_kwargs,
) -> Path:
    """Write the release folder of ``checkpoint`` into ``out_dir`` (replaced): weights, config, processor files,
    evaluation JSON (``results`` when re-evaluated), ``README.md`` (the card) and, with ``plot``, the training
    curve. Returns ``out_dir``."""
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    files = release_files(checkpoint)
    if out_dir.resolve() == checkpoint.resolve():
        raise ValueError("the release folder must differ from the checkpoint folder")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    for f in files:
        shutil.copyfile(f, out_dir / f.name)
    if results is not None:
        (out_dir / EVAL_FILE).write_text(json.dumps(results, indent=2) + "\n")
    model_type = model_type or json.loads((checkpoint / "config.json").read_text())["model_type"]
    family = card_family(model_type).for_task(finetuned_task(checkpoint))
    drawn = training_curve(checkpoint, out_dir / PLOT_FILE, family) if plot else None
    card = render_card(
        checkpoint,
        model_type,
        plot=PLOT_FILE if drawn else None,
        results=results,
        **card_kwargs,
    )
    card.save(out_dir / "README.md")
    return out_dir


def _outputs(model, inputs: dict) -> dict[str, torch.Tensor]:
    model.eval()
    with torch.no_grad():
        out = model(**inputs)
    return {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}


def _flat_tensors(value: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor of a model input: a tensor, or a graph batch (``torch_geometric`` ``HeteroData``, via
    ``to_dict``) or mapping of them, by dotted path; other values give none."""
    if isinstance(value, torch.Tensor):
        return {prefix: value}
    if hasattr(value, "to_dict") and not isinstance(value, Mapping):
        value = value.to_dict()
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            out.update(_flat_tensors(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {}


def verify_release(checkpoint: str | Path, release: str | Path) -> dict[str, int]:
    """Reload ``release`` the way a user does (``import session_transformers``, then ``AutoConfig`` /
    ``AutoModel`` / ``AutoProcessor`` / the head's Auto class ``.from_pretrained``) and check that every output
    tensor equals the checkpoint's exactly on the family's example inputs (encoded by both processors, which must
    agree too). Returns ``{class name: tensors compared}``; raises ``AssertionError`` on any difference."""
    from transformers import AutoConfig, AutoModel, AutoProcessor

    import session_transformers  # noqa: F401  (registers the Auto classes)

    checkpoint, release = Path(checkpoint), Path(release)
    config = AutoConfig.from_pretrained(release)
    family = card_family(config.model_type).for_task(finetuned_task(checkpoint))
    ref_config = AutoConfig.from_pretrained(checkpoint)

    def _plain(c) -> dict:
        return {k: v for k, v in c.to_dict().items() if k != "_name_or_path"}

    if _plain(config) != _plain(ref_config):
        raise AssertionError("the released config differs from the checkpoint's")
    inputs = family.example_inputs(AutoProcessor.from_pretrained(release))
    ref_inputs = family.example_inputs(AutoProcessor.from_pretrained(checkpoint))
    for key in ref_inputs:
        a, b = _flat_tensors(inputs[key]), _flat_tensors(ref_inputs[key])
        if a.keys() != b.keys() or any(not torch.equal(a[k], b[k]) for k in b):
            raise AssertionError(f"the released processor encodes {key!r} differently")
    compared = {}
    from transformers.utils import logging as hf_logging

    for auto_cls in (AutoModel, _head_auto(family.head_auto_class)):
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # a base model loaded from a head checkpoint reports the head's keys
        try:
            mine = auto_cls.from_pretrained(release, dtype=torch.float32)
            ref = auto_cls.from_pretrained(checkpoint, dtype=torch.float32)
        finally:
            hf_logging.set_verbosity(verbosity)
        got, expected = _outputs(mine, inputs), _outputs(ref, ref_inputs)
        if set(got) != set(expected):
            raise AssertionError(f"{type(mine).__name__}: outputs {sorted(got)} != {sorted(expected)}")
        for name in expected:
            if not torch.equal(got[name], expected[name]):
                diff = (got[name].float() - expected[name].float()).abs().max().item()
                raise AssertionError(f"{type(mine).__name__}.{name} differs (max abs diff {diff})")
        compared[type(mine).__name__] = len(expected)
    return compared


# --------------------------------------------------------------------------------------------------------------
# Publishing
# --------------------------------------------------------------------------------------------------------------


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
