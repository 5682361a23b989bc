"""Saved gate checks, re-read: what `ab`'s interval today, and the one before it, make of the same pairs.

`benchmarks/gate_check.py` keeps every comparison's record (each benchmark's paired
log-ratios and their blocks) under `results/gate/<date>/aa/ab/` and `.../planted/ab/`.
This script recomputes every interval and verdict from those pairs, with `ab.interval`
and with the t interval over the blocks' medians that `ab` used until commit 23e9951,
and counts, per method: A/A intervals excluding 1 and false alarms (threshold 5%), and
planted 4-7% slowdowns flagged alone (threshold 3%). It times nothing, so it can run
alongside anything; the counts are only as new as the records, and a method chosen on
these records must be checked on new ones (run gate_check again).

Run as `python -m benchmarks.gate_records results/gate/*/`. The pairs of the gate checks
behind docs/regressions.md are packed in docs/data/gate-pairs.json.gz (each benchmark's
blocks and log-ratios, rounded to 1e-7, nothing else), so a fresh clone can recount them:
`python -m benchmarks.gate_records docs/data/gate-pairs.json.gz`; `--pack FILE` writes
such a file from gate_check folders.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
from pathlib import Path

import numpy as np

from backprop_bench import ab
from benchmarks.gate_check import PLANTED_BENCHMARK


def block_median_interval(pairs: list[ab.Pair]) -> tuple[float, float, float]:
    """`ab`'s interval until commit 23e9951: a t interval over the blocks' median log-ratios."""
    from scipy.stats import t

    medians = ab.block_medians(pairs)
    center, se = float(np.mean(medians)), float(np.std(medians, ddof=1) / math.sqrt(len(medians)))
    half = t.ppf((1 + ab.CONFIDENCE) / 2, len(medians) - 1) * se
    return math.exp(center), math.exp(center - half), math.exp(center + half)


METHODS = {"ab.interval (Huber, jackknife over blocks)": ab.interval,
           "blocks' medians, t interval (until 23e9951)": block_median_interval}


def pairs_of(sources: list[Path]) -> dict[str, list[dict[str, list]]]:
    """{"aa": [...], "planted": [...]}: each saved comparison as {benchmark: [blocks, log-ratios]}, from gate_check
    folders or a packed file."""
    found: dict[str, list] = {"aa": [], "planted": []}
    for source in sources:
        if source.is_file():
            for kind, comparisons in json.loads(gzip.decompress(source.read_bytes())).items():
                found[kind] += comparisons
            continue
        for kind in found:
            for path in sorted(source.glob(f"{kind}/ab/*.json")):
                found[kind].append({row["name"]: [row["pair_blocks"], [round(x, 7) for x in row["log_ratios"]]]
                                    for row in json.loads(path.read_text())["benchmarks"]})
    return found


def verdicts(comparison: dict[str, list], method, threshold: float) -> dict[str, tuple[str, bool]]:
    """Each benchmark of a comparison: (verdict, whether the interval excludes 1) under `method`."""
    found = {}
    for name, (blocks, log_ratios) in comparison.items():
        ratio, low, high = method(list(zip(blocks, log_ratios)))
        found[name] = ab.verdict(ratio, low, high, threshold), low > 1 or high < 1
    return found


def counts(comparisons: dict[str, list], method) -> dict:
    aa = [verdicts(comparison, method, 0.05) for comparison in comparisons["aa"]]
    planted = [verdicts(comparison, method, 0.03) for comparison in comparisons["planted"]]
    alarms = ("regression", "improvement")
    return {
        "A/A comparisons": len(aa),
        "A/A intervals excluding 1": f"{sum(x for found in aa for _, x in found.values())} of "
                                     f"{sum(len(found) for found in aa)}",
        "A/A regression/improvement": sum(v in alarms for found in aa for v, _ in found.values()),
        "planted comparisons": len(planted),
        "planted flagged alone": sum(found[PLANTED_BENCHMARK][0] == "regression"
                                     and not any(v in alarms for name, (v, _) in found.items()
                                                 if name != PLANTED_BENCHMARK) for found in planted),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="+", type=Path,
                        help="gate_check folders (results/gate/<date>/) or packed files (.json.gz)")
    parser.add_argument("--pack", type=Path, metavar="FILE", help="write the sources' pairs to FILE instead")
    args = parser.parse_args()
    comparisons = pairs_of(args.sources)
    if args.pack:
        args.pack.write_bytes(gzip.compress(json.dumps(comparisons, separators=(",", ":")).encode(), mtime=0))
        print(f"wrote {args.pack}: {len(comparisons['aa'])} A/A and {len(comparisons['planted'])} planted comparisons")
        return
    rows = {name: counts(comparisons, method) for name, method in METHODS.items()}
    columns = list(next(iter(rows.values())))
    print("| interval | " + " | ".join(columns) + " |\n|---|" + "---|" * len(columns))
    for name, found in rows.items():
        print(f"| {name} | " + " | ".join(str(found[column]) for column in columns) + " |")


if __name__ == "__main__":
    main()
