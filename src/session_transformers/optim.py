"""Optimisation helpers shared by the trainers: unit-wise adaptive gradient clipping (AGC).

AGC (Brock et al., 2021, "High-Performance Large-Scale Image Recognition Without Normalization") clips each
*unit* of a weight (a row of a matrix, i.e. the weights into one output unit; the whole tensor for vectors
and scalars) so that its gradient norm is at most ``clip_factor`` times its weight norm:

    G_i <- G_i * (clip_factor * max(||W_i||, eps) / ||G_i||)    where ||G_i|| > clip_factor * max(||W_i||, eps)

TAGNN++ trains with it (its Table 3 ablates it). Call it after ``accelerator.backward`` (and after
``accelerator.unscale_gradients()`` under fp16), only on steps where gradients are synchronised, on the
parameters :func:`agc_parameters` selects: Brock et al. do not clip the final (output) layer, and a model says
which of its parameters that is with an ``agc_parameters()`` method.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


def _unit_norm(t: torch.Tensor) -> torch.Tensor:
    """Norm of each unit: over all dims but the first for tensors of rank >= 2, over the whole tensor otherwise."""
    if t.ndim <= 1:
        return t.norm(p=2)
    return t.norm(p=2, dim=tuple(range(1, t.ndim)), keepdim=True)


@torch.no_grad()
def adaptive_clip_grad_(
    parameters: Iterable[torch.nn.Parameter] | torch.Tensor, clip_factor: float = 0.01, eps: float = 1e-3
) -> int:
    """Clip gradients unit-wise in place (AGC). Returns how many units were clipped.

    Args:
        parameters: parameters whose ``.grad`` is clipped.
        clip_factor: the ratio ``lambda`` of allowed gradient norm to weight norm (Brock et al. use 0.01 for
            large batches; higher values clip less).
        eps: floor on the weight norm, so that zero-initialised units can still move.
    """
    if clip_factor <= 0:
        raise ValueError(f"clip_factor must be > 0, got {clip_factor}")
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    clipped = 0
    for p in parameters:
        if p.grad is None:
            continue
        g = p.grad
        max_norm = _unit_norm(p.detach().float()).clamp_min(eps) * clip_factor
        g_norm = _unit_norm(g.float())
        factor = (max_norm / g_norm.clamp_min(1e-6)).clamp(max=1.0)
        clipped += int((factor < 1.0).sum())
        g.mul_(factor.to(g.dtype))
    return clipped


def check_agc_supported(distributed_type) -> None:
    """Refuse AGC where parameters are sharded (FSDP): its unit-wise norms need whole weight rows, and a flat
    shard would be clipped by norms of arbitrary slices."""
    if str(getattr(distributed_type, "value", distributed_type)).upper() == "FSDP":
        raise ValueError(
            "adaptive gradient clipping needs whole parameters (unit-wise norms) but FSDP shards them: "
            "train with --config use_adaptive_gradient_clipping=False under FSDP, or use DDP"
        )


def agc_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The parameters AGC clips: ``model.agc_parameters()`` where the model defines it (to leave out its output
    layer, as Brock et al. prescribe), else every trainable parameter."""
    select = getattr(model, "agc_parameters", None)
    params = list(select()) if callable(select) else list(model.parameters())
    return [p for p in params if p.requires_grad]


@torch.no_grad()
def ema_update_(target: torch.nn.Module, online: torch.nn.Module, tau: float) -> None:
    """``target <- tau * target + (1 - tau) * online``, parameter by parameter (buffers are copied).

    BYOL's target network update. Both modules must have the same structure; the update is deterministic, so
    processes holding identical online weights (data parallelism) keep identical targets.
    """
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must be in [0, 1], got {tau}")
    t_params, o_params = list(target.parameters()), list(online.parameters())
    if len(t_params) != len(o_params) or any(a.shape != b.shape for a, b in zip(t_params, o_params)):
        raise ValueError("target and online networks differ in structure")
    torch._foreach_lerp_(t_params, [p.detach() for p in o_params], 1.0 - tau)
    for tb, ob in zip(target.buffers(), online.buffers()):
        tb.copy_(ob)


def byol_momentum(step: int, total_steps: int, base: float = 0.996) -> float:
    """BYOL's target momentum at optimiser step ``step`` of ``total_steps``: ``1 - (1 - base) * (cos(pi k / K) + 1) / 2``,
    rising from ``base`` to 1 (Grill et al., 2020, Sec. 3.2)."""
    k = min(max(step, 0), total_steps)
    return 1.0 - (1.0 - base) * (math.cos(math.pi * k / max(1, total_steps)) + 1.0) / 2.0


__all__ = ["adaptive_clip_grad_", "agc_parameters", "check_agc_supported", "byol_momentum", "ema_update_"]
