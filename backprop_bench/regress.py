"""`backprop-bench check`: did a saved run get slower than its baseline? A median past the threshold, and a
significant difference, each time read against a reference timed in its own run.

The rounds of one run are not independent samples of "this code on this machine": the
machine's speed drifts between runs (three back-to-back runs of unchanged code took
0.94, 1.98 and 1.23 ms per epoch), and a test on two runs' rounds sees the drift as a
change. So, by default, each time is first divided by its reference in the same run,
the rule `history` uses (history.reference: the C loop for the presets, the fastest
matmul calibration otherwise), which drifts with the machine. Each benchmark's
normalized rounds in the two runs are then compared with a two-sided Mann-Whitney U
test (no assumption of normal timings, robust to outliers): a benchmark changed only
when its median moved by more than the threshold AND the test finds the difference
significant. Where the reference itself moved by more than the threshold, the
normalization is trusted no further: such a benchmark is `undecided`, and only `ab`,
which times both sides interleaved, can tell code from machine.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backprop_bench import history
from backprop_bench.report import calibration_rows, setup_diff

NORMALIZE = ("numpy", "matmul")         # compare's and check's: relative to the same run's NumPy backend or matmul
CHECK_BY = ("reference", *NORMALIZE, "none")  # check's; reference: history's rule, the default


def _timings(frame: pd.DataFrame, run: str, normalize: str | None) -> pd.DataFrame:
    rows = frame[frame["run"] == run].copy()
    if rows["data"].isna().any():
        raise ValueError(f"run {run} has no raw round timings; save runs with --benchmark-save-data")
    rows["data"] = rows["data"].map(np.asarray)
    if normalize is None or normalize == "none":
        return rows.set_index("benchmark")
    if normalize == "reference":  # where the run has no reference for a benchmark, its raw time (drift unknown)
        reference = history.reference(rows).fillna(1.0)
    elif normalize == "matmul":
        calibration = calibration_rows(rows)
        if calibration.empty:
            raise ValueError(f"run {run} has no matmul calibration to normalize by")
        # Seconds per GFLOP at the machine's best rate: right whichever sizes a run calibrated at.
        reference = pd.Series(1 / calibration["gflops"].max(), index=rows.index)
    else:
        numpy_median = rows[rows.get("backend") == "numpy"].set_index("workload")["median"]
        reference = rows["workload"].map(numpy_median)
    rows = rows[reference.notna()].copy()
    rows["data"] = [d / r for d, r in zip(rows["data"], reference[reference.notna()])]
    rows["median"] = rows["median"] / reference[reference.notna()]
    return rows.set_index("benchmark")


def setup_changes(frame: pd.DataFrame, baseline: str, current: str) -> list[str]:
    """What differs between two runs' setups, e.g. 'torch 2.12.0 -> 2.13.0': the likely cause of a change."""
    return setup_diff(*(frame.loc[frame["run"] == run, "setup"].iloc[0] for run in (baseline, current)))


def machine_drift(frame: pd.DataFrame, baseline: str, current: str) -> float | None:
    """How far the machine itself moved between two runs: current / baseline of their fastest matmul calibration
    medians (above 1: the machine was slower for the current run), None unless both runs have one."""
    medians = [calibration_rows(frame[frame["run"] == run])["median"].min() for run in (baseline, current)]
    return None if any(pd.isna(medians)) else medians[1] / medians[0]


def unshared(frame: pd.DataFrame, baseline: str, current: str) -> dict[str, list[str]]:
    """Benchmarks that only one of the two runs holds, by side: what a comparison of the two leaves out."""
    names = {run: set(frame.loc[frame["run"] == run, "benchmark"]) for run in (baseline, current)}
    return {"baseline": sorted(names[baseline] - names[current]), "current": sorted(names[current] - names[baseline])}


def reference_drift(frame: pd.DataFrame, baseline: str, current: str) -> pd.Series:
    """Per benchmark, how far its reference (history.reference) moved: current / baseline (NaN where unknown)."""
    times = {}
    for run in (baseline, current):
        rows = frame[frame["run"] == run]
        times[run] = history.reference(rows).set_axis(rows["benchmark"])
        times[run] = times[run][~times[run].index.duplicated()]
    return times[current] / times[baseline]


def check(frame: pd.DataFrame, baseline: str, current: str, threshold: float = 0.05, alpha: float = 0.01,
          normalize: str | None = "reference") -> pd.DataFrame:
    """One row per benchmark in both runs: medians, ratio, p-value, how far its reference moved, and verdict.

    Verdicts: REGRESSION or improvement past the threshold and significant; undecided
    where that would be the verdict but the reference moved by more than the threshold
    (only `ab` can decide); same otherwise.
    """
    from scipy.stats import mannwhitneyu

    machines = {run: frame.loc[frame["run"] == run, "machine"].iloc[0] for run in (baseline, current)}
    if normalize in (None, "none") and machines[baseline] != machines[current]:
        raise ValueError(
            f"runs come from different machines ({machines[baseline]} vs {machines[current]}); "
            f"compare times relative to the same run with --normalize {'|'.join(CHECK_BY[:-1])}"
        )
    old, new = _timings(frame, baseline, normalize), _timings(frame, current, normalize)
    drift = reference_drift(frame, baseline, current)
    unreferenced = [name for name in new.index if name in old.index and pd.isna(drift.get(name, np.nan))]
    if normalize == "reference" and machines[baseline] != machines[current] and unreferenced:
        raise ValueError(
            f"runs come from different machines ({machines[baseline]} vs {machines[current]}), and "
            f"{len(unreferenced)} benchmark(s) have no reference in both (a C loop or matmul calibration timed in "
            f"the same run); compare times relative to the same run's NumPy backend with --normalize numpy"
        )
    moved = (abs(np.log(drift)) > np.log1p(threshold)).reindex(new.index, fill_value=False)
    shared = [name for name in new.index if name in old.index]
    if not shared:
        raise ValueError(f"runs {baseline} and {current} share no benchmark")
    rows = []
    for name in shared:
        before, after = old.at[name, "data"], new.at[name, "data"]
        ratio = new.at[name, "median"] / old.at[name, "median"]
        p = mannwhitneyu(before, after, alternative="two-sided").pvalue if min(len(before), len(after)) > 1 else 1.0
        verdict = "same"
        if p < alpha and ratio > 1 + threshold:
            verdict = "REGRESSION"
        elif p < alpha and ratio < 1 / (1 + threshold):
            verdict = "improvement"
        if verdict != "same" and moved[name] and normalize == "reference":
            verdict = "undecided"
        rows.append({"benchmark": name, "baseline": old.at[name, "median"], "current": new.at[name, "median"],
                     "ratio": ratio, "p_value": p, "machine": drift.get(name, np.nan), "verdict": verdict})
    return pd.DataFrame(rows)
