"""The MUVCOG claims over training seeds: one verdict per claim from every seed's run of ``muvcog_claims``.

Each run of ``benchmarks.muvcog_claims --seed S`` draws its own store, splits, initialisations and batches, and
gives every claim a paired interval over that run's test examples. Whether a claim holds for the method, not for one
draw, is a question about the spread between seeds. This reads the result files of one setting (the same settings
but the seed and name), and gives each claim the seeds' mean difference with its Student-t 95 % interval (one value
per seed, ``n - 1`` degrees of freedom) and the verdict of that interval, beside the per-seed figures::

    python -m benchmarks.muvcog_claims_seeds                    # muvcog_claims_mix_seed*.json -> muvcog_claims_mix_seeds

Nothing is trained here; the runs are ``benchmarks.muvcog_claims`` (11 to 17 min each on one core at 8,000
sessions).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._common import RESULTS_DIR, interval, write_result

VARYING = ("seed", "name")
"""Settings that differ between the seeds' runs; every other one must be the same."""


def gather(files: list[Path]) -> tuple[dict, dict, list[int]]:
    """``{claim: {seed: difference}}``, the shared settings and the seeds, from ``muvcog_claims`` result files."""
    if len(files) < 2:
        raise SystemExit(f"{len(files)} result file(s): a spread between seeds needs at least two")
    by_claim: dict[str, dict[int, float]] = {}
    shared, seeds = None, []
    for path in files:
        figures = json.loads(path.read_text())["figures"]
        settings = {k: v for k, v in figures["settings"].items() if k not in VARYING}
        if shared is None:
            shared = settings
        elif settings != shared:
            raise SystemExit(f"{path.name}: settings {settings} differ from the first file's {shared}")
        seed = figures["settings"]["seed"]
        if seed in seeds:
            raise SystemExit(f"{path.name}: seed {seed} twice")
        seeds.append(seed)
        for claim in figures["claims"]:
            by_claim.setdefault(claim["claim"], {})[seed] = claim["difference"]
    return by_claim, shared, sorted(seeds)


def summarize(by_claim: dict[str, dict[int, float]], seeds: list[int]) -> dict:
    out = {}
    for claim, per_seed in by_claim.items():
        values = [per_seed[s] for s in seeds if s in per_seed]
        iv = interval(values, method="t")
        out[claim] = {
            "mean": round(iv.value, 4),
            "low": round(iv.low, 4),
            "high": round(iv.high, 4),
            "seeds": len(values),
            "verdict": iv.verdict,
            "per_seed": {str(s): per_seed[s] for s in seeds if s in per_seed},
        }
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pattern", default="muvcog_claims_mix_seed[0-9]*.json", help="result files (glob)")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    p.add_argument("--name", default="muvcog_claims_mix_seeds")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    files = sorted(args.results_dir.glob(args.pattern))
    by_claim, settings, seeds = gather(files)
    claims = summarize(by_claim, seeds)
    for claim, c in claims.items():
        print(f"{c['verdict']:>12}  {c['mean']:+.4f} [{c['low']:+.4f}, {c['high']:+.4f}]  {claim}")
    figures = {"seeds": seeds, "files": [f.name for f in files], "settings": settings, "claims": claims}
    data = (
        f"the synthetic store of each seed ({settings['num_sessions']} sessions, seeds {', '.join(map(str, seeds))});"
        " per seed, the paired differences of benchmarks.muvcog_claims over that seed's test examples"
    )
    if not args.no_write:
        print(write_result(args.name, figures, data, args.results_dir))
    return figures


if __name__ == "__main__":
    main()
