"""Saved gate checks, re-read: what `ab`'s interval today, and the one before it, make of the same pairs.

`benchmarks/gate_check.py` keeps every comparison's record (each benchmark's paired
log-ratios and their blocks) under `results/gate/<date>/aa/ab/` and `.../planted/ab/`.
This script recomputes every interval and verdict from those pairs, with `ab.interval`
and with the t interval over the blocks' medians that `ab` used until commit 23e9951,
and counts, per method: A/A intervals excluding 1 and false alarms (threshold 5%), and
planted 4-7% slowdowns flagged alone (threshold 3%). It times nothing, so it can run
alongside anything; the counts are only as new as the records, and a method chosen on
these records must be checked on new ones (run gate_check again).

Run as `python -m benchmarks.gate_records results/gate/*/`.
"""

from __future__ import annotations

import argparse
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


def verdicts(path: Path, method, threshold: float) -> dict[str, tuple[str, bool]]:
    """Each benchmark of a saved record: (verdict, whether the interval excludes 1) under `method`."""
    found = {}
    for row in json.loads(path.read_text())["benchmarks"]:
        ratio, low, high = method(list(zip(row["pair_blocks"], row["log_ratios"])))
        found[row["name"]] = ab.verdict(ratio, low, high, threshold), low > 1 or high < 1
    return found


def counts(folders: list[Path], method) -> dict:
    aa = [verdicts(path, method, 0.05) for folder in folders for path in sorted(folder.glob("aa/ab/*.json"))]
    planted = [verdicts(path, method, 0.03) for folder in folders for path in sorted(folder.glob("planted/ab/*.json"))]
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
    parser.add_argument("folders", nargs="+", type=Path, help="gate_check folders (results/gate/<date>/)")
    args = parser.parse_args()
    rows = {name: counts(args.folders, method) for name, method in METHODS.items()}
    columns = list(next(iter(rows.values())))
    print("| interval | " + " | ".join(columns) + " |\n|---|" + "---|" * len(columns))
    for name, found in rows.items():
        print(f"| {name} | " + " | ".join(str(found[column]) for column in columns) + " |")


if __name__ == "__main__":
    main()
