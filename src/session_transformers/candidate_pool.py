"""What CERES's and UBM's fixed candidate pools share: a content key, and embeddings cached per weights version.

A retrieval or next-item evaluation ranks every session against the same candidate pool. Each family's pool
(:class:`~session_transformers.models.ceres.CeresCandidatePool`, :class:`~session_transformers.models.ubm.
UbmCandidatePool`) holds the tokenised candidates and a :func:`tensor_digest` key; a model with
:class:`CandidatePoolCacheMixin` embeds the pool once per evaluation instead of once per batch, and embeds it again
as soon as its weights change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook


def tensor_digest(*tensors: torch.Tensor) -> str:
    """A hex digest of the tensors' shapes, dtypes and values: copies of one pool (made by DataLoader workers, say)
    get the same key."""
    digest = hashlib.sha1()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        digest.update(repr((tuple(t.shape), str(t.dtype))).encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()


_OPTIMIZER_STEPS = [0]
"""Optimizer steps taken in this process (any ``torch.optim`` optimizer), counted by a global step hook."""
_OPTIMIZER_HOOK: list = []


def optimizer_steps() -> int:
    """Steps taken by every optimizer of the process since the first call. Fused optimizers update parameters
    without bumping their version counters; the global post-step hook sees them all."""
    if not _OPTIMIZER_HOOK:

        def count(optimizer, args, kwargs) -> None:
            _OPTIMIZER_STEPS[0] += 1

        _OPTIMIZER_HOOK.append(register_optimizer_step_post_hook(count))
    return _OPTIMIZER_STEPS[0]


class CandidatePoolCacheMixin:
    """A model's cache of one candidate pool's embeddings (put it before the ``PreTrainedModel`` base).

    The cache is a plain attribute: not in ``state_dict``, never saved, dropped when the model is pickled or
    copied and on every ``train()`` / ``eval()`` call.
    """

    _candidate_pool_cache: tuple[tuple, torch.Tensor] | None = None

    def train(self, mode: bool = True):
        self._candidate_pool_cache = None  # a new training or evaluation phase: embed the pool afresh
        return super().train(mode)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_candidate_pool_cache"] = None  # never pickled or deep-copied with the model
        return state

    def _weights_version(self) -> tuple:
        """Changes whenever a parameter is modified in place (``load_state_dict``, edits under ``no_grad``: each
        bumps the tensor's version counter), replaced (moved, cast, reassigned), or any optimizer steps (fused
        optimizers do not bump version counters). Writes through ``param.data`` are not seen: call ``train()``
        or ``eval()`` after those."""
        return optimizer_steps(), tuple((p.data_ptr(), p._version) for p in self.parameters())

    def _cached_pool_embeddings(self, key: str, embed: Callable[[], torch.Tensor]) -> torch.Tensor:
        """``embed()``, or what it returned for the pool ``key`` under these weights. Cached only in eval mode
        without gradients (an evaluation loop); in training mode or with gradients enabled nothing is cached."""
        cacheable = not self.training and not torch.is_grad_enabled()
        if cacheable:
            versioned = (key, self._weights_version())
            cached = self._candidate_pool_cache
            if cached is not None and cached[0] == versioned:
                return cached[1]
        embeddings = embed()
        if cacheable:
            self._candidate_pool_cache = (versioned, embeddings)
        return embeddings


__all__ = ["CandidatePoolCacheMixin", "optimizer_steps", "tensor_digest"]
