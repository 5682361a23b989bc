"""Figures of one run: per workload, time per epoch by backend; across the sweep, time against FLOPs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from backprop_bench.report import seconds_text


def plot(table: pd.DataFrame, run: str, out_dir: Path) -> list[Path]:
    """Write the figures for `table` (from report.comparison) as PNG and SVG; return the PNG paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    workloads = list(dict.fromkeys(table["workload"]))
    fig, axes = plt.subplots(len(workloads), 1, figsize=(9, 2.2 + 0.45 * len(table) / max(len(workloads), 1) * len(workloads)))
    for ax, workload in zip(axes if len(workloads) > 1 else [axes], workloads):
        rows = table[table["workload"] == workload].sort_values("time_per_epoch_s", ascending=False)
        bars = ax.barh(rows["name"], rows["time_per_epoch_s"] * 1e6, color="tab:blue")
        ax.bar_label(bars, labels=[seconds_text(v) for v in rows["time_per_epoch_s"]], padding=3, fontsize=8)
        ax.margins(x=0.15)
        ax.set_title(workload, fontsize=10, loc="left")
        ax.set_xlabel("median time per epoch (µs; shorter is faster)")
        ax.tick_params(axis="y", labelsize=8)
    fig.suptitle(f"Time per training epoch by backend, run {Path(run).name[:4]}", fontsize=11)
    fig.tight_layout()
    written.append(_save(fig, out_dir / "time_per_epoch"))

    sweep = table[table["working_set_bytes"].notna()].copy()
    if not sweep.empty:
        fig, ax = plt.subplots(figsize=(7, 5))
        for name, rows in sweep.sort_values("epoch_flops").groupby("name"):
            ax.plot(rows["epoch_flops"], rows["time_per_epoch_s"], marker="o", label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("FLOPs per epoch (matrix products, forward and backward)")
        ax.set_ylabel("median time per epoch (s)")
        ax.set_title(f"Size sweep: time per epoch against work, run {Path(run).name[:4]}", fontsize=11)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        written.append(_save(fig, out_dir / "sweep"))
    plt.close("all")
    return written


def _save(fig, stem: Path) -> Path:
    fig.savefig(stem.with_suffix(".png"), dpi=120)
    fig.savefig(stem.with_suffix(".svg"))
    return stem.with_suffix(".png")
