"""Negatives gathered across processes: 2 CPU processes with batch N = 1 process with batch 2N."""

import os
import tempfile

import pytest
import torch

from launch import launch_processes


def _model_and_data():
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 4)
    x, y = torch.randn(8, 6), torch.randn(8, 6)
    return model, x, y


def _worker(out_dir: str) -> None:
    from accelerate import Accelerator

    from session_transformers.losses import info_nce

    acc = Accelerator(cpu=True)
    model, x, y = _model_and_data()
    model = acc.prepare(model)
    rank, n = acc.process_index, x.shape[0] // acc.num_processes
    rows = slice(rank * n, (rank + 1) * n)
    loss = info_nce(model(x[rows]), model(y[rows]), temperature=0.1, gather=True)
    acc.backward(loss)  # DDP averages the gradients of the processes
    mean_loss = acc.reduce(loss.detach(), "mean")
    if acc.is_main_process:
        grads = {k: p.grad for k, p in acc.unwrap_model(model).named_parameters()}
        torch.save({"loss": mean_loss, "grads": grads}, os.path.join(out_dir, "two.pt"))


def test_two_processes_with_batch_n_equal_one_process_with_batch_2n():
    from session_transformers.losses import info_nce

    model, x, y = _model_and_data()
    loss = info_nce(model(x), model(y), temperature=0.1, gather=True)  # one process: gather is a no-op
    loss.backward()
    with tempfile.TemporaryDirectory() as out:
        launch_processes(_worker, args=(out,), num_processes=2)
        two = torch.load(os.path.join(out, "two.pt"), weights_only=True)
    torch.testing.assert_close(two["loss"], loss.detach())
    for k, p in model.named_parameters():
        torch.testing.assert_close(two["grads"][k], p.grad, msg=f"gradient of {k}")


def _uneven_worker(out_dir: str) -> None:
    from accelerate import Accelerator

    from session_transformers.distributed import gather_with_grad

    acc = Accelerator(cpu=True)
    rank = acc.process_index
    t = torch.full((rank + 1, 2), float(rank), requires_grad=True)  # 1 row on rank 0, 2 rows on rank 1
    gathered, offset = gather_with_grad(t)
    (gathered.sum(1) * torch.arange(1, 4)).sum().backward()
    torch.save(
        {"gathered": gathered.detach(), "offset": offset, "grad": t.grad}, os.path.join(out_dir, f"{rank}.pt")
    )


def test_uneven_batches_are_gathered_in_rank_order_and_gradients_return_to_their_owner():
    with tempfile.TemporaryDirectory() as out:
        launch_processes(_uneven_worker, args=(out,), num_processes=2)
        r0, r1 = (torch.load(os.path.join(out, f"{r}.pt"), weights_only=True) for r in (0, 1))
    torch.testing.assert_close(r0["gathered"], torch.tensor([[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]))
    assert (r0["offset"], r1["offset"]) == (0, 1)
    # both processes' losses weight row j by (j + 1): each owner receives the sum over the 2 processes
    torch.testing.assert_close(r0["grad"], torch.full((1, 2), 2.0))
    torch.testing.assert_close(r1["grad"], torch.tensor([[4.0, 4.0], [6.0, 6.0]]))


def _global_mean_worker(out_dir: str) -> None:
    from accelerate import Accelerator

    from session_transformers.distributed import global_mean

    acc = Accelerator(cpu=True)
    rank = acc.process_index
    w = torch.ones((), requires_grad=True)
    x = torch.tensor([1.0]) if rank == 0 else torch.tensor([2.0, 3.0, 6.0])  # 1 item here, 3 there
    loss = global_mean((w * x).sum(), x.numel())
    loss.backward()
    grad = w.grad.clone()
    torch.distributed.all_reduce(grad)  # what DDP does, then / P
    with torch.no_grad():  # evaluation: no collective, this process's own mean
        local = global_mean((w * x).sum(), x.numel())
    torch.save(
        {"loss": acc.reduce(loss.detach(), "mean"), "grad": grad / 2, "local": local},
        os.path.join(out_dir, f"{rank}.pt"),
    )


def test_global_mean_over_uneven_counts_is_the_mean_over_every_process():
    """Counts that differ between processes (masked tokens, known labels): the process mean of the losses and
    the averaged gradients are those of the mean over all items (3.0), not the mean of the means (2.8...)."""
    from session_transformers.distributed import global_mean

    with tempfile.TemporaryDirectory() as out:
        launch_processes(_global_mean_worker, args=(out,), num_processes=2)
        r0, r1 = (torch.load(os.path.join(out, f"{r}.pt"), weights_only=True) for r in (0, 1))
    for r in (r0, r1):
        torch.testing.assert_close(r["loss"], torch.tensor(3.0))
        torch.testing.assert_close(r["grad"], torch.tensor(3.0))
    torch.testing.assert_close((r0["local"], r1["local"]), (torch.tensor(1.0), torch.tensor(11.0 / 3)))
    # one process: total / count (a count of 0 counts as 1)
    assert global_mean(torch.tensor(6.0), 0) == 6.0 and global_mean(torch.tensor(6.0), 4) == 1.5


def _threaded_op_worker(out: str) -> None:
    x = torch.arange(100_000)  # repeat_interleave's radix sort is an OpenMP region of its own
    total = x.repeat_interleave(torch.full((100_000,), 2)).sum()
    torch.save(
        {"total": total, "threads": torch.get_num_threads()},
        os.path.join(out, f"{torch.distributed.get_rank()}.pt"),
    )


def test_workers_start_clean_after_the_parent_ran_multithreaded_openmp():
    """A parent that has run a 2-thread OpenMP region (as a benchmark's main called in-process does) still gets
    working single-threaded workers. With accelerate.debug_launcher's fork the workers wait forever in libgomp."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x = torch.arange(100_000)
        expected = x.repeat_interleave(torch.full((100_000,), 2)).sum()
    finally:
        torch.set_num_threads(before)
    with tempfile.TemporaryDirectory() as out:
        launch_processes(_threaded_op_worker, args=(out,), num_processes=2, timeout=120)
        ranks = [torch.load(os.path.join(out, f"{r}.pt"), weights_only=True) for r in (0, 1)]
    assert all(r["total"] == expected and r["threads"] == 1 for r in ranks)


def _sleeping_worker() -> None:
    import time

    time.sleep(60)


def test_a_hanging_worker_fails_by_name_instead_of_hanging_the_run():
    with pytest.raises(TimeoutError, match="_sleeping_worker"):
        launch_processes(_sleeping_worker, num_processes=2, timeout=1)
