"""The `backprop-bench` command."""

from __future__ import annotations

import argparse
import errno
import io
import json
import math
import os
import re
import shlex
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from backprop_bench import (
    ab,
    backends,
    bisection,
    check,
    compare,
    formatting,
    history,
    noise,
    plot,
    report,
    store,
    train,
)
from backprop_bench.errors import UserError
from backprop_bench.store import records, suite_runs

EXIT_NOT_SAVED = 4  # the work is done and shown, but its record could not be saved (as the suite's own save)


class UsageError(UserError):
    """A mistake in the command line."""


# Control characters (ANSI escape sequences start with one) that a terminal would obey, all but tab and
# newline, and the bidirectional overrides that reorder what a line shows.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with each control character shown escaped (\\x1b), so that a run's strings cannot drive the terminal."""
    return CONTROL.sub(lambda match: match[0].encode("unicode_escape").decode("ascii"), text)


class Printable(io.TextIOBase):
    """A text stream that writes what it is given through `printable`: the commands' one way to the terminal."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(printable(text))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()


@contextmanager
def printable_output() -> Iterator[None]:
    """stdout and stderr through Printable for the block."""
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = Printable(sys.stdout), Printable(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = streams


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        if message.endswith("expected one argument"):  # argparse takes a value such as -5% for an option
            message += " (a value that starts with '-' must be joined to its option with '=')"
        raise UsageError(f"{message} (see {self.prog} --help)")

    def format_help(self):  # a help text given as a function is computed only when help is shown
        for action in self._actions:
            if callable(action.help):
                action.help = action.help()
        return super().format_help()


def installed_version() -> str:
    try:
        return metadata.version("backprop-bench")
    except metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return "(not installed)"


def out_of_memory(err: Exception) -> bool:
    """Whether a framework's error is running out of memory: MemoryError, torch's, XLA's RESOURCE_EXHAUSTED."""
    text = str(err)
    return isinstance(err, MemoryError) or any(
        sign in text for sign in ("out of memory", "RESOURCE_EXHAUSTED", "can't allocate memory"))


def run_backends(args) -> int:
    """List every backend with its variants and devices, or why it is unavailable."""
    cases = backends.cases()
    runnable = {(name, variant) for name, variant, _, why in cases if not why}
    for name, reason in backends.available().items():
        if reason:
            print(f"{name}: unavailable: {reason}")
            continue
        found = backends.variants(name)
        devices = next(iter(found.values())).devices()
        print(f"{name}: variants {', '.join(found)}; devices {', '.join(devices)}")
        for case_name, variant, device, why in cases:
            # A variant that cannot use a device that is here, or that can run nowhere here.
            if case_name == name and why and (device in devices or (name, variant) not in runnable):
                print(f"  {variant} on {device}: unavailable: {why}")
    return 0


def shared_options(written: str = "printed") -> tuple[Parser, Parser]:
    """The options every report command shares: where the saved runs are, and where to write."""
    results = Parser(add_help=False)
    results.add_argument("--results", metavar="DIR",
                         help="the saved runs (default: results/ of the checkout holding the current directory, "
                              "else ./results)")
    output = Parser(add_help=False)
    output.add_argument("--output", metavar="FILE", help=f"write the output to FILE (default: {written}); "
                                                           "never onto or among the saved runs")
    output.add_argument("--force", action="store_true", help="replace --output FILE if it exists")
    return results, output


def chosen_places(args) -> tuple[Path, Path | None]:
    """The results folder and the --output file the shared options name, the output checked before any work."""
    results = store.results_dir(args.results)
    output = Path(args.output) if args.output else None
    if output is not None:
        store.check_output(output, results, args.force)
    return results, output


def add_run_parsers(commands) -> None:
    results, output = shared_options()
    p = commands.add_parser("compare", parents=[results, output], epilog=compare.COLUMNS,
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            help="saved runs' backends side by side, per workload, a column group per run")
    p.add_argument("runs", nargs="*", metavar="RUN",
                   help="run number, id or JSON path; several are shown side by side "
                        "(default: the latest complete run)")
    p.add_argument("--format", choices=("table", "markdown", "csv"), default="table", help="(default table)")
    p.add_argument("--normalize", choices=check.NORMALIZE,
                   help="show each time relative to its own run's NumPy backend or matmul calibration "
                        "(needed for runs of different machines)")
    p.add_argument("--plot", action="store_true", help="also draw each run's figures, as `plot` does")
    p.set_defaults(run=run_compare)
    p = commands.add_parser("plot", parents=[results], help="draw saved runs' figures under <results>/plots/<run>/")
    p.add_argument("runs", nargs="*", metavar="RUN",
                   help="run number, id or JSON path; each gets its figures (default: the latest complete run)")
    p.set_defaults(run=run_compare, plot=True, format=None, output=None, normalize=None)
    p = commands.add_parser("check", parents=[results], epilog=CHECK_EXIT,
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            help="flag benchmarks that slowed significantly against a baseline run")
    p.add_argument("--baseline", required=True, metavar="RUN", help="run number, id or JSON path (required)")
    p.add_argument("--against", metavar="RUN", help="the run to check (default: the latest complete run)")
    p.add_argument("--threshold", default="5%", help="slow-down that counts, e.g. 5%% (default) or 0.05")
    p.add_argument("--alpha", type=float, default=0.01,
                   help="significance level of the Mann-Whitney U test, between 0 and 1 (default 0.01)")
    p.add_argument("--normalize", choices=check.CHECK_BY, default="reference",
                   help="each time relative to, in its own run: its reference (the C loop for the presets, the "
                        "fastest matmul calibration otherwise; the default, as history), the NumPy backend, the "
                        "matmul calibration, or none (raw seconds)")
    p.set_defaults(run=run_check)
    p = commands.add_parser("history", parents=[results], epilog=HISTORY_EXIT,
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            help="find where benchmarks stepped up or down across this machine's saved runs")
    p.add_argument("--only", action="append", default=[], metavar="TEXT",
                   help="benchmarks whose name contains TEXT (repeatable; default all)")
    p.add_argument("--threshold", default="5%", help="smallest step reported, e.g. 5%% (default) or 0.05")
    p.set_defaults(run=run_history)


HISTORY_EXIT = """exit status: 0 no benchmark's latest level is a slowdown, 1 one is (for a nightly job), \
2 a bad argument.
Times are divided by a reference timed in the same run (the C loop for the presets, the matmul
calibration for the rest), so that the machine's own drift cancels; see docs/regressions.md, "history"."""


def run_history(args) -> int:
    threshold = parse_threshold(args.threshold)
    results = store.results_dir(args.results)
    rows, points = history.history(suite_runs.load_runs(results=results), args.only, threshold)
    print(f"{rows['benchmark'].nunique()} benchmarks over {rows['run'].nunique()} saved runs of this machine, "
          f"steps past {threshold:.0%} holding at least {history.MIN_SEGMENT} runs:")
    print(history.table(points), end="")
    slower = history.regressed(points)
    if slower:
        print(f"{len(slower)} benchmark(s) slower at their latest level: {', '.join(p['benchmark'] for p in slower)}")
    return 1 if slower else 0


def add_report_parser(commands) -> None:
    results, output = shared_options(written="<results>/pages/<run>.html")
    p = commands.add_parser("report", parents=[results, output],
                            help="write one self-contained HTML page of saved runs")
    p.add_argument("runs", nargs="*", metavar="RUN",
                   help="run number, id or JSON path; several are shown side by side "
                        "(default: the latest complete run)")
    p.set_defaults(run=run_report)


def run_report(args) -> int:
    """Write the page of the chosen runs beside the history of every saved run.

    Nothing is written when anything is wrong.
    """
    results, output = chosen_places(args)
    with warnings.catch_warnings():  # load_runs below reads every file again and warns of each bad one once
        warnings.simplefilter("ignore", store.SkippedRun)
        chosen, runs = suite_runs.load(args.runs or [None], results)
    frame = suite_runs.load_runs(store.run_files(results) + [Path(path) for path in chosen["path"].unique()], results)
    text = report.build(frame, list(dict.fromkeys(runs)), records.load_comparisons(results),
                        records.load_comparisons(results, records.NOISE), records.load_bisections(results))
    if output is None:
        output = report.default_output(results, runs)  # derived from the runs: replaced on every call
        store.check_writable(output.parent)
    store.write_output(output, text)
    print(f"wrote {output} ({len(text.encode()) / 1e6:.1f} MB)")
    return 0


def parse_threshold(text: str) -> float:
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise UsageError(f"--threshold takes a number like 5% or 0.05, got {text!r}") from None
    if not 0 <= value < 10:
        raise UsageError(f"--threshold must be between 0% and 1000%, got {text!r}")
    return value


def run_compare(args) -> int:
    results, output = chosen_places(args)
    frame, runs = suite_runs.load(args.runs or [None], results)
    runs = list(dict.fromkeys(runs))
    firsts = frame.drop_duplicates("run").set_index("run").loc[runs]
    several_machines = firsts["machine"].nunique() > 1
    if several_machines and args.normalize is None and args.format is not None:
        # Absolute times of two machines side by side mix the machines' speed with the code's.
        raise UsageError(f"the runs come from different machines ({', '.join(firsts['machine'].unique())}); "
                         f"show each time relative to its own run with --normalize {'|'.join(check.NORMALIZE)}")
    tables = {}
    for run in runs:
        tables[suite_runs.run_label(run, several_machines)] = table = compare.comparison(frame, run, args.normalize)
        if table.empty:
            raise UserError(f"run {run} holds no training benchmarks")
    if args.format is not None:
        text = compare.render(tables, args.format, args.normalize)
        if args.format != "csv":
            text = _compare_header(firsts, tables, args.normalize) + f"\n{text}"
        if output is not None:
            store.write_output(output, printable(text))  # a file someone will `cat`
            print(f"wrote {output}")
        else:
            print(text, end="")
    for run, table in zip(runs, tables.values()) if args.plot else ():
        folder = results / "plots" / (Path(run).with_suffix("").name if Path(run).is_absolute() else run)
        store.check_writable(folder)
        for path in plot.draw(table, frame[frame["run"] == run], folder):
            print(f"wrote {path} (and .svg)")
    return 0


def _compare_header(firsts, tables: dict, normalize: str | None) -> str:
    """Which run is which column group, where each ran, what it lacks; and the unit of normalized times."""
    lines = [f"run {run}" + (f" ({status})" if status else "") + f" on {machine}"
             + (f": columns {label}" if len(tables) > 1 else "")
             for (run, status, machine), label in zip(firsts[["status", "machine"]].itertuples(), tables)]
    if normalize == "numpy":
        lines.append("normalized: times only as vs numpy, each against its own run's NumPy backend")
    elif normalize == "matmul":
        lines.append("normalized: time / matmul is each time per epoch / its own run's fastest matmul calibration")
    return "\n".join(lines + ["(columns: backprop-bench compare --help)"]) + "\n"


def run_check(args) -> int:
    threshold = parse_threshold(args.threshold)
    if not 0 < args.alpha < 1:
        raise UsageError(f"--alpha must be between 0 and 1 (exclusive), got {args.alpha}")
    results = store.results_dir(args.results)
    frame, [baseline, current] = suite_runs.load([args.baseline, args.against], results)
    if baseline == current:
        raise UserError(f"--baseline and --against both name run {current}; name two different runs")
    spread = None
    if args.normalize == "reference":  # every saved run of the two machines: how far each benchmark moves on its own
        with warnings.catch_warnings():  # suite_runs.load warned of each unreadable file already
            warnings.simplefilter("ignore", store.SkippedRun)
            saved = suite_runs.load_runs(latest_runs(results, frame), results)
        spread = check.run_to_run([saved, frame], list(frame["machine_id"].unique()))
    table = check.regressions(frame, baseline, current, threshold, args.alpha, args.normalize, spread)
    unit = {"none": "seconds", "reference": "reference units (seconds where a run has no reference)"}.get(
        args.normalize, "relative to " + args.normalize)
    print(f"baseline {baseline}, current {current}: medians in {unit}, threshold {threshold:.0%}, alpha {args.alpha}")
    for run in (baseline, current):
        if status := frame.loc[frame["run"] == run, "status"].iloc[0]:
            print(f"note: run {run} is {status}")
    print("setup changes: " + (", ".join(check.setup_changes(frame, baseline, current)) or "none"))
    print(drift_line(frame, baseline, current, threshold))
    for side, names in check.unshared(frame, baseline, current).items():
        if names:
            print(f"only in {side} ({len(names)}, not compared): {', '.join(names)}")
    print(table.to_string(index=False, na_rep="?", formatters={
        "baseline": "{:.4g}".format, "current": "{:.4g}".format, "ratio": "{:.3f}".format, "p_value": "{:.2g}".format,
        "machine": "{:.2f}x".format, "spread": lambda v: f"{100 * v:.1f}%"}))
    print("machine: how far the benchmark's reference moved between the runs (current / baseline); spread: how far "
          f"its ratio moves between two runs of unchanged code here (one standard deviation, from the saved runs of "
          f"this machine; ? under {check.MIN_RUNS} runs); a change counts past {check.SPREAD_Z:.0f} of them")
    counts = table["verdict"].value_counts()
    print(f"{counts.get('regression', 0)} regression(s), {counts.get('improvement', 0)} improvement(s), "
          f"{counts.get('undecided', 0)} undecided among {len(table)} benchmarks in both runs")
    if counts.get("undecided", 0):
        print(undecided_line(frame, baseline, current, table))
    return 1 if counts.get("regression", 0) else 3 if counts.get("undecided", 0) else 0


def latest_runs(results: Path, frame) -> list[Path]:
    """The latest check.SPREAD_RUNS saved runs in the folder of each run of `frame` (a folder per machine)."""
    folders = {Path(path).resolve().parent for path in frame["path"]}
    files = store.run_files(results)
    return [path for folder in folders
            for path in [p for p in files if p.resolve().parent == folder][-check.SPREAD_RUNS:]]


CHECK_EXIT = """exit status: 0 no regression, 1 a regression, 2 a bad argument,
  3 no regression, but a benchmark undecided: the saved runs cannot tell its code from the machine.
verdicts: regression / improvement (as ab names them): the median moved past the threshold, a Mann-Whitney
  U test on the rounds finds it significant, and (--normalize reference) it moved past 5 run-to-run standard deviations
  of the benchmark on this machine; undecided: the first two, but not the third (or that spread is unknown:
  under 6 saved runs), or the benchmark's reference moved past the threshold too; same: otherwise.
  Times are read against a reference timed in the same run (--normalize)."""


def undecided_line(frame, baseline: str, current: str, table) -> str:
    """What the undecided verdicts mean, and the `ab` command that can decide them."""
    revisions = [run_revision(frame, run, side) for run, side in ((baseline, "BASELINE"), (current, "CANDIDATE"))]
    names = table.loc[table["verdict"] == "undecided", "benchmark"]
    only = " ".join(f"--only {shlex.quote(name)}" for name in names) if len(names) <= 3 else ""
    said = ("undecided: these moved no further than they move from run to run on their own (or too few saved "
            "runs show how far that is), or the machine moved past the threshold, so the saved runs cannot tell ")
    if revisions[0] == revisions[1]:
        return (f"{said}a change of setup from the machine's (both timed commit {revisions[0]}); time two environments "
                f"interleaved with: backprop-bench ab {revisions[0]} --candidate-python PYTHON {only}".rstrip())
    return (f"{said}the code from the machine; time both commits interleaved with: "
            f"backprop-bench ab {revisions[0]} --candidate {revisions[1]} {only}".rstrip())


def timing_options() -> Parser:
    """The options of every command that times two sides interleaved (ab, noise)."""
    timing = Parser(add_help=False)
    timing.add_argument("--threshold", default="5%", help="change that counts, e.g. 5%% (default) or 0.05")
    timing.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="benchmarks whose name contains TEXT, e.g. seed- (repeatable; default all)")
    timing.add_argument("--budget", type=parse_duration, metavar="TIME",
                        help=f"whole-run time with start-up, e.g. 300, 90s or 10m "
                             f"(default {ab.SECONDS_PER_BENCHMARK:g}s a benchmark)")
    timing.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    timing.add_argument("--processes", type=int, default=ab.PROCESSES, metavar="N",
                        help="worker processes per side: blocks, the unit the interval is over "
                             f"(default {ab.PROCESSES})")
    timing.add_argument("--format", choices=("table", "markdown", "json"), default="table",
                        help="(default table; markdown puts changed benchmarks first, as for a CI job summary)")
    return timing


AB_EXIT = """exit status: 0 no regression, 1 a regression, 2 a bad argument, 4 shown but not saved, 130 interrupted.
verdicts: regression / improvement past the threshold; slower / faster: an interval wholly above / below 1
  but not shown past the threshold; same: an interval holding 1 within the threshold on both sides;
  inconclusive: one reaching past the threshold.
ratio: candidate / baseline, a robust geometric mean of the paired ratios (Huber's; see ab.interval)."""


def add_ab_parser(commands) -> None:
    results, output = shared_options()
    p = commands.add_parser("ab", parents=[results, output, timing_options()], epilog=AB_EXIT,
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            help="which benchmarks got slower or faster from BASELINE, measured interleaved")
    p.add_argument("baseline", metavar="BASELINE", help="a git revision: branch, tag, commit, HEAD~1")
    p.add_argument("--candidate", metavar="REV", help="a git revision (default: the working tree as it is)")
    p.add_argument("--baseline-python", metavar="PATH", help="the baseline's interpreter (default: this one)")
    p.add_argument("--candidate-python", metavar="PATH", help="the candidate's interpreter (default: this one)")
    p.set_defaults(run=run_ab)
    p = commands.add_parser("noise", parents=[results, output, timing_options()], epilog=noise.COLUMNS,
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            help="A/A of the working tree: per benchmark, the spread and the smallest change ab "
                                 "would flag at this budget and threshold")
    p.set_defaults(run=run_noise)
    p = commands.add_parser("bisect", parents=[results], epilog=BISECT_EXIT,
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            help="find the first commit between GOOD and BAD where a benchmark got slower")
    p.add_argument("good", metavar="GOOD", help="a git revision where the benchmark was fast")
    p.add_argument("bad", metavar="BAD", help="a later revision, on GOOD's history, where it is slow")
    p.add_argument("--only", required=True, metavar="NAME", help="the benchmark: its name, or text only it contains")
    p.add_argument("--threshold", default="5%", help="slowdown that counts, e.g. 5%% (default) or 0.05")
    p.add_argument("--budget", type=parse_duration, metavar="TIME",
                   help=f"one comparison's time with start-up (default {bisection.SECONDS_PER_STEP:.0f}s)")
    p.add_argument("--processes", type=int, default=ab.PROCESSES, metavar="N",
                   help=f"worker processes per side (default {ab.PROCESSES})")
    p.set_defaults(run=run_bisect)


BISECT_EXIT = """Each step compares a commit with GOOD as `ab` does; good: no slowdown past the threshold fits its
interval; bad: a regression; undecided: measured again, then skipped. Commits are GOOD..BAD along first parents.
exit status: 0 found (and saved under <results>/bisect/), 2 a bad argument, 4 found but not saved, 130 interrupted."""


def run_bisect(args) -> int:
    """Bisect, print each step and the end, then save the record."""
    threshold = parse_threshold(args.threshold)
    results = store.results_dir(args.results)
    store.check_writable(results / records.BISECT)
    try:
        with ab.sigterm_as_interrupt():
            found = bisection.search(args.good, args.bad, args.only, threshold=threshold, budget=args.budget,
                                     processes=args.processes)
    except KeyboardInterrupt:
        print("backprop-bench: bisect interrupted; workers ended, temporary worktrees removed, nothing saved",
              file=sys.stderr)
        return exit_interrupted()
    return show_then_save(bisection.summary(found), None, lambda: bisection.save(found, results))


def parse_duration(text: str) -> float:
    scale = {"s": 1, "m": 60, "h": 3600}.get(text[-1:], 1)
    try:
        seconds = float(text[:-1] if text[-1:] in "smh" else text) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"--budget takes a time like 300, 90s or 10m, got {text!r}") from None
    if not (0 < seconds < math.inf):
        raise argparse.ArgumentTypeError(f"--budget must be a positive, finite time, got {text!r}")
    return seconds


def run_ab(args) -> int:
    """Compare, show the table, then save the record."""
    threshold = parse_threshold(args.threshold)
    results, output = chosen_places(args)  # the output checked before minutes of timing, not after
    store.check_writable(results / records.AB)
    try:
        found = ab.compare_sides(args.baseline, args.candidate, threshold=threshold, only=args.only,
                                 budget=args.budget, device=args.device, baseline_python=args.baseline_python,
                                 candidate_python=args.candidate_python, processes=args.processes)
    except KeyboardInterrupt:
        print("backprop-bench: ab interrupted; workers ended, temporary worktrees removed, nothing saved",
              file=sys.stderr)
        return exit_interrupted()
    if args.format == "json":
        text = json.dumps(found, indent=1) + "\n"
    elif args.format == "markdown":
        text = ab.markdown(found)
    else:
        busy = ab.busy_note(found["benchmarks"])
        text = (f"baseline {found['baseline']['label']}, candidate {found['candidate']['label']}: "
                f"ratio candidate/baseline, threshold {threshold:.0%}\n"
                f"{ab.table(found).to_string(index=False)}\n{ab.summary(found)}\n{ab.RATIO_NOTE}\n"
                + (f"{busy}\n" if busy else ""))
    status = show_then_save(text, output, lambda: ab.save_record(found, results))
    return status or (1 if any(row["verdict"] == "regression" for row in found["benchmarks"]) else 0)


def run_noise(args) -> int:
    """A/A of the working tree; its table shown first, then saved under <results>/noise/."""
    threshold = parse_threshold(args.threshold)
    results, output = chosen_places(args)
    store.check_writable(results / records.NOISE)
    try:
        found = noise.measure(args.budget, threshold, args.only, args.device, args.processes)
    except KeyboardInterrupt:
        print("backprop-bench: noise interrupted; workers ended, nothing saved", file=sys.stderr)
        return exit_interrupted()
    shown = noise.table(found)
    if args.format == "json":
        text = json.dumps(found, indent=1) + "\n"
    else:
        body = formatting.markdown(shown) if args.format == "markdown" else shown.to_string(index=False)
        busy = ab.busy_note(found["benchmarks"])
        text = (f"A/A of the working tree, threshold {threshold:.0%}:\n{body}\n{noise.summary(found)}\n"
                + (f"{busy}\n" if busy else ""))
    return show_then_save(text, output, lambda: noise.save(found, results))


def exit_interrupted() -> int:
    """Exit 130 at once, once an interrupted comparison has cleaned up: the interpreter's own shutdown is skipped.

    Under a loaded machine a comparison interrupted while its workers loaded sometimes
    ended killed by SIGINT (status -2) after its "interrupted" line and its clean-up, from
    a KeyboardInterrupt raised after main had returned (a guard inside main did not catch
    it); its source is not found. Nothing is left to do after the clean-up, so exit here.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


def show_then_save(text: str, output: Path | None, save) -> int:
    """Print `text` (or write it to `output`), then save the record: a record that cannot be saved loses nothing
    shown. EXIT_NOT_SAVED when saving fails, else 0."""
    if output is None:
        print(text, end="", flush=True)
    try:
        if output is not None:
            try:
                store.write_output(output, printable(text))
            except UserError:
                print(text, end="", flush=True)  # shown, since it could not be written
                raise
            print(f"wrote {output}")
        print(f"saved {save()}", file=sys.stderr)
    except UserError as err:
        print(f"backprop-bench: error: the record of the {'table above' if output is None else 'output'} "
              f"was not saved: {err}", file=sys.stderr)
        return EXIT_NOT_SAVED
    return 0


def drift_line(frame, baseline: str, current: str, threshold: float) -> str:
    """How far the machine moved between the runs, and what to use when that is more than the threshold."""
    drift = check.machine_drift(frame, baseline, current)
    if drift is None:
        return "machine drift: unknown (a run has no matmul calibration)"
    line = f"machine drift: the matmul calibration took {drift:.2f}x the baseline's time"
    if abs(math.log(drift)) <= math.log1p(threshold):
        return line
    return (f"{line}, more than the threshold: the machine moved, so these medians measure it as much as the code; "
            f"compare the code interleaved with: backprop-bench ab {run_revision(frame, baseline, 'BASELINE')}")


def run_revision(frame, run: str, placeholder: str) -> str:
    """A saved run's commit, short, as a command's argument; `placeholder`_REVISION where the file's text is not
    a plain revision (no shell text from a file)."""
    commit = frame.loc[frame["run"] == run, "commit"].iloc[0]
    return commit[:10] if re.fullmatch(r"[\w.-]+", commit) else f"{placeholder}_REVISION"


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="backprop-bench", description="Train one tiny network with several frameworks, and compare.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {installed_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    train.add_parser(commands)
    commands.add_parser("backends", help="list the backends, their variants and devices").set_defaults(run=run_backends)
    add_run_parsers(commands)
    add_report_parser(commands)
    add_ab_parser(commands)
    with printable_output():
        return _run(parser, argv)


def _run(parser: Parser, argv: list[str] | None) -> int:
    """Parse and run the command; every error a user can cause as one line with its exit status."""
    try:
        args = parser.parse_args(argv)
        with warnings.catch_warnings():
            warnings.simplefilter("always", store.SkippedRun)
            warnings.showwarning = lambda message, *_: print(f"backprop-bench: warning: {message}", file=sys.stderr)
            status = args.run(args)
        sys.stdout.flush()  # a full disk or closed pipe shows here, not as a traceback at exit
        return status
    except BrokenPipeError:  # the reader stopped early, e.g. `| head`: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as err:
        if err.filename is not None or err.errno not in (errno.ENOSPC, errno.EIO, errno.EDQUOT):
            raise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more can be written there
        print(f"backprop-bench: error: cannot write the output: {err.strerror or err}", file=sys.stderr)
        return 2
    except backends.TrainingDiverged as err:
        print(f"backprop-bench: {err}", file=sys.stderr)
        return 1
    except UserError as err:  # a mistake the user can fix (errors.py); any other error is a bug: its traceback shows
        print(f"backprop-bench: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: nothing to clean up, nothing to show but that it stopped
        print("backprop-bench: interrupted", file=sys.stderr)
        return 130
    except (MemoryError, RuntimeError) as err:
        if not out_of_memory(err):
            raise
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"backprop-bench: error: out of memory ({reason[:200]}); "
              "use fewer samples, narrower layers or fewer epochs", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
