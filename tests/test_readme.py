"""Every Python block of README.md runs, in order, against the main job's output at toy size.

The blocks run as one script (later blocks use names defined by earlier ones, as a reader pasting them into one
session would), from a folder holding ``runs/quickstart`` (``trainers/quickstart.py --tiny``: the layout the
README's paths name) and a link to ``metrics/``. The only substitution: the synthetic store the checkpoints were
trained on is the tiny one. Shell blocks are commands, not run; the scripts and flags they name must exist.
"""

import re
import shlex
import sys
from pathlib import Path

import pytest

from launch import ROOT

sys.path.insert(0, str(ROOT / "trainers"))
import quickstart  # noqa: E402

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


def test_readme_python_blocks_run(workdir, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    namespace: dict = {"__name__": "__readme__"}
    for number, block in enumerate(code_blocks("python"), 1):
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
            module.parse_args([a for a in argv if a != "--help"])  # exits on an unknown flag or a bad value
        else:
            source = (ROOT / script).read_text()
            flags = [w.split("=")[0] for w in argv if w.startswith("--") and w != "--help"]
            missing = [f for f in flags if f'"{f}"' not in source]
            assert not missing, f"{script} does not define {missing}"
