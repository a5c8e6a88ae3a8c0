"""Contrastive negatives from every process: an autograd-aware gather of embeddings across processes.

In-batch contrastive losses (UBM's InfoNCE, MUVCOG's hard negatives, CERES's in-batch retrieval negatives) get
better with more negatives. Under data parallelism each process holds only its own batch; gathering every
process's embeddings gives each anchor the negatives of the global batch. The gather keeps the graph: each
process's backward sends the gradient of its loss with respect to every gathered row back to the process that
owns the row (``torch.distributed.nn.functional.all_gather``), so a local row receives the gradient of every
process's loss. With a mean loss per process and the data-parallel gradient average, two processes with batch
``N`` then compute exactly the loss and gradients of one process with batch ``2N``.

Batches of different sizes (the last batch of an epoch) are padded for the collective and cut back after it.
Outside ``torch.distributed`` (one process) every function returns its input unchanged.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_with_grad(tensor: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Concatenate ``tensor`` ``(n_p, ...)`` of every process along dim 0, in rank order, keeping gradients.

    Returns ``(gathered, offset)``: the ``(sum_p n_p, ...)`` concatenation and where this process's rows start
    in it (so row ``i`` of the local batch is row ``offset + i`` of ``gathered``).
    """
    if world_size() == 1:
        return tensor, 0
    n = torch.tensor([tensor.shape[0]], device=tensor.device, dtype=torch.long)
    sizes = [torch.zeros_like(n) for _ in range(world_size())]
    dist.all_gather(sizes, n)
    sizes = [int(s) for s in sizes]
    pad = max(sizes) - tensor.shape[0]
    padded = F.pad(tensor, (0, 0) * (tensor.dim() - 1) + (0, pad)) if pad else tensor
    parts = torch.distributed.nn.functional.all_gather(padded)
    rank = dist.get_rank()
    return torch.cat([p[:s] for p, s in zip(parts, sizes)]), sum(sizes[:rank])


__all__ = ["gather_with_grad", "world_size"]
