"""Run a repository script in a subprocess, offline and single-threaded (shared by the trainer tests)."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_script(cmd: list[str], **env: str) -> subprocess.CompletedProcess:
    """Run ``cmd`` from the repository root; returns the completed process with its output captured."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **env}
    return subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=600)


def launch_processes(function, args=(), num_processes: int = 2) -> None:
    """``accelerate.debug_launcher`` with freshly spawned workers instead of forked ones.

    ``debug_launcher`` forks the test process. Once anything in that process has run a multi-threaded OpenMP region
    (a script's ``main`` called in-process with ``torch.set_num_threads(2)``, say), a forked child's first OpenMP
    region waits forever on the parent's thread pool, which the child does not have (GNU OpenMP is not fork-safe),
    even after the parent sets the count back to one: this hung CI in ``test_hard_negatives_across_two_processes_
    equal_one_process``. Spawned workers start clean and single-threaded. ``function`` must be importable (a
    module-level function of a test module), as for any spawned process.
    """
    import tempfile

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
        start_processes(
            PrepareForLaunch(function, debug=True), args=args, nprocs=num_processes, start_method="spawn"
        )
