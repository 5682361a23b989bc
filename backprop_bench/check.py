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
significant.

A reference does not take out everything: torch's processes ran 8-64-64-1 at 1.6-2x
their usual time in 2 of 8 back-to-back runs here while the matmul calibration of the
same runs held still (benchmarks/drift_check.py). So a change must also stand out from
how far this benchmark's normalized median moves from run to run on its own: SPREAD_Z
times that spread, estimated from the machine's latest saved runs as `history` estimates
it (history.spread: robust to a real step). Five, not the three a normal distribution
would suggest, because run-to-run times have heavy tails: in those 8 runs single runs
of unchanged code moved 8% (NumPy, spread 2.4%) and 28% (JAX, spread 5.9%), 3.3 and 4.7
spreads; and at least MIN_RUNS runs, because the spread of 4 runs (3 differences) came
out small by chance. Where the spread is unknown or not exceeded, or the reference
itself moved by more than the threshold, a change is `undecided`: only `ab`, which
times both sides interleaved in fresh processes, can tell code from machine.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from backprop_bench import history
from backprop_bench.compare import calibration_rows, setup_diff
from backprop_bench.errors import UserError

NORMALIZE = ("numpy", "matmul")         # compare's and check's: relative to the same run's NumPy backend or matmul
CHECK_BY = ("reference", *NORMALIZE, "none")  # check's; reference: history's rule, the default
MIN_RUNS = 6      # saved runs of a benchmark on a machine before its run-to-run spread is taken as known
SPREAD_Z = 5.0    # a change must be this many run-to-run standard deviations (of a two-run ratio) to count
SPREAD_RUNS = 30  # the latest saved runs of a machine the spread is estimated from (recent, and quick to read)


def _timings(frame: pd.DataFrame, run: str, normalize: str | None, references: pd.Series | None = None
             ) -> pd.DataFrame:
    """One run's rows by benchmark, `data` (the rounds) and `median` divided by the reference `normalize` names;
    under "reference", by `references` (by benchmark; NaN where the two runs compared do not both have one)."""
    rows = frame[frame["run"] == run].copy()
    if rows["data"].isna().any():
        raise UserError(f"run {run} has no raw round timings; save runs with --benchmark-save-data")
    rows["data"] = rows["data"].map(np.asarray)
    if normalize is None or normalize == "none":
        return rows.set_index("benchmark")
    if normalize == "reference":  # the others keep their raw times in both runs (drift unknown)
        reference = rows["benchmark"].map(references).fillna(1.0)
    elif normalize == "matmul":
        calibration = calibration_rows(rows)
        if calibration.empty:
            raise UserError(f"run {run} has no matmul calibration to normalize by")
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


def reference_times(frame: pd.DataFrame, run: str) -> pd.Series:
    """Each benchmark's reference time in `run` (history.reference), by benchmark (NaN where the run has none)."""
    rows = frame[frame["run"] == run]
    times = history.reference(rows).set_axis(rows["benchmark"])
    return times[~times.index.duplicated()]


def run_to_run(frames: list[pd.DataFrame], machine_ids: list[str]) -> pd.Series:
    """Per benchmark, the standard deviation of log(current / baseline) between two runs of unchanged code: √2
    times the spread of one run's log time over its reference (history.series) across every saved run of each
    machine, the larger where two machines are compared; NaN with fewer than MIN_RUNS runs of it on a machine."""
    # The runs checked are in `frames` twice where they are among the latest, under run ids that may differ
    # (each frame names its runs from its own results folder): one file is one run, counted once.
    saved = pd.concat(frames, ignore_index=True)
    saved = saved[~saved.assign(file=saved["path"].map(os.path.realpath)).duplicated(["file", "benchmark"])]
    spreads = []
    for machine_id in dict.fromkeys(machine_ids):
        logs = history.series(saved, machine_id).assign(log=lambda rows: np.log(rows["relative"]))
        by_benchmark = logs.groupby("benchmark")["log"]
        spread = by_benchmark.agg(lambda values: history.spread(values.to_numpy()))
        spreads.append(spread.where(by_benchmark.size() >= MIN_RUNS) * np.sqrt(2))
    return pd.concat(spreads, axis=1).max(axis=1, skipna=False) if spreads else pd.Series(dtype=float)


def regressions(frame: pd.DataFrame, baseline: str, current: str, threshold: float = 0.05, alpha: float = 0.01,
          normalize: str | None = "reference", spread: pd.Series | None = None) -> pd.DataFrame:
    """One row per benchmark in both runs: medians, ratio, p-value, how far its reference moved, its run-to-run
    spread, and verdict.

    Verdicts: regression or improvement past the threshold and significant; under the
    reference rule, also past SPREAD_Z times the benchmark's run-to-run `spread` (from
    run_to_run), and `undecided` where that spread is unknown or the reference moved by
    more than the threshold (only `ab` can decide); same otherwise.
    """
    from scipy.stats import mannwhitneyu

    machines = {run: frame.loc[frame["run"] == run, "machine"].iloc[0] for run in (baseline, current)}
    if normalize in (None, "none") and machines[baseline] != machines[current]:
        raise UserError(
            f"runs come from different machines ({machines[baseline]} vs {machines[current]}); "
            f"compare times relative to the same run with --normalize {'|'.join(CHECK_BY[:-1])}"
        )
    references = {run: reference_times(frame, run) for run in (baseline, current)}
    drift = references[current] / references[baseline]  # how far each benchmark's reference moved (NaN: unknown)
    referenced = set(drift.index[drift.notna()])
    old, new = (_timings(frame, run, normalize, references[run].where(drift.notna())) for run in (baseline, current))
    unreferenced = [name for name in new.index if name in old.index and name not in referenced]
    if normalize == "reference" and machines[baseline] != machines[current] and unreferenced:
        raise UserError(
            f"runs come from different machines ({machines[baseline]} vs {machines[current]}), and "
            f"{len(unreferenced)} benchmark(s) have no reference in both (a C loop or matmul calibration timed in "
            f"the same run); compare times relative to the same run's NumPy backend with --normalize numpy"
        )
    moved = (abs(np.log(drift)) > np.log1p(threshold)).reindex(new.index, fill_value=False)
    shared = [name for name in new.index if name in old.index]
    if not shared:
        raise UserError(f"runs {baseline} and {current} share no benchmark")
    rows = []
    for name in shared:
        before, after = old.at[name, "data"], new.at[name, "data"]
        ratio = new.at[name, "median"] / old.at[name, "median"]
        p = mannwhitneyu(before, after, alternative="two-sided").pvalue if min(len(before), len(after)) > 1 else 1.0
        verdict = "same"
        if p < alpha and ratio > 1 + threshold:
            verdict = "regression"
        elif p < alpha and ratio < 1 / (1 + threshold):
            verdict = "improvement"
        sd = np.nan if spread is None else spread.get(name, np.nan)
        if verdict != "same" and normalize == "reference":
            if moved[name] or np.isnan(sd) or abs(np.log(ratio)) <= SPREAD_Z * sd:
                verdict = "undecided"  # the machine moved, or this benchmark moves as far on its own
        rows.append({"benchmark": name, "baseline": old.at[name, "median"], "current": new.at[name, "median"],
                     "ratio": ratio, "p_value": p, "machine": drift.get(name, np.nan), "spread": sd,
                     "verdict": verdict})
    return pd.DataFrame(rows)
