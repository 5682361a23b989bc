"""The `backprop-bench` command."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from importlib import metadata
from pathlib import Path

import backends
from backprop_bench import plots, regress, report, train


class UsageError(ValueError):
    """A mistake in the command line."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
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
    for name, reason in backends.available().items():
        if reason:
            print(f"{name}: unavailable: {reason}")
            continue
        found = backends.variants(name)
        devices = next(iter(found.values())).devices()
        print(f"{name}: variants {', '.join(found)}; devices {', '.join(devices)}")
        for case_name, variant, device, why in cases:
            if case_name == name and why and device in devices:  # a variant that cannot use a device that is here
                print(f"  {variant} on {device}: unavailable: {why}")
    return 0


def add_report_parsers(commands) -> None:
    p = commands.add_parser("compare", help="one saved run's backends side by side, per workload")
    p.add_argument("runs", nargs="*", metavar="RUN", help="run number, id or JSON path (default: the latest)")
    p.add_argument("--format", choices=("table", "markdown", "csv"), default="table", help="(default table)")
    p.add_argument("--output", metavar="FILE", help="write there instead of printing")
    p.add_argument("--plot", action="store_true", help="also draw the figures, as `plot` does")
    p.set_defaults(run=run_compare)
    p = commands.add_parser("plot", help="draw one saved run's figures under results/plots/")
    p.add_argument("runs", nargs="*", metavar="RUN", help="run number, id or JSON path (default: the latest)")
    p.set_defaults(run=run_compare, plot=True, format=None, output=None)
    p = commands.add_parser("check", help="flag benchmarks that slowed significantly against a baseline run")
    p.add_argument("--baseline", required=True, metavar="RUN", help="run number, id or JSON path (required)")
    p.add_argument("--against", metavar="RUN", help="the run to check (default: the latest)")
    p.add_argument("--threshold", default="5%", help="slow-down that counts, e.g. 5%% (default) or 0.05")
    p.add_argument("--alpha", type=float, default=0.01, help="significance level of the Mann-Whitney U test (default 0.01)")
    p.add_argument("--normalize", choices=regress.NORMALIZE,
                   help="compare times relative to the NumPy backend or the matmul calibration of the same run")
    p.set_defaults(run=run_check)


def parse_threshold(text: str) -> float:
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise UsageError(f"--threshold takes a number like 5% or 0.05, got {text!r}") from None
    if not 0 <= value < 10:
        raise UsageError(f"--threshold must be between 0% and 1000%, got {text!r}")
    return value


def run_compare(args) -> int:
    frame = report.load(args.runs)
    run = report.resolve_run(frame, args.runs[-1] if args.runs else None)
    table = report.comparison(frame, run)
    if table.empty:
        raise ValueError(f"run {run} holds no training benchmarks")
    if args.format is not None:
        text = report.render(table, args.format)
        if args.format != "csv":
            text = f"run {run}\n\n{text}"
        if args.output:
            Path(args.output).write_text(text)
            print(f"wrote {args.output}")
        else:
            print(text, end="")
    if args.plot:
        for path in plots.plot(table, run, report.RESULTS / "plots" / run):
            print(f"wrote {path} (and .svg)")
    return 0


def run_check(args) -> int:
    threshold = parse_threshold(args.threshold)
    frame = report.load([r for r in (args.baseline, args.against) if r])
    baseline = report.resolve_run(frame, args.baseline)
    current = report.resolve_run(frame, args.against)
    table = regress.check(frame, baseline, current, threshold, args.alpha, args.normalize)
    unit = "relative to " + args.normalize if args.normalize else "seconds"
    print(f"baseline {baseline}, current {current}: medians in {unit}, threshold {threshold:.0%}, alpha {args.alpha}")
    print("setup changes: " + (", ".join(regress.setup_changes(frame, baseline, current)) or "none"))
    print(table.to_string(index=False, formatters={
        "baseline": "{:.4g}".format, "current": "{:.4g}".format, "ratio": "{:.3f}".format, "p_value": "{:.2g}".format}))
    regressed = table[table["verdict"] == "REGRESSION"]
    print(f"{len(regressed)} regression(s), {int((table['verdict'] == 'improvement').sum())} improvement(s) "
          f"among {len(table)} benchmarks")
    return 1 if len(regressed) else 0


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="backprop-bench", description="Train one tiny network with several frameworks, and compare.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {installed_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    train.add_parser(commands)
    commands.add_parser("backends", help="list the backends, their variants and devices").set_defaults(run=run_backends)
    add_report_parsers(commands)
    try:
        args = parser.parse_args(argv)
        with warnings.catch_warnings():
            warnings.simplefilter("always", report.SkippedRun)
            warnings.showwarning = lambda message, *_: print(f"backprop-bench: warning: {message}", file=sys.stderr)
            return args.run(args)
    except BrokenPipeError:  # the reader stopped early, e.g. `| head`: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except backends.TrainingDiverged as err:
        print(f"backprop-bench: {err}", file=sys.stderr)
        return 1
    except ValueError as err:  # UsageError, bad specs and data, unavailable backends
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
