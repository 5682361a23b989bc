"""Suite runs on disk: the JSON files `pytest --benchmark-only` saves under results/, read back as one pandas table.

A run records the version of its layout, `backprop_bench_schema` (RUN_SCHEMA), and
`migrate_run` brings an older run to the current one as it is read, so every reader sees
one layout; a run from a newer version is refused in one line. Then: validation (shared
results are untrusted: a file that is not such a run is skipped with one warning naming
it, never changed), naming runs by number, id or path, and choosing the latest complete one.
"""

from __future__ import annotations

import json
import sys
import warnings
from dataclasses import fields
from datetime import datetime
from pathlib import Path

import pandas as pd

from backprop_bench import backends, store
from backprop_bench.errors import UserError
from backprop_bench.timing import BenchmarkId

STATS = ["median", "mean", "min", "max", "stddev", "q1", "q3", "iqr", "rounds", "total"]

# extra_info keys the readers compute with, and the types they must have.
NUMBERS = ("epochs", "epoch_flops", "gflops", "time_per_epoch_s", "first_call_s", "first_setup_s", "setup_s",
           "compile_s", "peak_memory_bytes",
           "working_set_bytes", "samples", "flops", "lr", "final_loss")

IDENTITY = tuple(field.name for field in fields(BenchmarkId))  # a training benchmark's, saved in extra_info

TEXTS = ("backend", "variant", "device", "dtype", "workload", "activation", "init", "compiles_in", "handwritten")

# The layout of a saved suite run. 1 (unrecorded): a reference's backend was "reference-<its name>";
# 2: its backend is "reference" and its variant names it, like every other benchmark's identity.
RUN_SCHEMA = 2


SCHEMA_KEY = "backprop_bench_schema"


def save_run(folder: Path, suffix: str, run: dict) -> Path:
    """Save a suite run (pytest-benchmark's JSON) with its schema version, as save_new does."""
    return store.save_new(folder, suffix, json.dumps({**run, SCHEMA_KEY: RUN_SCHEMA}, indent=4, default=str))


def migrate_run(run: dict) -> dict:
    """The run in the current schema (in place); UserError for one saved by a newer backprop-bench."""
    schema = run.get(SCHEMA_KEY, 1)
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
        raise UserError(f"{SCHEMA_KEY} is {schema!r}, not a schema version")
    if schema > RUN_SCHEMA:
        raise UserError(f"saved by a newer backprop-bench (schema {schema}; this one reads up to {RUN_SCHEMA}): "
                        "upgrade it to read this run")
    if schema < 2:
        for bench in run["benchmarks"]:
            info = bench.get("extra_info") or {}
            if info.get("reference") and str(info.get("backend", "")).startswith("reference-"):
                info["backend"] = "reference"
    run[SCHEMA_KEY] = RUN_SCHEMA
    return run


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


def validate(run) -> None:
    """Raise ValueError naming the first thing that makes `run` unreadable as a pytest-benchmark run."""
    if not isinstance(run, dict) or "benchmarks" not in run or "machine_info" not in run:
        raise UserError("not a pytest-benchmark run")
    store.expect(run, "machine_info", dict, "run", required=True)
    store.expect(run, "commit_info", dict, "run")
    store.expect(run.get("commit_info") or {}, "id", str, "commit_info")
    store.expect(run, "benchmarks", list, "run", required=True)
    store.expect(run, "backprop_bench_run", dict, "run")
    if not store.is_number((run.get("backprop_bench_run") or {}).get("wall_s", 0)):
        raise UserError("backprop_bench_run.wall_s is not a number")
    store.validate_machine_info(run["machine_info"])
    try:
        datetime.fromisoformat(run["datetime"])
    except (KeyError, TypeError, ValueError):
        raise UserError(f"its datetime {run.get('datetime')!r} is not a date and time") from None
    for index, bench in enumerate(run["benchmarks"]):
        where = f"benchmarks[{index}]"
        if not isinstance(bench, dict):
            raise UserError(f"{where} is not an object")
        store.expect(bench, "name", str, where, required=True)
        store.expect(bench, "group", str, where)
        store.expect(bench, "stats", dict, where, required=True)
        store.expect(bench, "extra_info", dict, where)
        stats, extra = bench["stats"], bench.get("extra_info") or {}
        if not (store.is_number(stats.get("median")) and stats["median"] > 0):
            raise UserError(f"{bench['name']}: median {stats.get('median')!r} is not a positive number")
        data = stats.get("data")
        if data is not None and not (isinstance(data, list) and data
                                     and all(store.is_number(t) and t >= 0 for t in data)):
            raise UserError(f"{bench['name']}: its round timings are not a list of numbers")
        for key in [k for k in STATS if k in stats and stats[k] is not None] + [k for k in NUMBERS if k in extra]:
            value = stats.get(key, extra.get(key))
            if value is not None and not store.is_number(value):
                raise UserError(f"{bench['name']}: {key} {value!r} is not a number")
        for key in TEXTS:
            store.expect(extra, key, str, f"{bench['name']}.extra_info")
        for text in [bench["name"], bench.get("group") or ""] + [extra.get(key) or "" for key in TEXTS]:
            if "\n" in text or "\r" in text:
                raise UserError(f"{bench['name']!r}: a name or label with a line break")
        if extra.get("workload") is not None and not (
                "[" in bench["name"] and store.is_number(extra.get("epochs")) and extra["epochs"] > 0):
            raise UserError(f"{bench['name']}: a training benchmark needs a name 'workload[case]' and its epochs")
        if extra.get("workload") is not None and (missing := [key for key in IDENTITY if not extra.get(key)]):
            raise UserError(f"{bench['name']}: a training benchmark needs its identity in extra_info; "
                            f"it lacks {', '.join(missing)}")


def _parse(path: Path) -> dict:
    """The run in `path`; ValueError saying why when it is not a readable run."""
    run = store.read_json(path)
    validate(run)
    return migrate_run(run)


def _read(path: Path) -> dict | None:
    """The run in `path`, or None after a one-line warning when it is not a readable run."""
    try:
        return _parse(path)
    except ValueError as err:
        warnings.warn(f"skipping {path}: {err}", store.SkippedRun, stacklevel=3)
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
