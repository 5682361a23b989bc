"""Saved benchmark runs as one pandas table, side-by-side comparisons, plots and regression checks.

A run is one JSON file that `pytest --benchmark-only` saved under results/. Files that
are not such runs are skipped with a warning naming them, never changed.
"""

from __future__ import annotations

import json
import math
import re
import sys
import warnings
from collections.abc import Callable
from dataclasses import fields
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from backprop_bench import backends, store
from backprop_bench.errors import UserError
from backprop_bench.formatting import markdown, seconds_text, significant
from backprop_bench.timing import BenchmarkId

STATS = ["median", "mean", "min", "max", "stddev", "q1", "q3", "iqr", "rounds", "total"]
# `ab`'s verdicts: past the threshold; certain but not past it; none past it (same) or not resolved.
VERDICTS = ("regression", "improvement", "slower", "faster", "same", "inconclusive")
# extra_info keys the readers compute with, and the types they must have.
NUMBERS = ("epochs", "epoch_flops", "gflops", "time_per_epoch_s", "first_call_s", "first_setup_s", "setup_s",
           "compile_s", "peak_memory_bytes",
           "working_set_bytes", "samples", "flops", "lr", "final_loss")
IDENTITY = tuple(field.name for field in fields(BenchmarkId))  # a training benchmark's, saved in extra_info
TEXTS = ("backend", "variant", "device", "dtype", "workload", "activation", "init", "compiles_in", "handwritten")


class SkippedRun(UserWarning):
    """A file under results/ that is not a readable benchmark run."""


def _setup(info: dict) -> dict:
    """What can change speed on the same machine: framework versions, BLAS, thread and XLA settings."""
    suite = info.get("backprop_bench") or {}
    setup = {k: suite[k] for k in ("python", *backends.BACKENDS, "numpy_blas") if k in suite}
    setup.update({f"${k}": v for k, v in (suite.get("env") or {}).items()})
    return setup


def _hardware(info: dict) -> dict:
    """What the run ran on: CPU, cores, GPU (as store.machine_of reads them, the driver where recorded),
    and the threads and devices the frameworks used."""
    suite, machine = info.get("backprop_bench", {}) or {}, store.machine_of(info)
    hardware = {"cpu": machine["cpu"], "cores": machine["cores"], "gpu": suite.get("gpu_driver") or machine["gpu"],
                "torch threads": suite.get("torch_threads"),
                "jax devices": ", ".join(suite.get("jax_devices", []) or []) or None}
    return {key: value for key, value in hardware.items() if value and value != "?"}


def _is_number(value) -> bool:
    try:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    except OverflowError:  # an integer of hundreds of digits
        return False


def _expect(mapping: dict, key: str, kind, where: str, required: bool = False) -> None:
    if key not in mapping or (mapping[key] is None and not required):
        if required:
            raise UserError(f"{where} lacks {key!r}")
        return
    if not isinstance(mapping[key], kind):
        raise UserError(f"{where}.{key} is a {type(mapping[key]).__name__}, not a {kind.__name__}")


def validate(run) -> None:
    """Raise ValueError naming the first thing that makes `run` unreadable as a pytest-benchmark run."""
    if not isinstance(run, dict) or "benchmarks" not in run or "machine_info" not in run:
        raise UserError("not a pytest-benchmark run")
    _expect(run, "machine_info", dict, "run", required=True)
    _expect(run, "commit_info", dict, "run")
    _expect(run.get("commit_info") or {}, "id", str, "commit_info")
    _expect(run, "benchmarks", list, "run", required=True)
    _expect(run, "backprop_bench_run", dict, "run")
    if not _is_number((run.get("backprop_bench_run") or {}).get("wall_s", 0)):
        raise UserError("backprop_bench_run.wall_s is not a number")
    _validate_machine_info(run["machine_info"])
    try:
        datetime.fromisoformat(run["datetime"])
    except (KeyError, TypeError, ValueError):
        raise UserError(f"its datetime {run.get('datetime')!r} is not a date and time") from None
    for index, bench in enumerate(run["benchmarks"]):
        where = f"benchmarks[{index}]"
        if not isinstance(bench, dict):
            raise UserError(f"{where} is not an object")
        _expect(bench, "name", str, where, required=True)
        _expect(bench, "group", str, where)
        _expect(bench, "stats", dict, where, required=True)
        _expect(bench, "extra_info", dict, where)
        stats, extra = bench["stats"], bench.get("extra_info") or {}
        if not (_is_number(stats.get("median")) and stats["median"] > 0):
            raise UserError(f"{bench['name']}: median {stats.get('median')!r} is not a positive number")
        data = stats.get("data")
        if data is not None and not (isinstance(data, list) and data and all(_is_number(t) and t >= 0 for t in data)):
            raise UserError(f"{bench['name']}: its round timings are not a list of numbers")
        for key in [k for k in STATS if k in stats and stats[k] is not None] + [k for k in NUMBERS if k in extra]:
            value = stats.get(key, extra.get(key))
            if value is not None and not _is_number(value):
                raise UserError(f"{bench['name']}: {key} {value!r} is not a number")
        for key in TEXTS:
            _expect(extra, key, str, f"{bench['name']}.extra_info")
        for text in [bench["name"], bench.get("group") or ""] + [extra.get(key) or "" for key in TEXTS]:
            if "\n" in text or "\r" in text:
                raise UserError(f"{bench['name']!r}: a name or label with a line break")
        if extra.get("workload") is not None and not (
                "[" in bench["name"] and _is_number(extra.get("epochs")) and extra["epochs"] > 0):
            raise UserError(f"{bench['name']}: a training benchmark needs a name 'workload[case]' and its epochs")
        if extra.get("workload") is not None and (missing := [key for key in IDENTITY if not extra.get(key)]):
            raise UserError(f"{bench['name']}: a training benchmark needs its identity in extra_info; "
                            f"it lacks {', '.join(missing)}")


def _validate_machine_info(info) -> None:
    """Raise ValueError unless `info` has the shape store.machine_of and the page read (runs and `ab` records)."""
    if not isinstance(info, dict):
        raise UserError(f"machine_info is a {type(info).__name__}, not a dict")
    for key in ("cpu", "backprop_bench"):
        _expect(info, key, dict, "machine_info")
    for key in ("env", "machine"):
        _expect(info.get("backprop_bench") or {}, key, dict, "machine_info.backprop_bench")
    suite = info.get("backprop_bench") or {}
    for key in ("node", "cpu"):
        _expect(suite.get("machine") or {}, key, str, "machine_info.backprop_bench.machine")
    _expect(suite, "jax_devices", list, "machine_info.backprop_bench")
    if not all(isinstance(d, str) for d in suite.get("jax_devices") or []):
        raise UserError("machine_info.backprop_bench.jax_devices holds something other than text")


# A JSON escape of a UTF-16 surrogate: the text can hold a lone one, which no file or terminal can show.
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _invalid_text(value, where: str = "") -> str | None:
    """Where in `value` (parsed JSON) a string holds a lone surrogate, e.g. 'machine_info.node'; None if nowhere."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return where or "the file"
    elif isinstance(value, dict):
        for key, item in value.items():
            found = _invalid_text(key, f"{where} key") or _invalid_text(item, f"{where}.{key}".lstrip("."))
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if found := _invalid_text(item, f"{where}[{index}]"):
                return found
    return None


def read_json(path: Path):
    """A saved file's JSON; ValueError saying why when it cannot be read, or holds text that is not Unicode."""
    try:
        text = path.read_text()
        value = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as err:  # JSONDecodeError is a ValueError
        raise UserError(getattr(err, "strerror", None) or err) from None
    except RecursionError:
        raise UserError("nested too deeply") from None
    if SURROGATE_ESCAPE.search(text) and (where := _invalid_text(value)):
        raise UserError(f"{where} holds text that is not valid Unicode (a lone surrogate)")
    return value


def _parse(path: Path) -> dict:
    """The run in `path`; ValueError saying why when it is not a readable run."""
    run = read_json(path)
    validate(run)
    return store.migrate_run(run)


def _read(path: Path) -> dict | None:
    """The run in `path`, or None after a one-line warning when it is not a readable run."""
    try:
        return _parse(path)
    except ValueError as err:
        warnings.warn(f"skipping {path}: {err}", SkippedRun, stacklevel=3)
        return None


def _run_id(path: Path, results: Path) -> str:
    """machine-folder/NNNN_commit_date for a run under results/ (unique there), else its path."""
    try:
        return str(path.resolve().relative_to(results.resolve()).with_suffix(""))
    except ValueError:
        return str(path)


def run_status(run: dict) -> str:
    """'' for a complete run of the whole suite, else what it lacks, e.g. 'incomplete: interrupted, 3 of 6 ran'."""
    status = run.get("backprop_bench_run") or {}
    if status.get("complete") is False:
        counted = f", {status['ran']} of {status['collected']} ran" if "ran" in status and "collected" in status else ""
        return f"incomplete: {status.get('why', 'ended early')}{counted}"
    return f"partial: {status['partial']}" if status.get("partial") else ""


def load_runs(paths: list[Path] | None = None, results: Path | None = None) -> pd.DataFrame:
    """Every benchmark of every run as one tidy row: run, machine, commit, datetime, names, stats, extra info.

    `paths` default to every run file under `results` (default: store.results_dir()).
    `data` holds the raw round timings in seconds where the run saved them; `status` is
    run_status's text.
    """
    results = store.results_dir() if results is None else results
    rows, seen = [], set()
    for path in map(Path, store.run_files(results) if paths is None else paths):
        if path.resolve() in seen or (run := _read(path)) is None:
            continue
        seen.add(path.resolve())
        rows += _rows(path, run, results)
    return _frame(rows)


def _rows(path: Path, run: dict, results: Path) -> list[dict]:
    """One row per benchmark of a validated run."""
    machine = store.machine_of(run["machine_info"])
    common = {
        "run": _run_id(path, results), "path": str(path), "machine": store.machine_label(machine),
        "machine_id": store.machine_id(machine), "setup": _setup(run["machine_info"]),
        "hardware": _hardware(run["machine_info"]),
        "commit": (run.get("commit_info") or {}).get("id", ""), "datetime": run["datetime"],
        "status": run_status(run), "wall_s": (run.get("backprop_bench_run") or {}).get("wall_s"),
    }
    # extra_info first: a key of its own named like a field of the row ('path', 'median') never replaces it.
    return [{**(bench.get("extra_info") or {}), **common, "benchmark": bench["name"], "group": bench.get("group") or "",
             **{k: bench["stats"].get(k) for k in STATS}, "data": bench["stats"].get("data")}
            for bench in run["benchmarks"]]


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["datetime"] = pd.to_datetime(frame["datetime"], errors="coerce", utc=True)
    return frame


def resolve_run(frame: pd.DataFrame, run: str | None) -> str:
    """The run id in `frame` named by a number (1, 0001), an id, a file name or a path; default the latest
    complete run on this machine (else of any machine)."""
    if frame.empty:
        raise UserError("no saved runs to choose from")
    runs = frame.drop_duplicates("run")
    if run is None:
        complete = runs[runs["status"] == ""]
        if complete.empty:
            raise UserError("every saved run is incomplete or partial; name one by its number")
        here = complete[complete["machine_id"] == store.machine_id(store.this_machine())]
        return (here if len(here) else complete).sort_values("datetime")["run"].iloc[-1]
    matches = _matching(runs["path"].map(Path).tolist(), run)
    if not matches:
        raise UserError(f"no saved run {run!r} among {_describe(runs['path'].map(Path).tolist())}")
    return runs.set_index("path").loc[str(matches[0]), "run"]


def _matching(paths: list[Path], name: str) -> list[Path]:
    """The run files that `name` (a number, 'machine/number', id, file name or path) names; this machine's
    first when several."""
    stem, folder, number = Path(name).stem, Path(name).parent.name, Path(name).name
    for matches in (
        [p for p in paths if p.resolve() == Path(name).resolve()] if name.endswith(".json") else [],
        # Whole path components only: run 1 is not every run whose time of day ends in 1.
        [p for p in paths if ("/" + p.with_suffix("").as_posix()).endswith("/" + name.removesuffix(".json"))],
        [p for p in paths if p.stem == stem],
        [p for p in paths if number.isdigit() and run_number(p) == int(number) and folder in ("", p.parent.name)],
    ):
        if len(matches) > 1:
            here = [p for p in matches if p.parent.name == store.machine_id(store.this_machine())]
            if len(here) != 1:
                raise UserError(f"run {name!r} is ambiguous: {', '.join(map(str, matches))}; give its path")
            return here
        if matches:
            return matches
    return []


def run_number(path: Path) -> int | None:
    """NNNN of a run file named NNNN_..., else None."""
    match = store.RUN_NAME.match(path.name)
    return int(match[1]) if match else None


def run_label(run: str, with_machine: bool = False) -> str:
    """A short name for a run: its number ('0003'; 'box/0003' with its machine folder), else its file's stem."""
    path = Path(run)
    number = run_number(path.with_suffix(".json"))
    short = f"{number:04d}" if number is not None else path.stem
    return f"{path.parent.name}/{short}" if with_machine and number is not None else short


def _describe(paths: list[Path]) -> str:
    """A short account of the saved runs for an error message, however many there are."""
    numbers = sorted(n for n in map(run_number, paths) if n is not None)
    if not numbers:
        return "no numbered runs"
    shown = ", ".join(f"{n:04d}" for n in numbers) if len(numbers) <= 8 else f"{numbers[0]:04d} to {numbers[-1]:04d}"
    return f"{len(paths)} saved run(s), numbered {shown}"


def load(names: list[str | None], results: Path) -> tuple[pd.DataFrame, list[str]]:
    """Read only the runs `names` asks for (None: the latest complete run on this machine): their rows, and their ids.

    A name is a run number, an id, a file name or the path of a run file anywhere.
    """
    files = store.run_files(results)
    chosen, runs = [], {}  # the paths in the order named; each file's run, read once
    for name in names:
        if name is None:
            path, run = _latest(files, results)
        else:
            path = _named(name, files, results)
            try:
                run = _parse(path)
            except ValueError as err:
                raise UserError(f"{path} is not a benchmark run this suite can read: {err}") from None
        chosen.append(path)
        runs.setdefault(path, run)
    frame = _frame([row for path, run in runs.items() for row in _rows(path, run, results)])
    return frame, [frame.loc[frame["path"] == str(path), "run"].iloc[0] for path in chosen]


def _named(name: str, files: list[Path], results: Path) -> Path:
    """The run file `name` names: a path to a file, else a saved run's number, id or file name."""
    path = Path(name)
    if name.endswith(".json") and "/" in name and not path.is_file():
        raise UserError(f"no such run file: {path}")
    if name.endswith(".json") and path.is_file():
        return path
    if matches := _matching(files, name):
        return matches[0]
    raise UserError(f"no saved run {name!r}: " + (f"{_describe(files)} in {results}" if files else _no_runs(results)))


def _no_runs(results: Path) -> str:
    """What to say, and to do, where `results` holds no saved runs."""
    if not results.is_dir():
        return (f"no saved runs: {results} does not exist; run this inside the backprop-bench checkout (cd into it), "
                "or name a folder of saved runs with --results DIR")
    return (f"no saved runs in {results}; time some with `make bench` in the checkout "
            "(or .venv/bin/pytest --benchmark-only)")


def _latest(files: list[Path], results: Path) -> tuple[Path, dict]:
    """The newest complete run of the whole suite on this machine, and its file: its own folder read newest first."""
    if not files:
        raise UserError(_no_runs(results))
    here = sorted((p for p in files if p.parent.name == store.machine_id(store.this_machine())),
                  key=lambda p: run_number(p) or 0, reverse=True)
    skipped = []
    for path in here:
        run = _read(path)
        if run is None:
            continue
        if not (status := run_status(run)):
            if len(skipped) == 1:
                print(f"backprop-bench: note: passing over {skipped[0][0].stem} ({skipped[0][1]}); name it to use it",
                      file=sys.stderr)
            elif skipped:
                print(f"backprop-bench: note: passing over {len(skipped)} newer incomplete or partial runs, the newest "
                      f"{skipped[0][0].stem}; name one to use it", file=sys.stderr)
            return path, run
        skipped.append((path, status))
    # Runs saved by older versions sit in a folder named by platform: read them all and pick by date.
    frame = load_runs(files, results)
    if frame.empty:
        raise UserError(f"no saved runs in {results} can be read; make one with: pytest --benchmark-only")
    path = Path(frame.loc[frame["run"] == resolve_run(frame, None), "path"].iloc[0])
    return path, _parse(path)


def read_records(folder: Path, rows_of: Callable[[Path, object], list[dict]]) -> list[dict]:
    """The rows `rows_of(path, parsed JSON)` makes of every record saved in `folder`, by name; a record that is
    not a regular file or that `rows_of` refuses is skipped with one warning (shared results are untrusted)."""
    rows = []
    for path in sorted(folder.glob("*.json")):
        if not path.is_file():  # a pipe or a device named like a record would hang the read
            warnings.warn(f"skipping {path}: not a regular file", SkippedRun, stacklevel=3)
            continue
        try:
            rows += rows_of(path, read_json(path))
        except (ValueError, KeyError, TypeError, OverflowError) as err:
            reason = f"it lacks the field {err}" if isinstance(err, KeyError) else err
            warnings.warn(f"skipping {path}: {reason}", SkippedRun, stacklevel=3)
    return rows


def load_comparisons(results: Path, folder: str = "ab") -> pd.DataFrame:
    """Every `ab` comparison saved under <results>/ab/ (`noise`'s A/A records: folder="noise"): one row per
    benchmark per comparison; noise records add each benchmark's se and smallest_flagged."""
    frame = pd.DataFrame(read_records(results / folder, _comparison_rows))
    if not frame.empty:
        frame["datetime"] = pd.to_datetime(frame["datetime"], errors="coerce", utc=True)
    return frame


def _side_label(side: dict) -> str:
    """'HEAD (c6e72cfa8739)', or 'working tree' alone where the label already says what it is."""
    commit = str(side["commit"])
    return side["label"] if commit == side["label"] else f"{side['label']} ({commit[:12]})"


def _comparison_rows(path: Path, record) -> list[dict]:
    if (not isinstance(record, dict) or record.get("backprop_bench_ab") not in (1, 2)
            or not isinstance(record["benchmarks"], list)):
        raise UserError("not a backprop-bench ab record")
    _validate_machine_info(record["machine_info"])
    sides = {side: record[side] for side in ("baseline", "candidate")}
    for side, info in sides.items():
        _expect(record, side, dict, "record", required=True)
        for key in ("label", "commit"):
            _expect(info, key, str, side, required=True)
    head = {"comparison": path.stem, "path": str(path), "datetime": record["datetime"],
            "machine": store.machine_label(store.machine_of(record["machine_info"])),
            "threshold": float(record["threshold"]),
            **{side: _side_label(info) for side, info in sides.items()}}
    rows = []
    for index, bench in enumerate(record["benchmarks"]):
        if not isinstance(bench, dict):
            raise UserError(f"benchmarks[{index}] is not an object")
        if bench["verdict"] not in VERDICTS:
            raise UserError(f"unknown verdict {bench['verdict']!r}")
        rows.append({**head, "benchmark": str(bench["name"]), "verdict": bench["verdict"], "pairs": int(bench["pairs"]),
                     **{key: float(bench[key]) for key in ("baseline_median_s", "candidate_median_s", "ratio",
                                                            "ci_low", "ci_high")},
                     **{key: float(bench[key]) for key in ("se", "smallest_flagged") if key in bench}})
    return rows


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
