"""Shared helpers of the benchmarks: machine description, date, exact command, the result file, the timer, the
interval and verdict of a comparison, and the cache of work kept between runs.

Every benchmark ends with ``write_result(name, figures, data)``, which writes ``benchmarks/results/<name>.json``
with the fields ``name``, ``command``, ``data``, ``machine``, ``date`` and ``figures`` that
``make_results_table.py`` turns into ``RESULTS.md``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
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


SECONDS_NOTE = (
    "wall time of a quality run, possibly beside other work (see machine.load_average_1min_at_*): bookkeeping, "
    "not a speed figure"
)
"""What a quality benchmark writes beside the wall-clock seconds it records; speed is measured by the speed
benchmarks, alone."""


# --- intervals and verdicts ---------------------------------------------------------------------------------

VERDICTS = ("holds", "fails", "inconclusive")
"""A claim "A beats B" in a rerun: its difference's 95 % interval is above zero, below zero, or holds zero."""


@dataclass(frozen=True)
class Interval:
    """A figure with its 95 % interval: ``value`` (the estimate), ``low`` / ``high``, ``n`` (examples) and
    ``method`` (``"normal"``, ``"t"``, ``"bootstrap"`` or ``"proportions"``)."""

    value: float
    low: float
    high: float
    n: int
    method: str

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    @property
    def verdict(self) -> str:
        """Of a difference ``A - B`` (higher is better): ``holds`` when the whole interval is above zero,
        ``fails`` when it is below zero, ``inconclusive`` when it holds zero (or is undefined)."""
        if self.low > 0:
            return "holds"
        if self.high < 0:
            return "fails"
        return "inconclusive"

    def separated_above(self, other: Interval) -> bool:
        """This interval lies wholly above ``other`` (two rows scored apart, not paired)."""
        return self.low > other.high


def bootstrap_draws(n: int, resamples: int, seed: int = 0) -> np.ndarray:
    """``(resamples, n)`` example indices drawn with replacement: pass the same draws to every row of a table so
    that its intervals and paired differences resample the same examples."""
    import numpy as np

    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def interval(values: Any, *, method: str = "normal", draws: np.ndarray | None = None) -> Interval:
    """The 95 % interval of the mean of ``values`` (one number per example, NaN for an undefined one).

    ``method="normal"``: the mean plus or minus 1.96 standard errors. ``method="t"``: Student's t in place of 1.96
    (``n - 1`` degrees of freedom), for a few values such as one figure per training seed. ``method="bootstrap"``:
    the 2.5th and 97.5th percentiles of the NaN-ignoring mean over ``draws`` (:func:`bootstrap_draws`). A figure
    that is not a mean of per-example values (an AUROC) takes :func:`bootstrap_intervals`."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    n = len(v)
    if method in ("normal", "t"):
        mean = float(v.mean()) if n else float("nan")
        if n > 1:
            from scipy.stats import t

            factor = 1.96 if method == "normal" else float(t.ppf(0.975, n - 1))
            half = factor * float(v.std(ddof=1)) / math.sqrt(n)
        else:
            half = float("nan")
        return Interval(mean, mean - half, mean + half, n, method)
    if method != "bootstrap":
        raise ValueError(f"interval: method must be 'normal', 't' or 'bootstrap', not {method!r}")
    if draws is None:
        raise ValueError("interval(method='bootstrap') needs draws=bootstrap_draws(n, resamples, seed)")
    _check_draws(draws, n)
    with np.errstate(invalid="ignore"):
        point = float(np.nanmean(v))
        stats = np.nanmean(v[draws], axis=1)
    return _percentile_interval(point, stats, n)


def _check_draws(draws: np.ndarray, n: int) -> None:
    if draws.shape[1] != n:
        raise ValueError(f"bootstrap draws are over {draws.shape[1]} examples, the values over {n}")


def bootstrap_intervals(
    values: Mapping[str, Any], statistic: Callable[..., Mapping[str, float]], draws: np.ndarray
) -> dict[str, Interval]:
    """Several figures computed together (``statistic(**values)`` returns ``{figure: value}``, e.g. accuracy,
    AUROC and F1 from probabilities and labels), each with its bootstrap interval over the same ``draws``."""
    import numpy as np

    arrays = {k: np.asarray(v) for k, v in values.items()}
    n = len(next(iter(arrays.values())))
    _check_draws(draws, n)
    point = dict(statistic(**arrays))
    stats: dict[str, list[float]] = {k: [] for k in point}
    for idx in draws:
        for k, v in statistic(**{name: arr[idx] for name, arr in arrays.items()}).items():
            stats[k].append(v)
    return {k: _percentile_interval(float(point[k]), np.asarray(stats[k], dtype=float), n) for k in point}


def _percentile_interval(point: float, stats: np.ndarray, n: int) -> Interval:
    """Percentile 95 % interval of the resampled ``stats``; resamples where the figure is undefined are left out."""
    import numpy as np

    stats = stats[np.isfinite(stats)]
    low, high = np.percentile(stats, [2.5, 97.5]) if len(stats) else (float("nan"), float("nan"))
    return Interval(point, float(low), float(high), n, "bootstrap")


def paired_difference(a: Any, b: Any, **how: Any) -> Interval:
    """The interval of ``A - B`` over the examples both rows were scored on (``a[i]`` and ``b[i]`` are the same
    example): :func:`interval` of the per-example differences, by ``how`` (``method``, ``draws``). Its
    :attr:`Interval.verdict` is the claim's verdict."""
    import numpy as np

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(
            f"paired_difference: the rows hold {a.shape} and {b.shape} examples; pair them first"
        )
    return interval(a - b, **how)


def proportions_difference(p1: float, p2: float, n: int, *, percent: bool = True) -> Interval:
    """``p1 - p2`` for two rates measured on ``n`` examples each when only the rates were kept (no per-example
    values to pair): the normal interval of the difference of two independent proportions (wider than a paired
    one, so a verdict from it errs towards ``inconclusive``)."""
    scale = 100.0 if percent else 1.0
    a, b = p1 / scale, p2 / scale
    half = scale * 1.96 * math.sqrt(max(a * (1 - a) + b * (1 - b), 1e-12) / max(n, 1))
    diff = p1 - p2
    return Interval(diff, diff - half, diff + half, n, "proportions")


# --- work kept between runs ---------------------------------------------------------------------------------


class SettingsMismatch(SystemExit):
    """Kept work was made with other settings than this call's."""


def _settings_path(path: Path) -> Path:
    return path.with_name(path.name + ".settings.json")


def check_settings(path: str | os.PathLike, settings: Any) -> None:
    """Refuse to reuse ``path`` (a file or folder an earlier call made) when it was made with other ``settings``
    (flags, seeds, sizes: anything JSON-serialisable), so that a changed scale never comes back as the old
    figures. The settings are recorded beside it, in ``<name>.settings.json``; work kept before they were
    recorded is adopted with the current ones."""
    path = Path(path)
    if settings is None or not path.exists():
        return
    recorded = _settings_path(path)
    now = json.loads(json.dumps(settings))
    if not recorded.exists():
        record_settings(path, settings)
        return
    before = json.loads(recorded.read_text())
    if before != now:
        raise SettingsMismatch(
            f"{path} was made by an earlier call with other settings:\n  then: {before}\n  now:  {now}\n"
            "start it over (the benchmark's --fresh, or no --resume) or give another --work-dir"
        )


def record_settings(path: str | os.PathLike, settings: Any) -> None:
    if settings is not None:
        atomic_write(_settings_path(Path(path)), json.dumps(settings))


def kept(path: str | os.PathLike, settings: Any, *, other_settings: str = "refuse") -> bool:
    """Whether ``path`` holds work an earlier call made with these ``settings``. Work made with other settings is
    refused (``other_settings="refuse"``, :func:`check_settings`: for work too costly to redo unasked) or reported
    as not kept, to be made again (``"redo"``)."""
    path = Path(path)
    if other_settings == "redo":
        recorded = _settings_path(path)
        same = recorded.exists() and json.loads(recorded.read_text()) == json.loads(json.dumps(settings))
        return same and path.exists()
    if other_settings != "refuse":
        raise ValueError(f"kept: other_settings must be 'refuse' or 'redo', not {other_settings!r}")
    check_settings(path, settings)
    return path.exists()


def made_once(path: str | os.PathLike, settings: Any, make: Callable[[], Any]) -> None:
    """``make()`` (which writes ``path``) unless an earlier call made ``path`` with the same ``settings``."""
    if not kept(path, settings):
        make()
        record_settings(path, settings)


def cached_json(
    path: str | os.PathLike, compute: Callable[..., Any], *args: Any, settings: Any = None
) -> Any:
    """``compute(*args)``, or what an earlier call stored in ``path`` with the same ``settings``; written whole
    or not at all."""
    path = Path(path)
    if kept(path, settings):
        return json.loads(path.read_text())
    value = compute(*args)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(value))
    record_settings(path, settings)
    return value


def cached_arrays(
    path: str | os.PathLike,
    compute: Callable[..., Mapping[str, np.ndarray]],
    *args: Any,
    settings: Any = None,
) -> dict[str, np.ndarray]:
    """``compute(*args)`` (named arrays), or what an earlier call stored in ``path`` (``.npz``, read without
    pickles) with the same ``settings``; a killed call never leaves a half-written file."""
    import numpy as np

    path = Path(path)
    if kept(path, settings):
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    values = dict(compute(*args))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **values)
    os.replace(tmp, path)
    record_settings(path, settings)
    return values


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file of this process, so that a reader (another process
    included) sees the old file or the new one, never a half-written one, and concurrent writers do not share a
    temporary file."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


__all__ = [
    "RESULTS_DIR",
    "VERDICTS",
    "Interval",
    "SettingsMismatch",
    "atomic_write",
    "bootstrap_draws",
    "bootstrap_intervals",
    "cached_arrays",
    "cached_json",
    "check_settings",
    "interval",
    "kept",
    "made_once",
    "paired_difference",
    "proportions_difference",
    "record_settings",
    "command_line",
    "current_rss_mib",
    "machine_info",
    "now_iso",
    "peak_rss_mib",
    "time_calls",
    "write_result",
]
