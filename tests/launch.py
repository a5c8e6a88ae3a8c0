"""Helpers shared by the tests: run a repository script in a subprocess (offline, single-threaded), and launch a
function in spawned CPU processes (``launch_processes``)."""

import os
import subprocess
from pathlib import Path

from session_transformers.distributed import spawn_launcher

ROOT = Path(__file__).resolve().parents[1]


def run_script(cmd: list[str], **env: str) -> subprocess.CompletedProcess:
    """Run ``cmd`` from the repository root; returns the completed process with its output captured."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **env}
    return subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=600)


def launch_processes(function, args=(), num_processes: int = 2, timeout: float = 600.0) -> None:
    """``spawn_launcher`` for the tests: a worker that hangs fails its test after ``timeout`` seconds."""
    spawn_launcher(function, args=args, num_processes=num_processes, timeout=timeout)
