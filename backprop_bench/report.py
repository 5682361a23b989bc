"""Saved benchmark runs as one pandas table, side-by-side comparisons, plots and regression checks.

A run is one JSON file that `pytest --benchmark-only` saved under results/. Files that
are not such runs are skipped with a warning naming them, never changed.
"""

from __future__ import annotations

import json
import platform
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent.parent / "results"
STATS = ["median", "mean", "min", "max", "stddev", "iqr", "rounds"]


class SkippedRun(UserWarning):
    """A file under results/ that is not a readable benchmark run."""


def _machine(info: dict) -> str:
    cpu = info.get("cpu", {}) or {}
    return f"{info.get('node', '?')} ({cpu.get('brand_raw') or info.get('processor') or info.get('machine', '?')})"


def _setup(info: dict) -> dict:
    """What can change speed on the same machine: framework versions, BLAS, thread and XLA settings."""
    suite = info.get("backprop_bench", {}) or {}
    setup = {k: suite[k] for k in ("python", "numpy", "numpy_blas", "torch", "jax") if k in suite}
    setup.update({f"${k}": v for k, v in (suite.get("env", {}) or {}).items()})
    return setup


def _read(path: Path) -> dict | None:
    try:
        run = json.loads(path.read_text())
        if not isinstance(run, dict) or not isinstance(run.get("benchmarks"), list) or "machine_info" not in run:
            raise ValueError("not a pytest-benchmark run")
        for bench in run["benchmarks"]:
            if not {"name", "stats"} <= set(bench):
                raise ValueError("a benchmark lacks its name or stats")
        return run
    except (OSError, UnicodeDecodeError, ValueError) as err:  # JSONDecodeError is a ValueError
        warnings.warn(f"skipping {path}: {err}", SkippedRun, stacklevel=3)
        return None


def _run_id(path: Path) -> str:
    """machine-folder/NNNN_commit_date for a run under results/ (unique there), else its path."""
    try:
        return str(path.resolve().relative_to(RESULTS.resolve()).with_suffix(""))
    except ValueError:
        return str(path)


def run_files() -> list[Path]:
    """Every JSON file under results/ (figures and other files are not runs)."""
    return sorted(p for p in RESULTS.rglob("*.json") if p.is_file())


def load_runs(paths: list[Path] | None = None) -> pd.DataFrame:
    """Every benchmark of every run as one tidy row: run, machine, commit, datetime, names, stats, extra info.

    `data` holds the raw round timings in seconds where the run saved them.
    """
    rows = []
    for path in paths if paths is not None else run_files():
        run = _read(Path(path))
        if run is None:
            continue
        commit = run.get("commit_info", {}) or {}
        for bench in run["benchmarks"]:
            stats = bench["stats"]
            row = {
                "run": _run_id(Path(path)), "path": str(path), "machine": _machine(run["machine_info"]),
                "setup": _setup(run["machine_info"]),
                "commit": commit.get("id", ""), "datetime": run.get("datetime", ""),
                "benchmark": bench["name"], "group": bench.get("group") or "",
                **{k: stats.get(k) for k in STATS}, "data": stats.get("data"),
            }
            row.update(bench.get("extra_info", {}) or {})
            rows.append(row)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["datetime"] = pd.to_datetime(frame["datetime"], errors="coerce", utc=True)
    return frame


def resolve_run(frame: pd.DataFrame, run: str | None) -> str:
    """The run named by a number (1, 0001), an id (file name without .json) or a path; default the latest
    on this machine (else the latest of all)."""
    if frame.empty:
        raise ValueError(f"no saved runs in {RESULTS}; make one with: pytest --benchmark-only")
    runs = frame.drop_duplicates("run")
    if run is None:
        here = runs[runs["machine"].str.startswith(platform.node() + " ")]
        return (here if len(here) else runs).sort_values("datetime")["run"].iloc[-1]
    stems = runs["path"].map(lambda p: Path(p).stem)
    exact = (runs["run"] == run) | (runs["path"].map(lambda p: Path(p).resolve()) == Path(run).resolve())
    candidates = runs[exact] if exact.any() else runs[stems == Path(run).stem]
    if candidates.empty and run.isdigit():
        candidates = runs[stems.str.split("_").str[0] == f"{int(run):04d}"]
    if candidates.empty:
        raise ValueError(f"no saved run {run!r} in {RESULTS} (runs: {', '.join(stems.str[:4])})")
    if len(candidates) > 1:
        raise ValueError(f"run {run!r} is ambiguous: {', '.join(candidates['path'])}; give its path")
    return candidates["run"].iloc[0]


def load(runs: list[str]) -> pd.DataFrame:
    """All runs under results/ plus any run given as a path."""
    extra = [Path(r) for r in runs if r.endswith(".json")]
    for path in extra:
        if not path.is_file():
            raise ValueError(f"no such run file: {path}")
    saved = run_files()
    known = {p.resolve() for p in saved}
    return load_runs(saved + [p for p in extra if p.resolve() not in known])


def calibration_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The matmul calibration benchmarks among `rows`."""
    if "calibration" not in rows:
        return rows.iloc[0:0]
    return rows[rows["calibration"].fillna(False).astype(bool)]


def comparison(frame: pd.DataFrame, run: str) -> pd.DataFrame:
    """One run's training benchmarks side by side: per workload, every backend and variant."""
    rows = frame[frame["run"] == run]
    matmul = calibration_rows(rows)
    machine_gflops = matmul["gflops"].max() if "gflops" in matmul and len(matmul) else np.nan
    bench = rows[rows["workload"].notna()].copy() if "workload" in rows else rows.iloc[0:0].copy()
    bench["time_per_epoch_s"] = bench["median"] / bench["epochs"]
    numpy_time = bench[bench["backend"] == "numpy"].set_index("workload")["time_per_epoch_s"]
    bench["vs_numpy"] = bench["workload"].map(numpy_time) / bench["time_per_epoch_s"]
    for column in ("gflops", "compile_s", "peak_memory_bytes", "working_set_bytes", "epoch_flops"):
        if column not in bench:
            bench[column] = np.nan
    bench["of_machine"] = bench["gflops"] / machine_gflops
    # The same against the backend's own framework's matmul: what its BLAS or compiler allows.
    # Its best size counts: a GPU run calibrates at the CPU sweep's sizes and at the GPU's own.
    own = matmul.groupby(["backend", "device"])["gflops"].max() if len(matmul) else pd.Series(dtype=float)
    bench["of_own_matmul"] = [gflops / own.get((backend, device), np.nan)
                              for gflops, backend, device in zip(bench["gflops"], bench["backend"], bench["device"])]
    bench["name"] = bench["benchmark"].str.split("[").str[1].str.rstrip("]")
    table = bench[["workload", "name", "time_per_epoch_s", "vs_numpy", "gflops", "of_machine", "of_own_matmul", "compile_s",
                   "peak_memory_bytes", "working_set_bytes", "epoch_flops"]]
    return table.sort_values(["workload", "time_per_epoch_s"]).reset_index(drop=True)


def seconds_text(value: float) -> str:
    if not np.isfinite(value):
        return ""
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def formatted(table: pd.DataFrame) -> pd.DataFrame:
    """Human units: time per epoch, x faster than NumPy, GFLOP/s, % of the machine's and of the
    framework's own matmul rate, MB."""
    def fmt(values, spec):
        return values.map(lambda v: "" if pd.isna(v) else format(v, spec))

    return pd.DataFrame({
        "workload": table["workload"], "backend": table["name"],
        "time/epoch": table["time_per_epoch_s"].map(seconds_text),
        "vs numpy": fmt(table["vs_numpy"], ".2f").map(lambda text: text and text + "x"),
        "GFLOP/s": fmt(table["gflops"], ".1f"),
        "% matmul": fmt(table["of_machine"] * 100, ".0f"),
        "% own matmul": fmt(table["of_own_matmul"] * 100, ".0f"),
        "compile": table["compile_s"].map(lambda v: "" if pd.isna(v) else seconds_text(v)),
        "peak MB": fmt(table["peak_memory_bytes"] / 1e6, ".0f"),
        "working set MB": fmt(table["working_set_bytes"] / 1e6, ".0f"),
    })


def render(table: pd.DataFrame, fmt: str) -> str:
    """The comparison as text: one block per workload (table, markdown) or one CSV."""
    if fmt == "csv":
        return table.to_csv(index=False)
    shown = formatted(table)
    blocks = []
    for workload, rows in shown.groupby("workload", sort=False):
        rows = rows.drop(columns="workload").loc[:, lambda d: (d != "").any()]
        if fmt == "markdown":
            header = "| " + " | ".join(rows.columns) + " |\n|" + "---|" * len(rows.columns)
            lines = ["| " + " | ".join(map(str, r)) + " |" for r in rows.itertuples(index=False)]
            blocks.append(f"### {workload}\n\n{header}\n" + "\n".join(lines))
        else:
            blocks.append(f"{workload}\n{rows.to_string(index=False)}")
    return "\n\n".join(blocks) + "\n"
