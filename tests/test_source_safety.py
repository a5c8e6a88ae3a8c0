"""Nothing in the package or its scripts unpickles data or needs remote code (a scan of the source tree)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("src", "trainers", "benchmarks")
RULES = {
    r"\bpickle\.loads?\(": "unpickles data",
    r"\bcloudpickle\b|\bdill\b": "unpickles data",
    r"trust_remote_code\s*=\s*True": "needs remote code",
    r"torch\.load\((?![^)]*weights_only\s*=\s*True)": "torch.load without weights_only=True",
    r"\bnp\.load\([^)]*allow_pickle\s*=\s*True": "numpy unpickling",
}


def _violations(text: str, name: str) -> list[str]:
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for pattern, why in RULES.items():
            if re.search(pattern, line):
                found.append(f"{name}:{number}: {why}: {line.strip()}")
    return found


def test_the_source_tree_never_unpickles_and_needs_no_remote_code():
    found = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            found += _violations(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert not found, "\n".join(found)


def test_the_scan_catches_what_it_forbids():
    bad = "\n".join(
        [
            "x = pickle.loads(blob)",
            "state = torch.load(path)",
            "state = torch.load(path, weights_only=False)",
            "m = AutoModel.from_pretrained(p, trust_remote_code=True)",
        ]
    )
    assert len(_violations(bad, "bad.py")) == 4
    assert not _violations("state = torch.load(path, map_location='cpu', weights_only=True)", "ok.py")
