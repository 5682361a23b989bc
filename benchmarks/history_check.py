"""Does `history` find a planted step, and only it? Synthetic histories through a drifting machine, counted.

Each history is 40 runs of 6 benchmarks and their references. Every run's times,
references included, are multiplied by a machine factor drawn between 0.6 and 1.6; every
median (the reference's too) carries its own log-normal noise; one benchmark steps up 15%
from run 25 on. `history.change_points` runs on each benchmark's time over its reference,
as `backprop-bench history` does. Counted per noise level: histories where the step was
found exactly at run 25 and nothing else anywhere, found within one run, missed, and
histories with a change point that was never planted. Synthetic, so no timing: this
checks the method, and the records of real runs are `history`'s own output.

Run as `python -m benchmarks.history_check [--histories 200]`; the counts are printed as
a markdown table and saved in `results/history-check/<date>.json`.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from backprop_bench import history
from benchmarks import dated

RUNS, STEP_AT, STEP, BENCHMARKS = 40, 25, 1.15, 6


def one_history(rng: np.random.Generator, noise: float) -> list[list[int]]:
    """The change points found in each benchmark's series; benchmark 0 holds the step."""
    factor = rng.uniform(0.6, 1.6, RUNS)
    found = []
    for benchmark in range(BENCHMARKS):
        level = np.where((benchmark == 0) & (np.arange(1, RUNS + 1) >= STEP_AT), STEP, 1.0)
        seconds = level * factor * np.exp(rng.normal(0, noise, RUNS))
        reference = factor * np.exp(rng.normal(0, noise, RUNS))
        found.append(history.change_points(seconds / reference, history.THRESHOLD))
    return found


def counts(histories: int, noise: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    exact = near = missed = spurious = 0
    for _ in range(histories):
        stepped, *others = one_history(rng, noise)
        extra = any(others) or len(stepped) > 1
        exact += stepped == [STEP_AT - 1] and not extra
        near += any(abs(point - (STEP_AT - 1)) <= 1 for point in stepped)
        missed += not stepped
        spurious += extra or (bool(stepped) and all(abs(point - (STEP_AT - 1)) > 1 for point in stepped))
    return {"noise": noise, "histories": histories, "exactly the step": exact, "step within a run": near,
            "step missed": missed, "a change point never planted": spurious}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--histories", type=int, default=200, help="histories per noise level (default 200)")
    args = parser.parse_args()
    rows = [counts(args.histories, noise, seed) for seed, noise in enumerate((0.01, 0.02, 0.03, 0.05))]
    path = dated("history-check").with_suffix(".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1))
    print(f"{RUNS} runs, machine factor 0.6-1.6, a {STEP - 1:.0%} step at run {STEP_AT} on one of {BENCHMARKS} "
          f"benchmarks, threshold {history.THRESHOLD:.0%}:\n")
    print("| noise per median | " + " | ".join(list(rows[0])[1:]) + " |\n|" + "---|" * len(rows[0]))
    for row in rows:
        print(f"| {row['noise']:.0%} | " + " | ".join(str(value) for value in list(row.values())[1:]) + " |")


if __name__ == "__main__":
    main()
