"""`backprop-bench history`: where each benchmark's time stepped up or down across this machine's saved runs.

A saved run's times move with the machine (identical code's medians moved up to 2.4x
between runs an hour apart here), so each time is first divided by a reference timed
in the same run, which moves with the machine too (`reference`). The change points of
each benchmark's series of those ratios are then found in two stages:

1. Proposed by PELT (Killick et al., 2012; the `ruptures` library) on the log-ratios,
   with a least-squares cost and a BIC-like penalty scaled by the series' own noise,
   estimated robustly from successive differences; no segment shorter than MIN_SEGMENT
   runs, so one disturbed run is never a change point.
2. Kept only where the two neighbouring segments differ by a Mann-Whitney U test
   (p < ALPHA, no assumption on the shape of the noise) and by more than the threshold;
   a rejected point merges its segments and the rest are tested again.
"""

from __future__ import annotations

import math
import shlex

import numpy as np
import pandas as pd

from backprop_bench import store
from backprop_bench.compare import calibration_rows, setup_diff
from backprop_bench.errors import UserError
from backprop_bench.formatting import seconds_text

MIN_SEGMENT = 5      # runs on each side of a change point
ALPHA = 0.01         # 5 runs against 5 reach p = 0.008 only when every run of one side is slower
THRESHOLD = 0.05     # the smallest step reported by default
PENALTY = 3.0        # times the noise variance times log(runs): PELT's cost of one more change point
C_LOOP = ("reference", "c-loop")  # (backend, variant) of the C loop


class HistoryError(UserError):
    """History cannot be read as asked; the message says why."""


def reference(rows: pd.DataFrame) -> pd.Series:
    """Each training benchmark's reference time in its own run, in seconds per epoch (NaN where the run has none).

    The notebook presets (the workloads the C loop runs) take the run's C loop on the
    same workload: the same arithmetic with no framework, as bound by one core's
    speed as the presets are. Every other workload takes the run's fastest matmul
    calibration: the larger workloads are bound by matrix products, and the calibration
    times the machine's rate for them. The C loop itself is read against the matmul.
    """
    is_loop = (rows["backend"] == C_LOOP[0]) & (rows.get("variant", "") == C_LOOP[1])
    loops = rows[is_loop].set_index(["run", "workload"])
    loop_s = loops["median"] / loops["epochs"]
    matmul_s = calibration_rows(rows).groupby("run")["median"].min()
    by_loop = pd.Series([loop_s.get((run, workload), np.nan) for run, workload in zip(rows["run"], rows["workload"])],
                        index=rows.index)
    by_matmul = rows["run"].map(matmul_s)
    return by_loop.where(~is_loop & by_loop.notna(), by_matmul)


def series(frame: pd.DataFrame, machine_id: str, only: list[str] = ()) -> pd.DataFrame:
    """One machine's training benchmarks in time order: run, commit, datetime, benchmark, seconds per epoch and
    `relative`, that time over its reference (see `reference`)."""
    mine = frame[frame["machine_id"] == machine_id]
    rows = mine[mine["workload"].notna()].copy()
    if only:
        rows = rows[rows["benchmark"].map(lambda name: any(text in name for text in only))]
    rows["epoch_s"] = rows["median"] / rows["epochs"]
    rows["relative"] = rows["epoch_s"] / reference(mine).loc[rows.index]
    rows = rows[rows["relative"].notna() & (rows["relative"] > 0)]
    return rows.sort_values(["datetime", "run"])[["run", "commit", "datetime", "setup", "benchmark", "epoch_s",
                                                  "relative"]]


def spread(values: np.ndarray) -> float:
    """The spread of one value around its segment's level, robust to a step: MAD of successive differences / sqrt 2."""
    differences = np.diff(values)
    return 1.4826 * float(np.median(np.abs(differences - np.median(differences)))) / math.sqrt(2)


def change_points(values: np.ndarray, threshold: float, min_segment: int = MIN_SEGMENT) -> list[int]:
    """Indices where a new level starts in `values` (positive): proposed by PELT, kept where significant and
    past the threshold (see the module's docstring)."""
    import ruptures
    from scipy.stats import mannwhitneyu

    logs = np.log(np.asarray(values, dtype=float))
    if len(logs) < 2 * min_segment:
        return []
    sigma = max(spread(logs), 1e-3)  # timings are never truer than 0.1%
    proposed = ruptures.Pelt(model="l2", min_size=min_segment, jump=1).fit(logs.reshape(-1, 1)).predict(
        pen=PENALTY * sigma ** 2 * math.log(len(logs)))[:-1]
    points = list(proposed)
    while points:
        edges = [0, *points, len(logs)]
        rejected = {}  # point: its p-value, where it fails
        for i, point in enumerate(points):
            before, after = logs[edges[i]:point], logs[point:edges[i + 2]]
            p = mannwhitneyu(before, after, alternative="two-sided").pvalue
            if p >= ALPHA or abs(np.median(after) - np.median(before)) <= math.log1p(threshold):
                rejected[point] = p
        if not rejected:
            break
        points.remove(max(rejected, key=rejected.get))  # the weakest goes; its neighbours are tested anew
    return points


def find(rows: pd.DataFrame, threshold: float) -> list[dict]:
    """Every kept change point of every benchmark in `rows` (from `series`), oldest first within a benchmark."""
    found = []
    for benchmark, line in rows.groupby("benchmark", sort=True):
        line = line.reset_index(drop=True)
        points = change_points(line["relative"].to_numpy(), threshold)
        edges = [0, *points, len(line)]
        for i, point in enumerate(points):
            before, after = line.iloc[edges[i]:point], line.iloc[point:edges[i + 2]]
            last, first = before.iloc[-1], after.iloc[0]
            found.append({
                "benchmark": benchmark, "runs_before": len(before), "runs_after": len(after),
                "last_run_before": last["run"], "first_run_after": first["run"],
                "commit_before": last["commit"], "commit_after": first["commit"],
                "relative_before": float(before["relative"].median()),
                "relative_after": float(after["relative"].median()),
                "epoch_s_before": float(before["epoch_s"].median()), "epoch_s_after": float(after["epoch_s"].median()),
                "ratio": float(after["relative"].median() / before["relative"].median()),
                "latest": i == len(points) - 1,
                "setup_changes": setup_diff(last["setup"], first["setup"]),
            })
    return found


def bisect_command(point: dict) -> str:
    """The `bisect` to run between the two sides of a change point, or why there is none."""
    before, after = point["commit_before"], point["commit_after"]
    if not before or not after:
        return "(a run without a commit: no bisect)"
    if before == after:
        changes = ", ".join(point["setup_changes"]) or "nothing recorded"
        return f"(same commit {before[:9]}: the setup changed: {changes})"
    # Quoted for the shell: names and commits come from run files, which a colleague may have crafted.
    words = (shlex.quote(text) for text in (before[:9], after[:9], point["benchmark"]))
    return "backprop-bench bisect {} {} --only {}".format(*words)


def history(frame: pd.DataFrame, only: list[str], threshold: float,
            machine_id: str | None = None) -> tuple[pd.DataFrame, list[dict]]:
    """This machine's series and its change points; HistoryError where there is too little to read."""
    machine_id = machine_id or store.machine_id(store.this_machine())
    mine = frame[frame["machine_id"] == machine_id] if not frame.empty else frame
    if mine.empty:
        raise HistoryError("no saved runs of this machine under results/; save some with: make bench")
    rows = series(frame, machine_id, only)
    if rows.empty:
        raise HistoryError(f"no training benchmark matches {', '.join(only)}" if only else
                           "the saved runs hold no training benchmark with a reference (C loop or matmul calibration)")
    runs = rows["run"].nunique()
    if runs < 2 * MIN_SEGMENT:
        raise HistoryError(f"history needs at least {2 * MIN_SEGMENT} saved runs of this machine (a change must hold "
                           f"{MIN_SEGMENT} runs on each side); there are {runs}")
    return rows, find(rows, threshold)


def table(points: list[dict]) -> str:
    """The change points as text, one block per point."""
    if not points:
        return "no change point: every benchmark held its level across the saved runs\n"
    lines = []
    for point in points:
        word = "slower" if point["ratio"] > 1 else "faster"
        lines += [f"{point['benchmark']}: {point['ratio']:.3f}x ({word}) from run {point['first_run_after']}"
                  + (" (latest level)" if point["latest"] else ""),
                  f"  before: {point['runs_before']} runs to {point['last_run_before']} "
                  f"(commit {point['commit_before'][:9] or '?'}), {seconds_text(point['epoch_s_before'])} per epoch, "
                  f"{point['relative_before']:.3g}x its reference",
                  f"  after:  {point['runs_after']} runs from {point['first_run_after']} "
                  f"(commit {point['commit_after'][:9] or '?'}), {seconds_text(point['epoch_s_after'])} per epoch, "
                  f"{point['relative_after']:.3g}x its reference",
                  f"  next:   {bisect_command(point)}"]
    return "\n".join(lines) + "\n"


def regressed(points: list[dict]) -> list[dict]:
    """The change points that start a benchmark's latest level and made it slower."""
    return [point for point in points if point["latest"] and point["ratio"] > 1]
