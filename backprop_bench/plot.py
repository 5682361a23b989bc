"""Figures of one run: per workload, time per epoch by backend; across the sweep, time against FLOPs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from backprop_bench import backends
from backprop_bench.compare import workload_heading, workload_order
from backprop_bench.formatting import seconds_text, significant
from backprop_bench.store.suite_runs import run_label


def draw(table: pd.DataFrame, rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write the figures of `table` (compare.comparison of the run whose benchmarks are `rows`) as PNG
    and SVG; return the PNG paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    footer = _provenance(rows.iloc[0])
    # A run's names are drawn as written: '$...$' in a name is text, not matplotlib's maths.
    with matplotlib.rc_context({"text.parse_math": False}):
        figures = {"time_per_epoch": _time_per_epoch(plt, table, footer)}
        sweep = table[table["working_set_bytes"].notna()]
        if not sweep.empty:
            figures["sweep"] = _sweep(plt, sweep, footer)
        out_dir.mkdir(parents=True, exist_ok=True)
        written = [_save(fig, out_dir / name) for name, fig in figures.items()]
    plt.close("all")
    return written


def _provenance(first: pd.Series) -> str:
    """Which run, machine and software the figure shows: one line under it."""
    setup = first["setup"]
    software = ", ".join(f"{name} {setup[name]}" for name in backends.BACKENDS if name in setup)
    blas = f" ({setup['numpy_blas']} BLAS)" if "numpy_blas" in setup else ""
    when = first["datetime"].strftime("%Y-%m-%d") if pd.notna(first["datetime"]) else "?"
    return (f"run {run_label(first['run'], with_machine=True)} of {when}, commit {str(first['commit'])[:10] or '?'}, "
            f"on {first['machine']}\n{software}{blas}")


def _seconds_axis(axis) -> None:
    """A log axis of seconds labelled in ns, us, ms or s: times span seven orders of magnitude."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    axis.set_major_locator(LogLocator(base=10))
    axis.set_major_formatter(FuncFormatter(lambda value, _: seconds_text(value)))


def _spread(rows: pd.DataFrame) -> np.ndarray:
    """Whiskers from the median to the 25th and 75th percentiles of the rounds."""
    return np.vstack([rows["time_per_epoch_s"] - rows["q1_s"], rows["q3_s"] - rows["time_per_epoch_s"]]).clip(0)


def _time_per_epoch(plt, table: pd.DataFrame, footer: str):
    # Points on a log axis, not bars: a bar's length on a log axis means nothing, and on a linear
    # one the C loop's tens of nanoseconds vanish beside a second.
    workloads = workload_order(table)
    heights = [1.0 + 0.28 * (table["workload"] == w).sum() for w in workloads]
    fig, axes = plt.subplots(len(workloads), 1, figsize=(9, sum(heights) + 1.2), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, workload in zip(axes[:, 0], workloads):
        rows = table[table["workload"] == workload].sort_values("time_per_epoch_s", ascending=False)
        ax.errorbar(rows["time_per_epoch_s"], rows["name"], xerr=_spread(rows), fmt="o", color="tab:blue",
                    ecolor="tab:gray", capsize=3)
        for time, name, ratio in zip(rows["time_per_epoch_s"], rows["name"], rows["vs_numpy"]):
            ax.annotate(f"{seconds_text(time)}, {significant(ratio, 3)}x numpy", (time, name), xytext=(8, 4),
                        textcoords="offset points", fontsize=7)
        ax.set_xscale("log")
        _seconds_axis(ax.xaxis)
        # One scale for all; room for labels.
        ax.set_xlim(table["time_per_epoch_s"].min() / 3, table["time_per_epoch_s"].max() * 80)
        ax.set_title(workload_heading(rows, workload), fontsize=9, loc="left")
        ax.tick_params(axis="y", labelsize=8)
        ax.margins(y=0.3)  # room for the top point's label
        ax.grid(True, axis="x", which="major", alpha=0.3)
    axes[-1, 0].set_xlabel("median time per training epoch, log scale (left is faster)\n"
                           "whiskers: 25th to 75th percentile of the timed rounds")
    fig.suptitle("Time per training epoch by backend", fontsize=11)
    fig.text(0.01, 0.005, footer, fontsize=7, color="dimgray")
    fig.tight_layout(rect=(0, 0.025, 1, 1))
    return fig


def _sweep(plt, sweep: pd.DataFrame, footer: str):
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for name, rows in sweep.sort_values("epoch_flops").groupby("name"):
        ax.errorbar(rows["epoch_flops"], rows["time_per_epoch_s"], yerr=_spread(rows), marker="o", capsize=3,
                    label=name)
    machine_gflops = (sweep["gflops"] / sweep["of_machine"]).max()
    if np.isfinite(machine_gflops):
        edges = np.array([sweep["epoch_flops"].min(), sweep["epoch_flops"].max()])
        ax.plot(edges, edges / (machine_gflops * 1e9), "k--", linewidth=1,
                label=f"the machine's best float32 matmul rate ({machine_gflops:.0f} GFLOP/s)")
        if (sweep["of_machine"] > 1).any():
            ax.text(0.02, 0.97, "A point below the dashed line ran faster than the matmul calibration, timed at\n"
                    "another moment of the run: the machine's speed changed in between.", transform=ax.transAxes,
                    fontsize=7, va="top", color="firebrick")
    points = sweep.drop_duplicates("workload").sort_values("epoch_flops")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(points["epoch_flops"],
                  [f"{w}\n{a.split(',')[0]}\n{f / 1e9:.3g} GFLOP" for w, a, f
                   in zip(points["workload"], points["architecture"], points["epoch_flops"])], fontsize=7)
    ax.minorticks_off()
    _seconds_axis(ax.yaxis)
    ax.set_xlabel("work per epoch (FLOPs of the matrix products, forward and backward)")
    ax.set_ylabel("median time per epoch (log scale)")
    ax.set_title("Size sweep: time per epoch against work; whiskers: 25th to 75th percentile of the rounds",
                 fontsize=9)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    fig.text(0.01, 0.005, footer, fontsize=7, color="dimgray")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def _save(fig, stem: Path) -> Path:
    for suffix, options in ((".png", {"dpi": 120}), (".svg", {})):
        path = stem.with_suffix(suffix)
        if path.is_symlink():  # replaced, never followed: a link here may point at a saved run
            path.unlink()
        fig.savefig(path, **options)
    return stem.with_suffix(".png")
