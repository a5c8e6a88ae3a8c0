"""Test setup: offline Hub, a private HF_HOME, deterministic torch, and shared fixtures."""

import os
import tempfile

# Must happen before transformers / huggingface_hub are imported anywhere (their constants are read once).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="st-hf-home-"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path

import pytest
import torch

TEST_THREADS = 1
torch.set_num_threads(TEST_THREADS)  # tiny models: threads only add contention on 2 cores

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; tests that need it skip with a clear message when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"real data folder {SHARED_DATA} is absent (it lives in ../shared/data beside the checkout)"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_store():
    """A tiny synthetic store (2 x 2 x 2 leaves, 96 products, 16-d images), built once per test session."""
    from session_transformers.data.synthetic import SyntheticStore, SyntheticStoreConfig

    return SyntheticStore(SyntheticStoreConfig.tiny())


@pytest.fixture(autouse=True)
def fresh_accelerator_state():
    """Trainer, Accelerator and the trainers' ``main`` run in-process set the process-wide ``AcceleratorState``;
    reset it after every test, so that later tests can build an Accelerator with other settings."""
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture(autouse=True)
def one_torch_thread(request):
    """Every test starts and ends with one torch thread: a test that calls a script's ``main`` in-process (which
    may set ``torch.set_num_threads``) must put the count back, or every later test runs with another setting. The
    test that leaked fails here, by name. (Workers of multi-process tests are spawned by ``launch.launch_processes``,
    not forked: a forked child deadlocks in OpenMP once the parent has run a multi-threaded region, whatever the
    count is afterwards.)"""
    yield
    leaked = torch.get_num_threads()
    if leaked != TEST_THREADS:
        torch.set_num_threads(TEST_THREADS)
        pytest.fail(
            f"{request.node.nodeid} left torch with {leaked} threads (tests run with {TEST_THREADS}); "
            "restore the count the code under test changed",
            pytrace=False,
        )
