"""`backprop-bench compare`: one run's benchmarks side by side, and the maths of it.

Per workload, every backend and variant: time per epoch and its spread, speed against
the same run's NumPy backend, what autograd costs against the hand-written twin, shares
of the machine's matmul rate, compile and first-call time, peak memory. Runs are read
by store/suite_runs.py; the shared text formatting is formatting.py's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backprop_bench.errors import UserError
from backprop_bench.formatting import markdown, seconds_text, significant
from backprop_bench.store.suite_runs import IDENTITY
from backprop_bench.timing import BenchmarkId


def setup_diff(old: dict | None, new: dict | None) -> list[str]:
    """What differs between two runs' setups, e.g. 'torch 2.12.0 -> 2.13.0': the likely cause of a change."""
    old, new = old or {}, new or {}
    return [f"{key} {old.get(key, '(unset)')} -> {new.get(key, '(unset)')}"
            for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]


def calibration_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The matmul calibration benchmarks among `rows`."""
    if "calibration" not in rows:
        return rows.iloc[0:0]
    return rows[rows["calibration"].fillna(False).astype(bool)]


COMPARISON = ["workload", "architecture", "name", "time_per_epoch_s", "q1_s", "q3_s", "vs_numpy", "gflops",
              "of_machine", "of_own_matmul", "first_call_overhead_s", "overhead_in_noise", "compile_s", "compiles_in",
              "peak_memory_bytes", "working_set_bytes", "epoch_flops", "relative", "reference", "autograd_cost",
              "autograd_memory", "case", "dtype"]
OPTIONAL = ("gflops", "first_call_s", "first_setup_s", "setup_s", "compiles_in", "peak_memory_bytes",
            "working_set_bytes", "epoch_flops", "reference", "handwritten")


def workload_order(table: pd.DataFrame) -> list[str]:
    """Workloads from the least to the most work per epoch (FLOPs), ties by name."""
    work = table.groupby("workload")["epoch_flops"].max().fillna(0)
    return sorted(work.index, key=lambda workload: (work[workload], workload))


def workload_heading(table: pd.DataFrame, workload: str) -> str:
    """The workload's name and what it is: 'mlp-256x64: 16-64-64-1 tanh bias float32, 256 samples, 200 epochs'."""
    architecture = table.loc[table["workload"] == workload, "architecture"].iloc[0]
    return workload if architecture == workload else f"{workload}: {architecture}"


def _first_call(bench: pd.DataFrame) -> pd.DataFrame:
    """Compile time where a variant compiles, and the rest of what its first call costs beyond a steady one.

    A backend that compiles on load (JAX) compiles in the first set-up: its compile time is
    that set-up minus a later one. torch.compile compiles in the first call, so its compile
    time is that call minus the median, and holds any other first-call cost too. Every other
    first call minus the median is first-call overhead (allocation, thread pools, caches);
    where the first call was no slower than the slowest timed round, it is within the noise.
    """
    overhead = bench["first_call_s"] - bench["median"]
    compiles_in = bench["compiles_in"]
    compile_s = (bench["first_setup_s"] - bench["setup_s"]).where(compiles_in == "load")
    return pd.DataFrame({
        "compile_s": compile_s.fillna(overhead.where(compiles_in == "run")).clip(lower=0),
        "first_call_overhead_s": overhead.where(compiles_in != "run").clip(lower=0),
        "overhead_in_noise": bench["first_call_s"] <= bench["max"],
    })


def comparison(frame: pd.DataFrame, run: str, normalize: str | None = None) -> pd.DataFrame:
    """One run's training benchmarks side by side: per workload (by size), every backend and variant.

    q1_s and q3_s are the 25th and 75th percentiles of the timed rounds, per epoch.

    `relative` is each time per epoch divided by the same run's NumPy backend's on the
    workload (normalize="numpy") or by its fastest matmul calibration ("matmul").
    """
    rows = frame[frame["run"] == run]
    matmul = calibration_rows(rows)
    bench = rows[rows["workload"].notna()].copy() if "workload" in rows else rows.iloc[0:0].copy()
    if bench.empty:  # calibrations only: nothing to compare
        return pd.DataFrame(columns=COMPARISON)
    for column in OPTIONAL:
        if column not in bench:
            bench[column] = np.nan
    bench["reference"] = bench["reference"].eq(True)  # saved by the references (C loop, notebook): no framework
    bench["time_per_epoch_s"] = bench["median"] / bench["epochs"]
    bench["q1_s"], bench["q3_s"] = bench["q1"] / bench["epochs"], bench["q3"] / bench["epochs"]  # the rounds' spread
    numpy_time = bench[bench["backend"] == "numpy"].set_index("workload")["time_per_epoch_s"]
    bench["vs_numpy"] = bench["workload"].map(numpy_time) / bench["time_per_epoch_s"]
    # Shares of a matmul rate only against a calibration of the same dtype: the calibration is
    # float32, and a float64 workload's rate is no fraction of it.
    best = matmul.groupby("dtype")["gflops"].max() if len(matmul) else pd.Series(dtype=float)
    # Each framework's best size counts: a GPU run calibrates at the CPU sweep's sizes and at the GPU's own.
    own = matmul.groupby(["backend", "device", "dtype"])["gflops"].max() if len(matmul) else pd.Series(dtype=float)
    bench["of_machine"] = bench["gflops"] / bench["dtype"].map(best)
    bench["of_own_matmul"] = [gflops / own.get(tuple(key), np.nan) for gflops, *key
                              in zip(bench["gflops"], bench["backend"], bench["device"], bench["dtype"])]
    bench = bench.assign(**dict(_first_call(bench).items()), **autograd_cost(bench))
    if normalize == "numpy":
        bench["relative"] = 1 / bench["vs_numpy"]
    elif normalize == "matmul":
        if matmul.empty:
            raise UserError(f"run {run} has no matmul calibration to normalize by")
        bench["relative"] = bench["time_per_epoch_s"] / matmul["median"].min()
    else:
        bench["relative"] = np.nan
    identities = [BenchmarkId(*values) for values in zip(*(bench[key] for key in IDENTITY))]
    bench["case"] = [identity.case for identity in identities]
    bench["name"] = [identity.label for identity in identities]
    bench["architecture"] = [group.removeprefix(f"{workload}: ")
                             for group, workload in zip(bench["group"], bench["workload"])]
    order = {workload: i for i, workload in enumerate(workload_order(bench))}
    bench = bench.sort_values(["time_per_epoch_s"]).sort_values("workload", key=lambda w: w.map(order), kind="stable")
    return bench[COMPARISON].reset_index(drop=True)


def autograd_cost(bench: pd.DataFrame) -> dict[str, pd.Series]:
    """What autograd costs, per autograd variant that has a hand-written twin (extra_info "handwritten": the
    same framework, workload, device and dtype, gradients by hand, everything else alike): its time per epoch
    over the twin's (`autograd_cost`), and its peak memory over the twin's (`autograd_memory`)."""
    key = ["workload", "backend", "variant", "device", "dtype"]
    twins = bench.set_index(key)[["time_per_epoch_s", "peak_memory_bytes"]]
    twins = twins[~twins.index.duplicated()]
    twin_keys = pd.MultiIndex.from_arrays([bench["workload"], bench["backend"], bench["handwritten"].where(
        bench["handwritten"].notna(), "-"), bench["device"], bench["dtype"]])
    twin = twins.reindex(twin_keys).set_axis(bench.index)
    return {"autograd_cost": bench["time_per_epoch_s"] / twin["time_per_epoch_s"],
            "autograd_memory": bench["peak_memory_bytes"] / twin["peak_memory_bytes"]}


COLUMNS = """\
columns: time/epoch: median time of one training epoch over the timed rounds (each a whole training).
  vs numpy: the NumPy backend's time / this one's, same run and workload (2.00x = twice as fast).
  autograd: what autograd costs: this variant's time / its framework's hand-written variant's (the same
    training with gradients written by hand: torch eager / torch handwritten, jax jit-loop / jax handwritten),
    same run, workload and device (1.50x = autograd takes 50% longer); autograd MB: the same for peak memory.
  GFLOP/s: FLOPs of the matrix products (forward and backward) per second.
  % matmul: that rate as a share of the machine's fastest float32 matmul calibration in the same run;
    % own: of the backend's own framework's matmul. Blank for float64 workloads (the calibration is
    float32). Above 100 (marked !): faster than the calibration, which ran at another moment: the
    machine's speed changed in between (a shared machine drifts 2x), so that run's shares are unreliable.
  first call +: how much slower the first training's call was than the median; "noise" where it was no
    slower than the slowest timed round.
  compile: only where a variant compiles: JAX's first set-up minus a later one (it compiles there),
    torch.compile's first call minus the median (it compiles there; "noise" as above).
  peak MB: peak memory growth of a warm training (fresh process; noisy by some MB); working set MB: the
    parameters, gradients and activations the maths needs.
  time / matmul (--normalize matmul): time per epoch / the run's fastest matmul calibration time."""


def formatted(table: pd.DataFrame, normalize: str | None = None) -> pd.DataFrame:
    """Human units at the precision the measurement carries; COLUMNS explains each. Normalized
    (the table from comparison(..., normalize)), only what does not depend on the machine's speed."""
    def share(values):
        return values.map(lambda v: "" if pd.isna(v) else significant(v * 100, 2) + ("!" if v > 1 else ""))

    shown = pd.DataFrame({
        "workload": table["workload"], "backend": table["name"],
        "time/epoch": table["time_per_epoch_s"].map(seconds_text),
        "vs numpy": table["vs_numpy"].map(lambda v: significant(v, 3) and significant(v, 3) + "x"),
        "autograd": table["autograd_cost"].map(lambda v: significant(v, 3) and significant(v, 3) + "x"),
        "GFLOP/s": table["gflops"].map(lambda v: significant(v, 3)),
        "% matmul": share(table["of_machine"]), "% own": share(table["of_own_matmul"]),
        "first call +": [("noise" if noise else seconds_text(v)) if pd.notna(v) else ""
                         for v, noise in zip(table["first_call_overhead_s"], table["overhead_in_noise"])],
        # torch.compile's compile time is its first call's: noise too where that call was no slower than a round.
        "compile": [("noise" if noise and where == "run" else seconds_text(v)) if pd.notna(v) else ""
                    for v, noise, where in zip(table["compile_s"], table["overhead_in_noise"], table["compiles_in"])],
        "peak MB": (table["peak_memory_bytes"] / 1e6).map(lambda v: significant(v, 2)),
        "working set MB": (table["working_set_bytes"] / 1e6).map(lambda v: significant(v, 2)),
        "autograd MB": table["autograd_memory"].map(lambda v: significant(v, 3) and significant(v, 3) + "x"),
    })
    if normalize:
        shown = shown.drop(columns=["time/epoch", "GFLOP/s", "first call +", "compile"])
    if normalize == "matmul":  # relative to NumPy, "vs numpy" says it already
        shown.insert(2, "time / matmul", table["relative"].map(lambda v: significant(v, 3)))
    return shown


# Per run, where several are shown.
SIDE_BY_SIDE = ["time/epoch", "time / matmul", "vs numpy", "autograd", "% matmul", "compile"]


def _inert_cell(value):
    """A CSV cell a spreadsheet will not run: text starting with = + - @ gets a leading ' (OWASP's advice)."""
    return "'" + value if isinstance(value, str) and value[:1] in ("=", "+", "-", "@") else value


def render(tables: dict[str, pd.DataFrame], fmt: str, normalize: str | None = None) -> str:
    """Runs' comparisons as text: one block per workload, with a column group per run where there
    are several (table, markdown), or one CSV with a `run` column. `tables` maps a label to a comparison."""
    if fmt == "csv":
        table = pd.concat(tables, names=["run"]).reset_index(level=0)
        return table.apply(lambda column: column.map(_inert_cell)).to_csv(index=False)
    everything = pd.concat(tables.values())
    blocks = []
    for workload in workload_order(everything):
        groups = {}
        for label, table in tables.items():
            rows = formatted(table[table["workload"] == workload], normalize)
            rows = rows.drop(columns="workload").set_index("backend")
            if len(tables) > 1:
                rows = rows[[column for column in SIDE_BY_SIDE if column in rows]]
            groups[label] = rows.loc[:, (rows != "").any()]
        backends = list(dict.fromkeys(name for rows in groups.values() for name in rows.index))  # first run's order
        side = pd.concat(groups, axis=1).reindex(backends).fillna("-") if len(groups) > 1 else groups[label]
        side = side.reset_index()
        heading = workload_heading(everything, workload)
        if fmt == "markdown":
            names = [" ".join(c).strip() if isinstance(c, tuple) else c for c in side.columns]
            blocks.append(f"### {heading}\n\n{markdown(side.set_axis(names, axis=1))}")
        else:
            blocks.append(f"{heading}\n{side.to_string(index=False)}")
    return "\n\n".join(blocks) + "\n"
