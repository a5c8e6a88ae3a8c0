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

Means over a count that differs between processes (masked tokens, known labels, negatives) are another matter:
the data-parallel average of per-process means is not the mean over the global batch. :func:`global_mean`
divides by the count summed over the processes instead (what ``transformers.Trainer`` does with
``num_items_in_batch``).

:func:`spawn_launcher` runs a function in several CPU processes to check all of this (the tests and
``benchmarks/process_parity.py`` use it).
"""

from __future__ import annotations

import functools
import os
import tempfile
import time
from collections.abc import Callable

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


def global_mean(total: torch.Tensor, count: torch.Tensor | int) -> torch.Tensor:
    """``total / count`` as this process's share of a mean over every process's items.

    ``total`` is this process's sum of per-item losses and ``count`` its number of items. Under ``P`` processes,
    in a forward that will be backpropagated (gradients enabled: a training step, which every process runs),
    returns ``P * total / sum_p count_p`` (the count summed over the processes, without gradient): the
    data-parallel average of the ``P`` losses, and of their gradients, is then ``sum_p total_p / sum_p count_p``,
    the mean over the global batch, however the items are spread over the processes. One process, or gradients
    disabled (evaluation, which may run on one process alone): ``total / count``. A count of 0 counts as 1.
    """
    count = torch.as_tensor(count, dtype=total.dtype, device=total.device)
    if world_size() > 1 and torch.is_grad_enabled():
        count = count.detach().clone()
        dist.all_reduce(count)
        return total * world_size() / count.clamp(min=1)
    return total / count.clamp(min=1)


def _run_then_leave_the_group(function: Callable, *args) -> None:
    """One :func:`spawn_launcher` worker: ``function(*args)``, then ``destroy_process_group``. A process that exits
    still in a gloo group can abort at interpreter shutdown (``terminate called without an active exception``,
    SIGABRT: gloo's threads still hold work when the interpreter tears down), which failed a passing test about
    once in a full run."""
    try:
        function(*args)
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def spawn_launcher(
    function: Callable, args: tuple = (), num_processes: int = 2, timeout: float | None = None
) -> None:
    """Run ``function(*args)`` in ``num_processes`` CPU processes joined in one ``torch.distributed`` group, as
    ``accelerate.debug_launcher`` does, but with spawned workers instead of forked ones.

    A forked child inherits its parent's GNU OpenMP state without its threads: once the parent has run a
    multi-threaded parallel region (any torch op after ``torch.set_num_threads(2)``, e.g. a benchmark's ``main``
    called in-process), the child's first parallel region waits forever, even if the parent set the count back to
    one. Spawned workers start clean, with one torch thread each (``OMP_NUM_THREADS=1``) and offline. ``function``
    and ``args`` must be picklable: a module-level function, called in a fresh interpreter (set up registries it
    relies on inside it). With ``timeout`` (seconds), workers still running then are terminated and
    :class:`TimeoutError` is raised: a test fails by name instead of hanging its run.
    """
    from accelerate.utils import PrepareForLaunch, patch_environment
    from torch.multiprocessing import start_processes

    # the rendezvous file lives in a folder of its own: torch's FileStore removes it once every worker is done
    with (
        tempfile.TemporaryDirectory() as folder,
        patch_environment(
            world_size=num_processes,
            master_addr="127.0.0.1",
            master_port="29500",
            accelerate_mixed_precision="no",
            accelerate_debug_rdv_file=os.path.join(folder, "rendezvous"),
            accelerate_use_cpu="yes",
            gloo_socket_ifname="lo",
            omp_num_threads=1,
            hf_hub_offline=1,
            tokenizers_parallelism="false",
        ),
    ):
        context = start_processes(
            PrepareForLaunch(functools.partial(_run_then_leave_the_group, function), debug=True),
            args=args,
            nprocs=num_processes,
            join=False,
            start_method="spawn",
        )
        deadline = None if timeout is None else time.monotonic() + timeout
        while not context.join(timeout=5.0):  # raises as soon as a worker fails
            if deadline is not None and time.monotonic() > deadline:
                for process in context.processes:
                    process.terminate()
                raise TimeoutError(
                    f"{getattr(function, '__qualname__', function)} was still running in {num_processes} processes "
                    f"after {timeout:g} s; terminated"
                )


__all__ = ["gather_with_grad", "global_mean", "spawn_launcher", "world_size"]
