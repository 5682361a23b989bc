"""pytest set-up shared by tests/ and benchmarks/.

`pytest` runs every benchmark once, untimed, as a smoke test. `pytest --benchmark-only`
times them and saves the run, raw round timings included, as a new numbered file
`results/<machine>/NNNN_<commit>_<date>.json` (see backprop_bench/store.py), unless told
otherwise on the command line (`--benchmark-storage`, `--benchmark-save`, `--benchmark-json`).

A run is saved whole or not at all, under a number no other saver holds. A run that
ends early (Ctrl-C, a failed benchmark, -x) is still saved, since its timings are
real, but marked incomplete with the reason: never picked as "the latest", and named
as such by compare and check. A run of a selection (-k, -m, node ids) is marked partial.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from pytest_benchmark.storage.file import FileStorage
from pytest_benchmark.utils import get_tag

from backprop_bench import store

RESULTS = Path(__file__).parent / "results"
EXIT_REASONS = {1: "some benchmarks failed", 2: "interrupted", 3: "pytest failed internally"}


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark reads the options
def pytest_configure(config):
    option = config.option
    if not (option.benchmark_only or option.benchmark_enable):
        option.benchmark_disable = True
        return
    if option.benchmark_storage == "file://./.benchmarks":  # pytest-benchmark's default
        option.benchmark_storage = f"file://{RESULTS}"
    if not (option.benchmark_save or option.benchmark_json):
        option.benchmark_autosave = get_tag()  # NNNN_<commit>_<date>.json, as --benchmark-autosave names it
    option.benchmark_save_data = True
    if not option.benchmark_columns:  # the columns a comparison needs, narrow enough for a terminal
        option.benchmark_columns = ["median", "iqr", "min", "rounds"]
    if (option.benchmark_save or option.benchmark_autosave) and option.benchmark_storage.startswith("file://"):
        try:  # now, not after every benchmark has run
            store.check_writable(Path(option.benchmark_storage[len("file://"):]))
        except ValueError as err:
            raise pytest.UsageError(f"{err}; the run could not be saved (choose another with --benchmark-storage)")


def pytest_sessionstart(session):
    session.config._backprop_bench_started = time.monotonic()
    bench = getattr(session.config, "_benchmarksession", None)
    if bench is not None and type(bench.storage) is FileStorage:
        bench.storage = RunStorage(bench.storage.path, bench.storage.logger, store.machine_id(store.this_machine()))
        bench.storage.config = session.config


class RunStorage(FileStorage):
    """pytest-benchmark's file storage, saving through store.save_new into the machine's own folder."""

    config: pytest.Config

    def save(self, output_json, save):
        folder = self.path / store.machine_id(store.machine_of(output_json["machine_info"]))
        text = json.dumps(output_json, indent=4, default=str)
        try:
            path = store.save_new(folder, save, text)
        except OSError as err:
            self.config._backprop_bench_save_error = f"the run could not be saved in {folder}: {err.strerror or err}"
            return
        self.logger.info(f"Saved benchmark data in: {path}")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)  # around pytest-benchmark's saving
def pytest_sessionfinish(session, exitstatus):
    session.config._backprop_bench_exit = int(exitstatus)
    yield
    error = getattr(session.config, "_backprop_bench_save_error", None)
    if error:
        session.config.pluginmanager.get_plugin("terminalreporter").write_line(f"backprop-bench: error: {error}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Mark the run complete or not, and partial when only a selection of the benchmarks ran."""
    items = [item for item in getattr(config, "_backprop_bench_items", [])
             if "benchmark" in item.fixturenames and not item.get_closest_marker("skip")]  # those meant to run
    exit_code = getattr(config, "_backprop_bench_exit", 0)
    status = {"complete": exit_code == 0, "collected": len(items), "ran": len(benchmarks),
              "wall_s": round(time.monotonic() - config._backprop_bench_started, 1)}
    if exit_code:
        status["why"] = EXIT_REASONS.get(exit_code, f"pytest exit status {exit_code}")
    selection = [f"-k {config.option.keyword}"] if config.option.keyword else []
    selection += [f"-m {config.option.markexpr}"] if config.option.markexpr else []
    selection += [arg for arg in config.args if "::" in arg or Path(arg).name.startswith("bench_")]
    if selection or getattr(config, "_backprop_bench_deselected", 0):
        status["partial"] = " ".join(selection) or "some benchmarks deselected"
    output_json["backprop_bench_run"] = status


def pytest_collection_modifyitems(config, items):
    """Tests marked slow run only when asked for with -m slow; skipped, not deselected, so a run stays whole."""
    if "slow" not in (config.option.markexpr or ""):
        for item in items:
            if "slow" in item.keywords:
                item.add_marker(pytest.mark.skip(reason="slow: run with -m slow"))


def pytest_collection_finish(session):
    session.config._backprop_bench_items = list(session.items)


def pytest_deselected(items):
    if items:
        items[0].config._backprop_bench_deselected = len(items)
