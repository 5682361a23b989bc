"""pytest set-up shared by tests/ and benchmarks/.

`pytest` runs every benchmark once, untimed, as a smoke test. `pytest --benchmark-only`
times them and saves the run, raw round timings included, as a new numbered file
`results/<machine>/NNNN_<commit>_<date>.json` (see backprop_bench/store/), unless told
otherwise on the command line (`--benchmark-storage`, `--benchmark-save`, `--benchmark-json`).

A run is saved whole or not at all, under a number no other saver holds. A run that
ends early (Ctrl-C, a failed benchmark, -x) is still saved, since its timings are
real, but marked incomplete with the reason: never picked as "the latest", and named
as such by compare and check. A run of a selection (-k, -m, node ids) is marked partial.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import pytest_benchmark.session
from pytest_benchmark.storage.file import FileStorage
from pytest_benchmark.utils import get_tag

from backprop_bench import store
from backprop_bench.store import suite_runs
from backprop_bench.workloads import SWEEPS, custom, workloads

RESULTS = Path(__file__).parent / "results"
EXIT_REASONS = {1: "some benchmarks failed", 2: "interrupted", 3: "pytest failed internally"}


def pytest_addoption(parser):
    """The benchmarks' options. Here, in the root conftest, so that pytest knows them before it reads
    the command line: `--workload SPEC` with a space would otherwise take SPEC for a path."""
    parser.addoption("--sweep", choices=tuple(SWEEPS), default="default",
                     help="size sweep: default (3 sizes, up to 4096 samples x 1024 wide), full (adds 8192 x 2048) "
                          "or gpu (adds 16384 x 2048 and 16384 x 4096, timed on cuda devices only)")
    parser.addoption("--with-compile", action="store_true",
                     help="also time torch.compile on every workload (compiling adds about a minute)")
    parser.addoption("--workload", action="append", default=[], metavar="SPEC",
                     help="add a workload of your own (repeatable): widths, then optional :key=value settings "
                          "(activation, bias, init, lr, epochs, samples, dtype, name), "
                          "e.g. 3,128,128,1:activation=relu:samples=1024:epochs=100:dtype=float32")
    parser.addoption("--workloads-only", action="store_true",
                     help="time only the --workload workloads (and the matmul calibration), not the built-in ones")
    parser.addoption("--memory", action="store_true",
                     help="also measure the peak memory of --workload workloads (a fresh process per benchmark)")


def choose_workloads(config) -> None:
    """Build the chosen workloads once; a bad SPEC or a clash of names stops the run with one line."""
    try:
        extra = [custom(text, memory=config.getoption("memory")) for text in config.getoption("workload")]
    except ValueError as err:
        raise pytest.UsageError(f"--workload {err}") from None
    if config.getoption("workloads_only") and not extra:
        raise pytest.UsageError("--workloads-only needs at least one --workload SPEC")
    chosen = ([] if config.getoption("workloads_only") else workloads(config.getoption("sweep"))) + extra
    names = [w.name for w in chosen]
    if clash := sorted({name for name in names if names.count(name) > 1}):
        raise pytest.UsageError(f"--workload: two workloads are named {', '.join(clash)}; give each its own :name=")
    config.chosen_workloads = chosen


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark reads the options
def pytest_configure(config):
    choose_workloads(config)
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
    if option.benchmark_sort == "min":  # pytest-benchmark's default: sort by the first column shown instead
        option.benchmark_sort = "median"
    # Trap: pytest-benchmark names its machine folder by platform alone (Linux-CPython-3.11-64bit)
    # and offers no hook for it; --benchmark-compare=NNNN looks in that folder, so give it ours.
    pytest_benchmark.session.get_machine_id = lambda: store.machine_id(store.this_machine())
    if (option.benchmark_save or option.benchmark_autosave) and option.benchmark_storage.startswith("file://"):
        try:  # now, not after every benchmark has run
            store.check_writable(Path(option.benchmark_storage[len("file://"):]))
        except ValueError as err:
            raise pytest.UsageError(f"{err}; the run could not be saved "
                                    "(choose another with --benchmark-storage)") from None


def pytest_sessionstart(session):
    session.config._backprop_bench_started = time.monotonic()
    bench = getattr(session.config, "_benchmarksession", None)
    if bench is not None and type(bench.storage) is FileStorage:
        bench.storage = RunStorage(bench.storage, session.config)


class RunStorage(FileStorage):
    """pytest-benchmark's file storage, saving through store/suite_runs.save_run into the machine's own folder."""

    def __init__(self, storage: FileStorage, config: pytest.Config):
        super().__init__(storage.path, storage.logger, storage.default_machine_id)
        self.config = config  # where a failed save is noted for pytest_sessionfinish

    def save(self, output_json, save):
        folder = self.path / store.machine_id(store.machine_of(output_json["machine_info"]))
        try:
            path = suite_runs.save_run(folder, save, output_json)
        except OSError as err:
            self.config._backprop_bench_save_error = f"the run could not be saved in {folder}: {err.strerror or err}"
            return
        self.config._backprop_bench_saved = path
        self.logger.info(f"Saved benchmark data in: {path}")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)  # around pytest-benchmark's saving
def pytest_sessionfinish(session, exitstatus):
    session.config._backprop_bench_exit = int(exitstatus)
    yield
    error = getattr(session.config, "_backprop_bench_save_error", None)
    if error:
        terminal = session.config.pluginmanager.get_plugin("terminalreporter")
        terminal.write_line(f"backprop-bench: error: {error}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's table
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The end of a run leads somewhere: why nothing ran, why tests were skipped, and what to run next."""
    write = terminalreporter.write_line
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and (config.option.keyword or config.option.markexpr):
        chosen = " ".join(f"{flag} {value!r}" for flag, value in (("-k", config.option.keyword),
                                                                  ("-m", config.option.markexpr)) if value)
        write(f"backprop-bench: nothing matches {chosen}; list the names with: "
              f".venv/bin/pytest --benchmark-only --collect-only -q")
        return
    saved = getattr(config, "_backprop_bench_saved", None)
    if exitstatus == pytest.ExitCode.INTERRUPTED and saved is not None:
        write(f"backprop-bench: interrupted; the benchmarks that finished are kept in {saved}, marked incomplete "
              "(compare and check pass over it unless you name it)")
    if skipped := terminalreporter.stats.get("skipped", []):
        write("backprop-bench: skipped " + skip_reasons(skipped) + " (the reason of each: add -rs)")
    bench = getattr(config, "_benchmarksession", None)
    if bench is not None and bench.benchmarks and not config.option.benchmark_disable:
        write("backprop-bench: the table above times one whole training per round (every epoch); for time per "
              "epoch, backends side by side, run: .venv/bin/backprop-bench compare")
        write("backprop-bench: next: .venv/bin/backprop-bench report (one HTML page of this run), "
              "backprop-bench ab HEAD (your changes against HEAD, interleaved)")


def skip_reasons(reports) -> str:
    """'343: 99 device 'cuda' is not available to torch here, 91 tests, not benchmarks, ...': each reason's count."""
    counts: dict[str, int] = {}
    for report in reports:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ").split(";")[0].split(" (")[0]
        reason = "tests, not benchmarks" if reason == "Skipping non-benchmark" else reason
        counts[reason] = counts.get(reason, 0) + 1
    shown = sorted(counts.items(), key=lambda item: -item[1])
    return f"{len(reports)}: " + ", ".join(f"{n} {reason}" for reason, n in shown[:4]) + (
        f", {sum(n for _, n in shown[4:])} for {len(shown) - 4} other reason(s)" if len(shown) > 4 else "")


FINISHED: set[str] = set()  # node ids of the tests that ran to an end: passed, failed or skipped


def pytest_runtest_logreport(report):
    if report.when == "call" or report.skipped:
        FINISHED.add(report.nodeid)


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Mark the run complete or not, and partial when only a selection of the benchmarks ran."""
    items = [item for item in getattr(config, "_backprop_bench_items", [])
             if "benchmark" in item.fixturenames and not item.get_closest_marker("skip")]  # those meant to run
    exit_code = getattr(config, "_backprop_bench_exit", 0)
    unfinished = sum(item.nodeid not in FINISHED for item in items)
    status = {"complete": exit_code == 0 and not unfinished, "collected": len(items), "ran": len(benchmarks),
              "wall_s": round(time.monotonic() - config._backprop_bench_started, 1)}
    if not status["complete"]:
        # An interrupt can also end pytest with status 0 (seen when its own handling of Ctrl-C failed):
        # the benchmarks that never finished tell.
        status["why"] = EXIT_REASONS.get(exit_code, f"pytest exit status {exit_code}") if exit_code else (
            f"stopped before {unfinished} benchmark(s) finished")
    selection = [f"-k {config.option.keyword}"] if config.option.keyword else []
    selection += [f"-m {config.option.markexpr}"] if config.option.markexpr else []
    selection += [arg for arg in config.args if "::" in arg or Path(arg).name.startswith("bench_")]
    selection += ["--workloads-only"] if config.getoption("workloads_only") else []  # no built-in workloads
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
