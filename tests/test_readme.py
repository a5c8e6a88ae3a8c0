"""Every Python block of README.md runs, in order, against the main job's output at toy size.

The blocks run as one script (later blocks use names defined by earlier ones, as a reader pasting them into one
session would), from a folder holding ``runs/quickstart`` (``trainers/quickstart.py --tiny``: the layout the
README's paths name) and a link to ``metrics/``. The only substitution: the synthetic store the checkpoints were
trained on is the tiny one. Shell blocks are commands, not run; the scripts and flags they name must exist.
"""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from launch import ROOT

sys.path.insert(0, str(ROOT / "trainers"))
import quickstart

README = ROOT / "README.md"
SUBSTITUTIONS = {
    # the toy main job trains on the tiny store, whose catalogue the CERES examples must read
    "SyntheticStoreConfig(seed=42)": "SyntheticStoreConfig.tiny(seed=42)",
}


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), flags=re.S | re.M)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("readme")
    quickstart.main(
        ["--tiny", "--no-launch", "--threads", "1", "--models", "tagnn_pp", "ceres"]
        + ["--output-dir", str(work / "runs" / "quickstart")]
    )
    (work / "metrics").symlink_to(ROOT / "metrics", target_is_directory=True)
    return work


def test_readme_has_the_sections_and_blocks():
    text = README.read_text()
    for section in ("## Pipelines", "## Embeddings and export", "## Metrics for `evaluate` users"):
        assert section in text
    blocks = code_blocks("python")
    assert len(blocks) >= 5
    assert 'recommend([["item-17"' not in text  # the old example, whose IDs no checkpoint of ours knows
    assert 'model.recommend([["item-000017"' in text


OWN_DATA = "## Train on your own sessions"
"""The section whose shell commands run too: a shop's own sessions, trained, fine-tuned and carded."""

TOY_TRAINING = {
    # appended to the section's trainer commands (argparse keeps the last value): a toy size, one thread
    "trainers/pretrain.py": ["--max-steps", "3", "--batch-size", "16", "--config", "hidden_size=16"]
    + ["num_attention_heads=2", "--threads", "1"],
    "trainers/finetune.py": ["--max-steps", "2", "--batch-size", "16", "--threads", "1"],
}


def readme_blocks() -> list[tuple[str, str, str]]:
    """``(section heading, language, code)`` of every fenced block of the README, in order."""
    blocks, section = [], ""
    for match in re.finditer(r"^(## [^\n]*)$|^```(\w+)\n(.*?)^```", README.read_text(), flags=re.S | re.M):
        if match.group(1):
            section = match.group(1).strip()
        else:
            blocks.append((section, match.group(2), match.group(3)))
    return blocks


def _run_own_data_commands(block: str, workdir: Path) -> list[str]:
    """Run the repository scripts of an own-data shell block from ``workdir``, at toy size; returns their output."""
    outputs = []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line.split("#")[0])
        if len(words) < 2 or words[0] != "python" or not words[1].startswith("trainers/"):
            continue
        argv = [sys.executable, str(ROOT / words[1]), *words[2:], *TOY_TRAINING.get(words[1], [])]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        res = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, f"README command failed: {line}\n{res.stderr[-3000:]}"
        outputs.append(res.stdout + res.stderr)
    return outputs


def test_readme_python_blocks_run(workdir, monkeypatch, capsys):
    """Every Python block runs, in order, in one namespace; the own-data section's shell commands run where they
    stand (at toy size), so that the Python blocks after them read what they trained."""
    monkeypatch.chdir(workdir)
    namespace: dict = {"__name__": "__readme__"}
    number, trained = 0, []
    for section, language, block in readme_blocks():
        if language == "bash" and section == OWN_DATA:
            trained += _run_own_data_commands(block, workdir)
        if language != "python":
            continue
        number += 1
        source = block
        for old, new in SUBSTITUTIONS.items():
            source = source.replace(old, new)
        try:
            exec(compile(source, f"README.md python block {number}", "exec"), namespace)
        except Exception as err:  # name the block in the failure
            raise AssertionError(f"README python block {number} failed: {err!r}\n{block}") from err
    out = capsys.readouterr().out
    assert "item-000000" in out  # processor.item_vocab[:3]
    assert (workdir / "runs" / "tagnn_items.parquet").exists()
    assert "'HR@10'" in out
    # the own-data section: both layouts trained, the fine-tuned model recommends, its card names the data
    assert len(trained) == 4 and "['datasets:', '- my-shop']" in out
    card = (workdir / "runs" / "my-shop-release" / "README.md").read_text()
    assert "# TAGNN++ session recommender (my-shop)" in card and str(workdir) not in card
    assert "python trainers/finetune.py --model tagnn_pp --task next_item --init-from runs/my-shop" in card
    record = json.loads((workdir / "runs" / "my-shop-files" / "training_record.json").read_text())
    assert record["dataset"]["name"] == "my-shop-files" and record["dataset"]["loader"] == "sessions"


def shell_commands() -> list[tuple[str, list[str]]]:
    """``(script, its arguments)`` of every repository script the README's shell blocks run."""
    commands = []
    for block in code_blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("#")[0].split("&&"):
                words = shlex.split(part)
                for i, word in enumerate(words):
                    if word.endswith(".py") and word.startswith(("trainers/", "benchmarks/")):
                        commands.append((word, words[i + 1 :]))
                    elif word == "-m" and i + 1 < len(words) and words[i + 1].startswith("benchmarks."):
                        # a benchmark run as a module of the benchmarks package: its file
                        commands.append((words[i + 1].replace(".", "/") + ".py", words[i + 2 :]))
    return commands


def test_readme_shell_blocks_name_real_scripts_and_flags():
    """Shell blocks are documented commands, not run: every repository script they name exists, the trainers
    parse their arguments, and the other scripts define the flags given."""
    import finetune
    import pretrain

    commands = shell_commands()
    assert {"trainers/quickstart.py", "trainers/pretrain.py", "trainers/finetune.py"} <= {
        c for c, _ in commands
    }
    for script, argv in commands:
        assert (ROOT / script).exists(), script
        if script in ("trainers/pretrain.py", "trainers/finetune.py"):
            module = pretrain if script.endswith("pretrain.py") else finetune
            threads = torch.get_num_threads()
            try:  # exits on an unknown flag or a bad value
                module.parse_args([a for a in argv if a != "--help"])
            finally:  # parsing applies --threads to this process
                torch.set_num_threads(threads)
        else:
            source = (ROOT / script).read_text()
            flags = [w.split("=")[0] for w in argv if w.startswith("--") and w != "--help"]
            missing = [f for f in flags if f'"{f}"' not in source]
            assert not missing, f"{script} does not define {missing}"
