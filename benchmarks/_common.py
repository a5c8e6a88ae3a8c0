"""Shared helpers of the benchmarks: machine description, date, exact command, the result file, and the timer.

Every benchmark ends with ``write_result(name, figures, data)``, which writes ``benchmarks/results/<name>.json``
with the fields ``name``, ``command``, ``data``, ``machine``, ``date`` and ``figures`` that
``make_results_table.py`` turns into ``RESULTS.md``.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shlex
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch.utils.benchmark import Measurement

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_LOAD_AT_START = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
"""The 1-minute load when the benchmark started (this module is imported first): the load at write includes the
benchmark's own threads, so only this one tells an idle machine from a shared one."""


def _read_first(path: str, key: str) -> str | None:
    """Value of the first ``key: value`` line of a /proc-style file, or ``None``."""
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                name, _, value = line.partition(":")
                if name.strip() == key:
                    return value.strip()
    except OSError:
        return None
    return None


def machine_info() -> dict[str, Any]:
    """CPU model, logical cores (all and usable by this process), RAM, OS, Python and key library versions."""
    info: dict[str, Any] = {
        "cpu": _read_first("/proc/cpuinfo", "model name") or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
    }
    flags = set((_read_first("/proc/cpuinfo", "flags") or "").split())
    # native bf16 matrix units: AMX (Sapphire Rapids and later) or AVX-512 BF16; without them bf16 is emulated
    info["bf16_native"] = sorted(flags & {"amx_bf16", "avx512_bf16"}) or False
    mem = _read_first("/proc/meminfo", "MemTotal")
    if mem and mem.split()[0].isdigit():
        info["ram_gib"] = round(int(mem.split()[0]) / 2**20, 1)
    if _LOAD_AT_START is not None:  # a busy machine inflates every timing
        info["load_average_1min_at_start"] = round(_LOAD_AT_START, 2)
        info["load_average_1min_at_write"] = round(os.getloadavg()[0], 2)
    info["os"] = platform.platform()
    info["python"] = platform.python_version()
    for lib in ("numpy", "torch", "datasets", "pyarrow", "transformers"):
        module = sys.modules.get(lib)
        if module is not None:
            info[lib] = getattr(module, "__version__", "?")
    try:  # a GPU only where torch is already imported and sees one
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except Exception:  # the machine description is best effort
        pass
    return info


REPO_ROOT = Path(__file__).resolve().parents[1]


def _portable(arg: str) -> str:
    """An argument with paths inside the workspace written relative to the repository root (``../shared/...``)."""
    if os.path.isabs(arg) and Path(arg).resolve().is_relative_to(REPO_ROOT.parent):
        return os.path.relpath(arg, REPO_ROOT)
    return arg


def portable_text(value: Any) -> Any:
    """``value`` (a string, or dicts / lists of them) with absolute workspace paths written relative to the
    repository root (``/…/main/x`` -> ``x``, ``/…/shared/data`` -> ``../shared/data``), so results name no machine."""
    if isinstance(value, str):
        return value.replace(f"{REPO_ROOT}/", "").replace(f"{REPO_ROOT.parent}/", "../")
    if isinstance(value, dict):
        return {k: portable_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [portable_text(v) for v in value]
    return value


def command_line() -> str:
    """The exact command that started this process (from the repository root, shell-quoted, portable paths)."""
    argv = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
    return shlex.join(_portable(a) for a in argv)


def now_iso() -> str:
    """Current UTC date and time, ISO 8601, to the second."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    """Current resident set size, MiB (from /proc/self/status; the peak where that is unavailable)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mib()


def time_calls(
    fn: Callable[[Any], Any], inputs: Sequence[Any], *, repeats: int, warmup: int = 1, label: str = ""
) -> Measurement:
    """Seconds per call of ``fn(x)``, the one timer of the benchmarks: ``warmup`` untimed calls, then ``repeats``
    timed ones, ``x`` taken from ``inputs`` in turn (cycled; a training step gets a new batch per call), each call
    run exactly once. The clock is :func:`torch.utils.benchmark.timer`, which synchronises the accelerator before
    it reads the time, so a call's queued GPU work is inside its interval; the result is a
    :class:`torch.utils.benchmark.Measurement` (``.median``, ``.mean``, ``.iqr``, ``.times``: one entry per call)
    that :meth:`Measurement.merge` combines across calls (interleaved variants: ``repeats=1`` per round). Not
    ``Timer.timeit``: it runs two hidden warm-up calls per measurement, which would repeat training steps."""
    import torch
    from torch.utils.benchmark import Measurement, TaskSpec, timer

    if repeats < 1 or not inputs:
        raise ValueError(
            f"time_calls needs repeats >= 1 and at least one input (got {repeats}, {len(inputs)})"
        )
    for i in range(warmup):
        fn(inputs[i % len(inputs)])
    times = []
    for i in range(warmup, warmup + repeats):
        x = inputs[i % len(inputs)]
        start = timer()
        fn(x)
        times.append(timer() - start)
    task = TaskSpec(
        stmt=getattr(fn, "__qualname__", "fn(x)"),
        setup="",
        label=label or None,
        num_threads=torch.get_num_threads(),
    )
    return Measurement(number_per_run=1, raw_times=times, task_spec=task)


def write_result(
    name: str,
    figures: dict[str, Any],
    data: str | dict[str, Any],
    results_dir: str | os.PathLike | None = None,
) -> Path:
    """Write ``<results_dir>/<name>.json`` (default ``benchmarks/results``) and return its path.

    Args:
        name: the benchmark's name (also the file name).
        figures: the measured figures (JSON-serialisable; nested dicts allowed).
        data: what the benchmark ran on (a sentence, or a dict describing several data sets).
        results_dir: where to write (tests pass a temporary folder).
    """
    out_dir = Path(results_dir) if results_dir is not None else RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "name": name,
        "command": command_line(),
        "data": portable_text(data),
        "machine": machine_info(),
        "date": now_iso(),
        "figures": figures,
    }
    path = out_dir / f"{name}.json"
    tmp = path.with_suffix(".json.part")
    tmp.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


__all__ = [
    "RESULTS_DIR",
    "command_line",
    "current_rss_mib",
    "machine_info",
    "now_iso",
    "peak_rss_mib",
    "time_calls",
    "write_result",
]
