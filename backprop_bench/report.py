"""One self-contained HTML page of saved runs: what `backprop-bench report` writes.

The figures are plotly's: one copy of plotly.js is written into the page and every figure
is a JSON spec beside it, so the page opens offline from disk with hover, zoom, log axes
and error bars, and nothing is fetched. The overview grid is a plain HTML table.

Run files may come from anyone (a colleague's laptop, a CI artifact), so every string
they supply is inert on the page: `inert` is the one escaping rule. HTML is built with it;
every figure leaves through `_figure`, which applies it to each string of the figure's
spec (plotly draws text, names, hover and category labels as HTML, and decodes the
entities back into plain text), and element ids are made here, never from a run's text.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from backprop_bench import backends, compare, history
from backprop_bench.errors import UserError
from backprop_bench.formatting import percent_text, seconds_text, significant
from backprop_bench.store import suite_runs

SECTIONS = {"run": "The run", "overview": "Overview", "workloads": "Per workload", "sweep": "Size sweep",
            "memory": "Memory", "history": "History"}
FAMILIES = (*backends.BACKENDS, "reference")  # the grid's column order: NumPy, the frameworks, the references
CSS = Path(__file__).with_name("page.css")


def build(frame: pd.DataFrame, runs: list[str], comparisons: pd.DataFrame, noise: pd.DataFrame | None = None,
          bisections: pd.DataFrame | None = None) -> str:
    """The page of `runs` (run ids of `frame`); runs of several machines are shown normalized, side by side."""
    tables = {run: _table(frame, run) for run in runs}
    for run, table in tables.items():
        if table.empty:
            raise UserError(f"run {run} holds no training benchmarks")
    machines = frame[frame["run"].isin(runs)].drop_duplicates("run").set_index("run")["machine"]
    normalized = machines.nunique() > 1
    sections = {
        "run": _header(frame, runs, machines, normalized),
        "overview": _overview(tables, machines),
        "workloads": _workloads(tables, machines, normalized),
        "sweep": _sweep(tables, machines, normalized),
        "memory": _memory(tables, machines),
        "history": _history(frame, runs, machines) + _ab(comparisons) + _bisections(bisections) + _noise(noise),
    }
    import plotly.offline

    title = f"backprop-bench: {', '.join(_label(run, machines, several=False) for run in runs)}"
    nav = " ".join(f'<a href="#{key}">{name}</a>' for key, name in SECTIONS.items())
    body = "\n".join(f'<section id="{key}"><h2>{SECTIONS[key]}</h2>\n{content}</section>'
                     for key, content in sections.items())
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{inert(title)}</title>\n'
            f"<style>{CSS.read_text()}</style>\n<script>{plotly.offline.get_plotlyjs()}</script></head>\n"
            f"<body><header><h1>{inert(title)}</h1><nav>{nav}</nav></header>\n<main>{body}</main></body></html>\n")


def inert(text) -> str:
    """Text from a run file as the page must hold it: shown as written, never read as markup.

    The quote as a numeric entity: plotly decodes those in figure text, but not `&quot;`.
    """
    return html.escape(str(text)).replace("&quot;", "&#34;")


TEMPLATES = ("hovertemplate", "texttemplate")  # written here: markup and %{field}s, never a run's text


def _inert_spec(value, key: str = ""):
    """A figure's spec with `inert` applied to every string but the templates written here."""
    if isinstance(value, str):
        return value if key in TEMPLATES else inert(value)
    if isinstance(value, dict):
        return {k: _inert_spec(v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.dtype.kind in "OUS"):
        return [_inert_spec(v, key) for v in value]
    return value


def _element_id(name: str) -> str:
    """An HTML id for a figure: letters, digits and dashes only, with a digest where a name had to be changed."""
    slug = re.sub(r"[^A-Za-z0-9-]+", "-", name)
    return slug if slug == name else f"{slug}-{hashlib.sha1(name.encode('utf-8', 'replace')).hexdigest()[:8]}"


def _table(frame: pd.DataFrame, run: str) -> pd.DataFrame:
    """compare.comparison of the run, with the machine's matmul rate beside each row."""
    table = compare.comparison(frame, run)
    table["machine_gflops"] = table["gflops"] / table["of_machine"]
    return table


def _label(run: str, machines: pd.Series, several: bool = True) -> str:
    """'box/0003' for a run; with its machine where runs of several machines are shown."""
    short = suite_runs.run_label(run, with_machine=True)
    return f"{short} on {machines[run]}" if several and machines.nunique() > 1 else short


def _how(text: str) -> str:
    return f'<p class="how"><b>How to read this:</b> {text}</p>\n'


def _columns(tables: dict) -> list[str]:
    names = pd.concat([t["case"] for t in tables.values()]).unique()
    return sorted(names, key=lambda c: (next((i for i, f in enumerate(FAMILIES) if c.startswith(f)), 9), c))


def _colours(tables: dict) -> dict:
    """One colour per backend-variant, the same in every figure."""
    import plotly.colors

    palette = plotly.colors.qualitative.Plotly
    return {column: palette[i % len(palette)] for i, column in enumerate(_columns(tables))}


def _header(frame: pd.DataFrame, runs: list[str], machines: pd.Series, normalized: bool) -> str:
    """One column per run: machine, hardware, versions and settings, commit, date, wall time, time in timed rounds."""
    firsts = frame[frame["run"].isin(runs)].drop_duplicates("run").set_index("run")
    totals = frame[frame["run"].isin(runs)].groupby("run")["total"].sum(min_count=1)
    fields = {run: {"machine": machines[run], **firsts.at[run, "hardware"], **firsts.at[run, "setup"],
                    "commit": firsts.at[run, "commit"] or "?",
                    "saved": firsts.at[run, "datetime"].strftime("%Y-%m-%d %H:%M UTC")
                    if pd.notna(firsts.at[run, "datetime"]) else "?",
                    "wall time": seconds_text(firsts.at[run, "wall_s"]) if pd.notna(firsts.at[run, "wall_s"]) else "?",
                    "timed rounds": seconds_text(totals.get(run, np.nan)) or "?"} for run in runs}
    keys = list(dict.fromkeys(key for values in fields.values() for key in values))
    head = "".join(f"<th>{inert(_label(run, machines, several=False))}</th>" for run in runs)
    rows = "".join(f"<tr><th>{inert(key)}</th>"
                   + "".join(f"<td>{inert(str(fields[run].get(key, '')))}</td>" for run in runs) + "</tr>"
                   for key in keys)
    note = (f'<p class="warn">These runs come from {machines.nunique()} machines, so their absolute times are never '
            "drawn side by side: figures show each time relative to the NumPy backend or to the matmul rate of its "
            "own run; each run's tables keep its own absolute times.</p>\n") if normalized else ""
    return (_how("where and how the timings were made. Settings that change speed without changing code are "
                 "listed: framework versions, NumPy's BLAS, thread counts, $ environment variables. "
                 "'wall time' is the whole `pytest --benchmark-only` (runs saved before it was recorded show ?); "
                 "'timed rounds' adds up the steady-state rounds only.")
            + note + f'<table class="facts"><tr><th></th>{head}</tr>{rows}</table>\n')


def _colour(vs_numpy: float) -> str:
    """Green for faster than NumPy, red for slower, white for the same; 100x is the full colour; none without NumPy."""
    if not np.isfinite(vs_numpy):
        return "transparent"
    t = float(np.clip(np.log10(vs_numpy) / 2, -1, 1))
    return f"hsl({130 if t > 0 else 5}, {65 * min(1.0, 10 * abs(t)):.0f}%, {97 - 40 * abs(t):.0f}%)"


EMPTY = '<td class="empty">-</td>'  # a grid's cell where a run has no such benchmark


def _grid(label: str, table: pd.DataFrame, head_cell: Callable[[str], str],
          row_cells: Callable[[pd.DataFrame, str, list[str]], list[str]]) -> str:
    """One run's grid: a row per workload (with its dtype), a column per backend-variant of `table`;
    `head_cell` writes a column's head, `row_cells` a workload's cells."""
    columns = _columns({label: table})
    rows = [f"<tr><th>{inert(workload)} <small>{inert(group['dtype'].iloc[0])}</small></th>"
            + "".join(row_cells(group, workload, columns)) + "</tr>"
            for workload in compare.workload_order(table) for group in [table[table["workload"] == workload]]]
    return (f'<div class="grid"><h3>{inert(label)}</h3><table>'
            f'<tr><th>workload</th>{"".join(map(head_cell, columns))}</tr>{"".join(rows)}</table></div>')


def _overview(tables: dict, machines: pd.Series) -> str:
    grids = []
    for run, table in tables.items():
        references = set(table.loc[table["reference"], "case"])
        grids.append(_grid(_label(run, machines), table,
                           lambda c, references=references: f'<th class="reference">{inert(c)}<small>reference'
                           f"</small></th>" if c in references else f"<th>{inert(c)}</th>", _overview_cells))
    return (_how("each cell is how many times faster than the NumPy backend one backend-variant trains an epoch of "
                 "that workload, measured in the same run: 2.00x is twice as fast, 0.50x half as fast. Green is "
                 "faster than NumPy, red slower, white the same; &#9733; marks the fastest backend of each row; the "
                 "small number is the median time per epoch. Grey italic columns are references, not backends: "
                 "the same training in plain C or in the notebook's code, for scale, never starred.")
            + '<div class="side">' + "".join(grids) + "</div>\n" + _autograd(tables, machines))


def _autograd(tables: dict, machines: pd.Series) -> str:
    """The grid of what autograd costs: per workload and autograd variant, its time over its hand-written twin's."""
    grids = [_grid(_label(run, machines), costs,
                   lambda c: f'<th class="autograd">{inert(c)}<small>over its handwritten</small></th>',
                   _autograd_cells)
             for run, table in tables.items() for costs in [table[table["autograd_cost"].notna()]] if len(costs)]
    if not grids:
        return ('<h3 id="autograd">What autograd costs</h3><p>No run shown has an autograd variant beside its '
                "hand-written twin (torch eager and torch handwritten, jax jit-loop and jax handwritten).</p>\n")
    return ('<h3 id="autograd">What autograd costs</h3>\n'
            + _how("each cell is one autograd variant's time per epoch over its framework's hand-written variant's, "
                   "same run, workload and device: the same training with the gradients written by hand "
                   "(backends/handwritten.py) and nothing else changed. 1.50x: autograd takes 50% longer; under "
                   "1.00x the hand-written variant is the slower one. Red is autograd costing time, green "
                   "autograd winning; the small line is the same ratio for peak memory, where it was measured.")
            + '<div class="side">' + "".join(grids) + "</div>\n")


def _autograd_cells(group: pd.DataFrame, workload: str, columns: list[str]) -> list[str]:
    """One workload's autograd costs, each over its hand-written twin, with the same ratio of peak memory."""
    cells, row = group.set_index("case"), []
    for column in columns:
        if column not in cells.index:
            row.append(EMPTY)
            continue
        cell = cells.loc[column]
        memory = f"memory {cell.autograd_memory:.2f}x" if np.isfinite(cell.autograd_memory) else ""
        row.append(f'<td class="cell" data-workload="{inert(workload)}" data-column="{inert(column)}" '
                   f'style="background:{_colour(1 / cell.autograd_cost)}" title="{inert(column)} on '
                   f'{inert(workload)}: {seconds_text(cell.time_per_epoch_s)} per epoch">'
                   f"{cell.autograd_cost:.2f}x<small>{memory}</small></td>")
    return row


def _overview_cells(group: pd.DataFrame, workload: str, columns: list[str]) -> list[str]:
    """One workload's cells; the star goes to the fastest backend, never to a reference."""
    cells = group.set_index("case")
    backends = cells.loc[~cells["reference"], "time_per_epoch_s"]
    fastest = backends.idxmin() if len(backends) else None
    row = []
    for column in columns:
        if column not in cells.index:
            row.append(EMPTY)
            continue
        cell = cells.loc[column]
        star = ' <span class="star" title="fastest on this workload">&#9733;</span>' if column == fastest else ""
        kind, background = ("cell reference", "#f3f3f3") if cell.reference else ("cell", _colour(cell.vs_numpy))
        row.append(f'<td class="{kind}" data-workload="{inert(workload)}" data-column="{inert(column)}"'
                   f' style="background:{background}" title="{inert(column)} on '
                   f'{inert(workload)}: {seconds_text(cell.time_per_epoch_s)} per epoch">'
                   f"{f'{cell.vs_numpy:.2f}x' if np.isfinite(cell.vs_numpy) else 'no NumPy'}{star}"
                   f"<small>{seconds_text(cell.time_per_epoch_s)}</small></td>")
    return row


def _figure(fig, name: str, height: int) -> str:
    """The figure as a div and its JSON spec; plotly.js itself is in the page's head."""
    import plotly.io

    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), template="plotly_white",
                      legend=dict(font=dict(size=11)), font=dict(size=12))
    spec = fig.to_dict()
    spec = {"data": _inert_spec(spec["data"]), "layout": {**spec["layout"], **_inert_spec(
        {key: value for key, value in spec["layout"].items() if key != "template"})}}
    return plotly.io.to_html(spec, include_plotlyjs=False, full_html=False, div_id=_element_id(f"figure-{name}"),
                             config={"displaylogo": False, "responsive": True}, validate=False)


def _workloads(tables: dict, machines: pd.Series, normalized: bool) -> str:
    """Per workload: bars of time per epoch with the interquartile range, and the numbers in a table."""
    import plotly.graph_objects as go

    parts = []
    everything = pd.concat(tables.values())
    for workload in compare.workload_order(everything):
        fig = go.Figure()
        tables_html = []
        for run, table in tables.items():
            rows = table[table["workload"] == workload].sort_values("time_per_epoch_s", ascending=False)
            if rows.empty:
                continue
            scale = rows["time_per_epoch_s"] * rows["vs_numpy"] if normalized else pd.Series(1.0, rows.index)
            x = rows["time_per_epoch_s"] / scale
            # Points, not bars: times span orders of magnitude, and a bar's length on a log axis means nothing.
            fig.add_scatter(y=rows["case"], x=x, mode="markers", marker=dict(size=10), name=_label(run, machines),
                            error_x=dict(type="data", symmetric=False, array=(rows["q3_s"] / scale - x).fillna(0),
                                         arrayminus=(x - rows["q1_s"] / scale).fillna(0)),
                            customdata=rows["time_per_epoch_s"].map(seconds_text),
                            hovertemplate="%{y}: %{customdata} per epoch<extra></extra>")
            tables_html.append(f"<h4>{inert(_label(run, machines))}</h4>"
                               + _numbers(rows).to_html(index=False, classes="numbers", border=0))
        if normalized:
            fig.update_xaxes(type="log", title="time per epoch relative to NumPy's in the same run (left is faster)")
        else:
            fig.update_xaxes(type="log", title="median time per epoch (log scale; left is faster)",
                             exponentformat="SI", ticksuffix="s")
        fig.update_layout(showlegend=len(tables) > 1)
        # The heading in the page, not in the figure, where plotly's toolbar would sit on top of it.
        heading = inert(compare.workload_heading(everything, workload) + _working_set(everything, workload))
        # The table first: plotly sizes a figure to its place once, as it draws, so the table must hold its own
        # by then (page.css shows the figure first).
        parts.append(f'<h3>{heading}</h3><div class="pair"><div class="scroll">{"".join(tables_html)}</div>'
                     f'{_figure(fig, "workload-" + workload, 100 + 30 * len(fig.data[0].y))}</div>')
    return (_how("each point is the median time per training epoch of a backend-variant, on a log scale; the whisker "
                 "spans the middle half of its timed rounds (25th to 75th percentile), the noise of the run. "
                 "The table beside it adds the same spread, compile time (only where a variant compiles), the first "
                 "call's extra time, "
                 "GFLOP/s, the share of the machine's and of the framework's own matmul rate, and the peak memory "
                 "growth of the Memory section.")
            + "\n".join(parts))


def _numbers(rows: pd.DataFrame) -> pd.DataFrame:
    """compare.formatted's table of one workload, narrowed: the dtype and the working set are in the heading, the
    spread in one unit, and a column only where some row has a value."""
    shown = compare.formatted(rows).drop(columns=["workload", "working set MB"]).assign(
        backend=rows["case"], spread=[_span(a, b) for a, b in zip(rows["q1_s"], rows["q3_s"])])
    shown = shown.rename(columns={"time/epoch": "time / epoch"})  # a header that may wrap
    return shown.loc[:, (shown != "").any()].iloc[::-1]


def _span(low: float, high: float) -> str:
    """'9.90-10.1 us': the unit once where both ends share it."""
    low_text, high_text = seconds_text(low), seconds_text(high)
    if low_text.split(" ")[-1] == high_text.split(" ")[-1]:
        low_text = low_text.split(" ")[0]
    return f"{low_text}-{high_text}"


def _working_set(everything: pd.DataFrame, workload: str) -> str:
    """', working set 2.9 MB' where the workload has one: the same for every backend, so not in each row."""
    sets = everything.loc[everything["workload"] == workload, "working_set_bytes"].dropna()
    return f", working set {significant(sets.iloc[0] / 1e6, 2)} MB" if len(sets) else ""


def _sweep(tables: dict, machines: pd.Series, normalized: bool) -> str:
    """Time per epoch against FLOPs per epoch, log-log, with the machine's matmul rate as the floor."""
    import plotly.graph_objects as go

    fig, colours = go.Figure(), _colours(tables)
    for run, table in tables.items():
        rows = table[table["working_set_bytes"].notna()].sort_values("epoch_flops")
        if rows.empty:
            continue
        rate = rows["machine_gflops"].max() * 1e9
        # Normalized: each time in units of the time its own machine's matmul rate needs for the same FLOPs.
        floor = rows["epoch_flops"] / rate if normalized else pd.Series(1.0, rows.index)
        label = _label(run, machines) + ": " if len(tables) > 1 else ""
        for column, line in rows.groupby("case", sort=False):
            fig.add_scatter(x=line["epoch_flops"], y=line["time_per_epoch_s"] / floor[line.index], mode="lines+markers",
                            name=label + column, line=dict(color=colours[column]),
                            customdata=np.stack([line["workload"], line["time_per_epoch_s"].map(seconds_text)], -1),
                            hovertemplate="%{customdata[0]}: %{customdata[1]} per epoch<extra>%{fullData.name}</extra>")
        if np.isfinite(rate):
            edges = rows["epoch_flops"].iloc[[0, -1]]
            fig.add_scatter(x=edges, y=[1, 1] if normalized else edges / rate, mode="lines",
                            line=dict(dash="dash", color="black"), hoverinfo="skip",
                            name=f"{label}the machine's matmul rate, {rate / 1e9:.0f} GFLOP/s: no backend is faster")
    if not fig.data:
        return _how("the size sweep shows how each backend scales with the work.") + \
            '<p class="empty">The chosen runs have no size-sweep workloads (mlp-...); `make bench` times them.</p>\n'
    fig.update_xaxes(type="log", title="FLOPs per epoch (matrix products, forward and backward)")
    if normalized:
        fig.update_yaxes(type="log", title="time per epoch / the matmul rate's time (1 = the roofline)")
    else:
        fig.update_yaxes(type="log", title="median time per epoch", exponentformat="SI", ticksuffix="s")
    fig.update_layout(legend=dict(orientation="h", y=-0.2))
    return (_how("each line is one backend-variant across workloads of growing size, both axes logarithmic. The "
                 "dashed line is the time the machine's fastest float32 matmul (timed in the same run) needs for "
                 "the same FLOPs: no backend can be below it. Small workloads sit far above it (per-call overhead); "
                 "the closer a line comes at the right, the less time goes to anything but matrix products.")
            + _figure(fig, "sweep", 520))


def _memory(tables: dict, machines: pd.Series) -> str:
    """Peak memory of a training against the analytic working set, per sweep workload and backend."""
    import plotly.graph_objects as go

    fig, colours = go.Figure(), _colours(tables)
    for run, table in tables.items():
        rows = table[table["peak_memory_bytes"].notna()].sort_values("epoch_flops")
        label = _label(run, machines) + ": " if len(tables) > 1 else ""
        for column, bars in rows.groupby("case", sort=False):
            fig.add_bar(x=bars["workload"], y=bars["peak_memory_bytes"] / 1e6, name=label + column,
                        marker_color=colours[column],
                        hovertemplate="%{x}: %{y:.0f} MB<extra>%{fullData.name}</extra>")
        sets = rows.drop_duplicates("workload")
        if len(sets):
            fig.add_scatter(x=sets["workload"], y=sets["working_set_bytes"] / 1e6, mode="markers",
                            marker=dict(symbol="line-ew", size=40, line=dict(width=3, color="black")),
                            name=label + "analytic working set",
                            hovertemplate="%{x}: %{y:.0f} MB<extra>working set</extra>")
    if not fig.data:
        return '<p class="empty">The chosen runs measured no memory (the size sweep does).</p>\n'
    fig.update_yaxes(type="log", title="MB (log scale)")
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.2))
    return (_how("bars are each backend's peak memory growth during a warm training (a fresh process's peak RSS, "
                 "itself noisy by some MB); the black mark is the analytic working set, what the maths needs "
                 "(parameters, gradients, activations). A bar above the mark is what the framework adds.")
            + _below_working_set(tables, machines) + _figure(fig, "memory", 420))


def _below_working_set(tables: dict, machines: pd.Series) -> str:
    """A line naming each bar below its mark, and why benchmarks/memory.py can read less than the maths needs."""
    below = [f"{_label(run, machines) + ': ' if len(tables) > 1 else ''}{row.case} on {row.workload}: "
             f"{significant(row.peak_memory_bytes / 1e6, 2)} MB, under its "
             f"{significant(row.working_set_bytes / 1e6, 2)} MB"
             for run, table in tables.items()
             for row in table[table["peak_memory_bytes"] < table["working_set_bytes"]].itertuples()]
    if not below:
        return ""
    return (f'<p class="note">Below the working set: {inert("; ".join(below))}. The peak counts only what a warm '
            "training adds to the memory in use after loading: not the parameters and data, loaded before; and on "
            "the CPU, not memory it reuses from the warm-up that the C allocator kept in a worker thread's heap, "
            "where a framework's threads free their buffers (malloc_trim does not return that).</p>\n")


def _history(frame: pd.DataFrame, runs: list[str], machines: pd.Series) -> str:
    """Every benchmark's median across the saved runs of each chosen run's machine, relative to the chosen run."""
    import plotly.graph_objects as go

    parts = []
    for machine in machines.unique():
        chosen = next(run for run in runs if machines[run] == machine)
        rows = frame[(frame["machine"] == machine) & frame["workload"].notna()]
        if rows["run"].nunique() < 2:  # a line through one point says nothing, and its legend fills the section
            parts.append(f'<p class="empty">{inert(machine)} has one run so far: history needs two or more runs.</p>')
            continue
        rows = rows.sort_values(["datetime", "run"]).copy()
        rows["label"] = [f"{suite_runs.run_label(run)} {commit[:7]}"
                         for run, commit in zip(rows["run"], rows["commit"])]
        reference = rows[rows["run"] == chosen].set_index("benchmark")["median"]
        fig = go.Figure()
        for benchmark, line in rows[rows["benchmark"].isin(reference.index)].groupby("benchmark"):
            fig.add_scatter(x=line["label"], y=line["median"] / reference[benchmark], mode="lines+markers",
                            name=benchmark, customdata=(line["median"] / line["epochs"]).map(seconds_text),
                            hovertemplate="%{x}: %{customdata} per epoch, %{y:.2f}x this run"
                                          "<extra>%{fullData.name}</extra>")
        labels = rows.drop_duplicates("run").set_index("run")["label"]
        for point in _change_points(frame, rows["machine_id"].iloc[0]):
            fig.add_vline(x=labels[point["first_run_after"]], line=dict(color="crimson" if point["ratio"] > 1
                                                                          else "seagreen", dash="dash"))
            fig.add_annotation(x=labels[point["first_run_after"]], y=0, yref="paper", yanchor="top", showarrow=False,
                               text=f"{point['benchmark']} {point['ratio']:.2f}x", textangle=-90, xanchor="right")
        label = labels[chosen]
        fig.add_vline(x=label, line=dict(color="orange", width=8), opacity=0.35)
        fig.add_annotation(x=label, y=1, yref="paper", text="this run", showarrow=False, yanchor="bottom")
        fig.update_xaxes(type="category", title="saved runs of this machine in time order: number and commit")
        fig.update_yaxes(type="log", title="median / its median in this run")
        fig.update_layout(title=dict(text=f"runs on {machine}", x=0))
        parts.append(_figure(fig, f"history-{len(parts)}", 480))
    return (_how("each line is one benchmark's median in every saved run of this machine, divided by its median in "
                 "this run (the orange band): 1 is as fast as this run, 2 twice as slow, 0.5 twice as fast. "
                 "A dashed line is a change point `backprop-bench history` finds (red slower, green faster), "
                 "on times relative to a reference of the same run, so the machine's drift does not count. "
                 "Lines that move together are the machine drifting; one line alone is a change in that backend. "
                 "Click a legend entry to hide it, double-click to show it alone; hover for times and commits.")
            + "\n".join(parts))


def _change_points(frame: pd.DataFrame, machine_id: str) -> list[dict]:
    """`history`'s change points on this machine's runs at its default threshold; none where there are too few runs."""
    try:
        return history.history(frame, [], history.THRESHOLD, machine_id)[1]
    except history.HistoryError:
        return []


def _ab(comparisons: pd.DataFrame) -> str:
    """Saved `ab` comparisons: each benchmark's ratio with its interval, coloured by verdict."""
    import plotly.graph_objects as go

    intro = ('<h3 id="ab">A/B comparisons</h3>\n'
             + _how("`backprop-bench ab` times two versions of the code interleaved on the same machine and saves "
                    "the comparison under results/ab/. Each point is a benchmark's candidate / baseline median, "
                    "right of 1 is slower; the whisker is its confidence interval. Only a whole interval past the "
                    "threshold makes a regression or an improvement; an interval wholly on one side of 1 but not past "
                    "the threshold is 'slower' or 'faster': a change seen, smaller than the threshold."))
    if comparisons.empty:
        return intro + '<p class="empty">No A/B comparisons are saved under results/ab/ yet.</p>\n'
    colours = {"regression": "crimson", "improvement": "seagreen", "slower": "lightcoral", "faster": "mediumaquamarine",
               "same": "grey", "inconclusive": "goldenrod"}
    rows = comparisons.sort_values(["datetime", "benchmark"])
    # The record's number first: two comparisons of the same revisions at the same minute stay apart.
    rows = rows.assign(y=rows["benchmark"] + "  (ab " + rows["comparison"].str.split("_").str[0] + ": "
                       + rows["baseline"] + " vs " + rows["candidate"] + ", "
                       + rows["datetime"].dt.strftime("%Y-%m-%d %H:%M") + ")")
    fig = go.Figure()
    for verdict, group in rows.groupby("verdict"):
        fig.add_scatter(x=group["ratio"], y=group["y"], mode="markers", name=verdict,
                        marker=dict(color=colours[verdict], size=9),
                        error_x=dict(type="data", symmetric=False, array=group["ci_high"] - group["ratio"],
                                     arrayminus=group["ratio"] - group["ci_low"]),
                        hovertemplate="%{y}: %{x:.3f}x<extra>%{fullData.name}</extra>")
    fig.add_vline(x=1, line=dict(color="black", dash="dot"))
    fig.update_xaxes(type="log", title="candidate median / baseline median (log scale; right is slower)")
    fig.update_yaxes(type="category", automargin=True)
    fig.update_layout(showlegend=True, legend=dict(title="verdict"))
    return intro + _figure(fig, "ab", 140 + 24 * len(rows))


def _bisections(found: pd.DataFrame | None) -> str:
    """Saved bisections: which commit each named, and the ratio across it."""
    intro = _records_intro("bisect", "Bisections", "`backprop-bench bisect GOOD BAD --only NAME` compares commits "
                           "between GOOD and BAD with GOOD, as `ab` does, halving the commits in question each step, "
                           "and names the first one where the benchmark got slower; 'ratio across' compares that "
                           "commit with the last good one.")
    if found is None or found.empty:
        return intro + _none_saved("bisections", "bisect")
    shown = pd.DataFrame({
        "when": found["datetime"].dt.strftime("%Y-%m-%d %H:%M"), "benchmark": found["benchmark"],
        "range": found["good"] + ".." + found["bad"],
        "first bad commit": [sha[:12] + " " + subject if n == 1 else f"one of {n}, up to {sha[:12]}"
                             for sha, subject, n in zip(found["first_bad"], found["subject"], found["candidates"])],
        "ratio across": _intervals(found),
        "steps": found["steps"], "machine": found["machine"]})
    return intro + shown.map(inert).to_html(index=False, classes="numbers", border=0, escape=False)


def _records_intro(anchor: str, title: str, how: str) -> str:
    return f'<h3 id="{anchor}">{title}</h3>\n' + _how(how)


def _none_saved(what: str, folder: str) -> str:
    return f'<p class="empty">No {what} are saved under results/{folder}/ yet.</p>\n'


def _intervals(rows: pd.DataFrame) -> list[str]:
    """Each row's ratio with its interval: '1.012 [0.998, 1.026]'."""
    return [f"{r:.3f} [{lo:.3f}, {hi:.3f}]" for r, lo, hi in zip(rows["ratio"], rows["ci_low"], rows["ci_high"])]


def _noise(noise: pd.DataFrame | None) -> str:
    """The newest `noise` record of each machine: what `ab` can see there, per benchmark."""
    intro = _records_intro("noise", "What ab can see", "`backprop-bench noise` compares the working tree with "
                           "itself, as `ab` would at the same budget and threshold. 'smallest flagged' is the smallest "
                           "slowdown `ab` calls a regression 80% of the time at that spread: a change smaller than it "
                           "may pass unseen.")
    if noise is None or noise.empty:
        return intro + _none_saved("noise records", "noise")
    # A record may lack these two columns: add them, empty.
    noise = noise.reindex(columns=[*noise.columns, *{"se", "smallest_flagged"} - set(noise.columns)])
    parts = []
    for machine, records in noise.sort_values("datetime").groupby("machine"):
        newest = records[records["comparison"] == records["comparison"].iloc[-1]]
        shown = pd.DataFrame({"benchmark": newest["benchmark"],
                              "A/A ratio": _intervals(newest),
                              "pairs": newest["pairs"],
                              "std error": newest["se"].map(percent_text),
                              "smallest flagged": newest["smallest_flagged"].map(percent_text)})
        when = newest["datetime"].iloc[0]
        parts.append(f"<h4>{inert(machine)}, noise {inert(newest['comparison'].iloc[0])}"
                     f"{', ' + when.strftime('%Y-%m-%d %H:%M') if pd.notna(when) else ''}, threshold "
                     f"{newest['threshold'].iloc[0]:.0%}</h4>"
                     + shown.to_html(index=False, classes="numbers", border=0))
    return intro + "\n".join(parts)


def default_output(results: Path, runs: list[str]) -> Path:
    """<results>/pages/<run>.html; several runs join their names with +."""
    return results / "pages" / ("+".join(Path(run).name.removesuffix(".json") for run in runs) + ".html")
