"""`backprop-bench noise`: what `ab` can see on this machine, at this budget and threshold.

An A/A comparison of the working tree against itself, made exactly as `ab` makes one
(same workers, blocks, stopping rule and budget), so that every spread it finds is the
machine's and the method's, not the code's. Per benchmark it reports the spread between
processes, the noise of one pair, the standard error of the ratio, and the smallest
slowdown `ab` would call a regression 80% of the time at that spread (the minimal
detectable effect): pick `--threshold` and `--budget` from it.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

from backprop_bench import ab
from backprop_bench.formatting import percent_text
from backprop_bench.store import records

POWER = 0.8


def spreads(row: dict) -> dict:
    """A benchmark's noise, from its pairs: between processes and within a block, as log-ratios."""
    blocks, log_ratios = np.asarray(row["pair_blocks"]), np.asarray(row["log_ratios"])
    within = [np.std(log_ratios[blocks == b], ddof=1) for b in np.unique(blocks) if (blocks == b).sum() > 1]
    return {"between_blocks": float(np.std(ab.block_medians(list(zip(blocks, log_ratios))), ddof=1)),
            "within_block": float(np.mean(within)) if within else math.nan}


def measure(budget: float | None, threshold: float, only: list[str], device: str, processes: int,
            stream=sys.stderr) -> dict:
    """The A/A record of the working tree, each benchmark with its spreads and its smallest flagged change."""
    found = ab.compare_sides(None, None, threshold=threshold, only=only, budget=budget, device=device,
                             processes=processes, stream=stream)
    for row in found["benchmarks"]:
        row.update(spreads(row), smallest_flagged=ab.smallest_flagged(row["se"], row["blocks"], threshold, POWER))
    return {**found, "backprop_bench_noise": 1, "power": POWER}


def save(record: dict, results: Path) -> Path:
    """Save as <results>/noise/NNNN_<commit or working-tree>.json, numbered, never replacing one."""
    return records.save(record, results / records.NOISE, record["candidate"]["label"])


def table(record: dict):
    """Per benchmark, for people: the A/A ratio, the spreads and the smallest change `ab` would flag."""
    import pandas as pd

    rows = record["benchmarks"]
    return pd.DataFrame({
        "benchmark": [r["name"] for r in rows],
        "A/A ratio": [f"{r['ratio']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]" for r in rows],
        "pairs": [r["pairs"] for r in rows],
        "between processes": [percent_text(r["between_blocks"]) for r in rows],
        "one pair": [percent_text(r["within_block"]) for r in rows],
        "std error": [percent_text(r["se"]) for r in rows],
        "smallest flagged": [percent_text(r["smallest_flagged"]) for r in rows],
    })


COLUMNS = f"""\
columns: A/A ratio: the working tree against itself with its 95% interval; 1 should lie inside 95% of the time.
  between processes: standard deviation of the blocks' median log-ratios (each block a process a side).
  one pair: standard deviation of one pair's log-ratio within a block (the machine's noise at one turn).
  std error: of the ratio's logarithm over the blocks, at this budget.
  smallest flagged: the smallest slowdown `ab` calls a regression {POWER:.0%} of the time at this spread,
    budget and threshold; more budget or --processes lowers it (about as 1 / sqrt(pairs) while pairs
    dominate, as 1 / sqrt(blocks) while processes do)."""


def summary(record: dict) -> str:
    rows = record["benchmarks"]
    outside = sum(r["ci_low"] > 1 or r["ci_high"] < 1 for r in rows)
    flagged = [r["smallest_flagged"] for r in rows if math.isfinite(r["smallest_flagged"])]
    worst = (f"; the smallest flagged change is {percent_text(min(flagged))} to {percent_text(max(flagged))}"
             if flagged else "")
    return (f"{outside} of {len(rows)} A/A intervals exclude 1 (about 1 in 20 is expected by chance){worst} "
            f"at threshold {record['threshold']:.0%}")
