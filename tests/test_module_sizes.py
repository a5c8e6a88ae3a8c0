"""Issue 28's size rule: every module of the package stays under 800 lines, except a model file (``modeling_*.py``,
as long as transformers' own model files are). A module that grows past it splits by what it does (as the synthetic
store did: ``store.py`` and ``queries.py``)."""

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "session_transformers"
LIMIT = 800


def test_every_module_but_model_files_is_under_800_lines():
    too_long = {
        str(path.relative_to(PACKAGE)): n
        for path in PACKAGE.rglob("*.py")
        if not path.name.startswith("modeling_") and (n := len(path.read_text().splitlines())) >= LIMIT
    }
    assert not too_long, f"modules of {LIMIT} lines or more (split them by what they do): {too_long}"
