"""Strict checkpoint loading for every model family: a checkpoint loads completely, or not at all.

``transformers`` only *warns* when weights are missing from a checkpoint and initialises them at random; for a
released session model that means a user can get a silently untrained encoder. :class:`StrictLoadingMixin` (put
first in each family's ``PreTrainedModel`` bases) turns that into a :class:`CheckpointError` naming the folder and
the keys:

- unreadable weights (a truncated or tampered ``model.safetensors``): error;
- a checkpoint of another model family (``config.json``'s ``model_type``): error;
- a config whose sizes disagree with the weights (shape mismatches): error;
- missing or unexpected keys when the checkpoint was saved by this very class: error;
- a new head on a pretrained checkpoint (the class is not among the checkpoint's ``architectures``, e.g. a
  fine-tuning head on a pretraining output): only the head may be missing (keys outside the base model's prefix),
  and the keys that start untrained are logged; the pretrained part itself must be complete. Weights the
  checkpoint has that this class does not use (a pretraining head, BYOL's target network) are dropped, as usual.
- a base model loaded from one of its own family's heads (``AutoModel.from_pretrained`` on a fine-tuned folder):
  the head's weights are left out without ``transformers``' load report of ``UNEXPECTED`` keys (they are logged at
  INFO level); the base model's own weights must all be there, as above.

``strict=False`` in ``from_pretrained`` restores the plain ``transformers`` behaviour for deliberate surgery.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch

logger = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A model checkpoint that cannot be loaded faithfully: unreadable, of another model, or incomplete."""


def _saved_model_type(path: str | os.PathLike) -> str | None:
    config = Path(path) / "config.json"
    if not config.is_file():
        return None
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{config}: not a readable JSON config ({err})") from err


def _short(keys) -> str:
    keys = sorted(str(k) for k in keys)
    return ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")


class StrictLoadingMixin:
    """``from_pretrained`` that refuses incomplete, mismatched or foreign checkpoints (see the module docstring)."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, strict: bool = True, **kwargs):
        if not strict:
            return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        where = str(pretrained_model_name_or_path)
        expected_type = getattr(getattr(cls, "config_class", None), "model_type", None)
        if os.path.isdir(where):
            saved_type = _saved_model_type(where)
            if saved_type is not None and expected_type and saved_type != expected_type:
                raise CheckpointError(
                    f"{where}: a {saved_type!r} checkpoint cannot be loaded as {cls.__name__} "
                    f"(model_type {expected_type!r}); use the Auto classes or the {saved_type} model classes"
                )
        want_info = kwargs.pop("output_loading_info", False)
        try:
            model, info = super().from_pretrained(
                pretrained_model_name_or_path, *model_args, output_loading_info=True, **kwargs
            )
        except CheckpointError:
            raise
        except Exception as err:  # safetensors / OS / shape errors: say which checkpoint, keep the cause
            if type(err).__name__ in {"SafetensorError", "HeaderTooLarge", "HeaderTooSmall"} or isinstance(
                err, RuntimeError | OSError | ValueError
            ):
                raise CheckpointError(f"{where}: cannot load {cls.__name__}: {err}") from err
            raise
        missing = set(info.get("missing_keys", ()))
        unexpected = set(info.get("unexpected_keys", ()))
        mismatched = list(info.get("mismatched_keys", ()))
        problems = []
        if mismatched:
            problems.append(
                f"weights whose shapes disagree with the config: {_short(k[0] for k in mismatched)}"
            )
        if info.get("error_msgs"):
            problems.append("; ".join(info["error_msgs"]))
        saved_by_this_class = cls.__name__ in (getattr(model.config, "architectures", None) or [])
        prefix = getattr(cls, "base_model_prefix", "") or ""
        if saved_by_this_class:
            if missing:
                problems.append(f"weights missing from the checkpoint: {_short(missing)}")
            if unexpected:
                problems.append(f"weights this model does not have: {_short(unexpected)}")
        else:
            # A new head on a pretrained checkpoint: the pretrained part must be complete.
            base_missing = {k for k in missing if prefix and (k == prefix or k.startswith(prefix + "."))}
            if base_missing or (missing and not getattr(model, prefix, None)):
                problems.append(
                    f"pretrained weights missing from the checkpoint: {_short(base_missing or missing)}"
                )
            elif missing:
                logger.warning(
                    "%s: %s starts a new head; these weights start untrained: %s",
                    where,
                    cls.__name__,
                    _short(missing),
                )
        if problems:
            raise CheckpointError(f"{where}: refusing to load {cls.__name__}: " + "; ".join(problems))
        return (model, info) if want_info else model

    def _adjust_missing_and_unexpected_keys(self, loading_info) -> None:
        """A base model loaded from a checkpoint of one of its family's heads (the checkpoint's ``architectures``
        name another class, and this model is the base: it has no submodule named ``base_model_prefix``): the
        head's weights are expected to stay behind, so they leave the unexpected keys (no alarming load report for
        a fine-tuned folder of our own) and are logged at INFO level instead."""
        super()._adjust_missing_and_unexpected_keys(loading_info)
        prefix = getattr(self, "base_model_prefix", "") or ""
        architectures = getattr(self.config, "architectures", None) or []
        is_base = bool(prefix) and not isinstance(getattr(self, prefix, None), torch.nn.Module)
        if not is_base or not architectures or type(self).__name__ in architectures:
            return
        head_only = {k for k in loading_info.unexpected_keys if not k.startswith(prefix + ".")}
        if head_only:
            logger.info(
                "%s: left out the weights of %s's head: %s",
                type(self).__name__,
                architectures[0],
                _short(head_only),
            )
            loading_info.unexpected_keys = set(loading_info.unexpected_keys) - head_only


__all__ = ["CheckpointError", "StrictLoadingMixin"]
