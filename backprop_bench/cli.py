"""The `backprop-bench` command."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np

import backends
from backends.numpy_backend import forward
from backprop_bench import page, plots, regress, report, store
from backprop_bench.model import (
    ACTIVATIONS, DTYPES, INITS, PRESETS, Dataset, ModelSpec, init_params, preset, synthetic_data,
)


class UsageError(ValueError):
    """A mistake in the command line."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        if message.endswith("expected one argument"):  # argparse takes a value such as -5% for an option
            message += " (a value that starts with '-' must be joined to its option with '=')"
        raise UsageError(f"{message} (see {self.prog} --help)")


def parse_layers(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--layers takes widths like 1,16,1, got {text!r}") from None


def add_train_parser(commands) -> None:
    p = commands.add_parser("train", help="run one training and print the notebook's report (or JSON)")
    p.add_argument("--backend", default="numpy", help=f"one of {', '.join(backends.BACKENDS)} (default numpy)")
    p.add_argument("--variant", help="a variant of the backend, e.g. jit-step for jax (default: its first)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    model = p.add_argument_group("model (a preset, or your own layers)")
    model.add_argument("--model", help=f"a preset: {', '.join(PRESETS)} (default seed-linear)")
    model.add_argument("--layers", type=parse_layers, help="widths from input to output, e.g. 1,16,16,1")
    model.add_argument("--bias", action=argparse.BooleanOptionalAction, help="biases on or off (default on)")
    model.add_argument("--activation", help=f"hidden activation: {', '.join(ACTIVATIONS)} (default identity)")
    model.add_argument("--init", help=f"initial weights: {', '.join(INITS)} (default notebook)")
    model.add_argument("--epochs", type=int)
    model.add_argument("--lr", type=float, help="learning rate (default 0.01)")
    model.add_argument("--seed", type=int, help="seed of the initial weights and synthetic data (default 42)")
    model.add_argument("--dtype", help=f"{' or '.join(DTYPES)} (default float64)")
    data = p.add_argument_group("data (default: the preset's, else synthetic)")
    data.add_argument("--samples", type=int, help="train on N seeded synthetic samples (default 64 with --layers)")
    data.add_argument("--data", metavar="FILE", help="a .npz holding 2-D arrays x and y, one row per sample")
    out = p.add_argument_group("output")
    out.add_argument("--log-every", type=int, default=100, metavar="N", help="print the loss every N epochs (100)")
    out.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    p.set_defaults(run=run_train)


def build_spec(args) -> tuple[ModelSpec, Dataset | None]:
    """The spec the flags ask for, and the preset's data when a preset is used unchanged in shape."""
    if args.model and args.layers:
        raise UsageError("give either --model or --layers, not both")
    overrides = {
        key: value
        for key, value in (
            ("bias", args.bias), ("activation", args.activation), ("init", args.init), ("epochs", args.epochs),
            ("lr", args.lr), ("seed", args.seed), ("dtype", args.dtype),
        )
        if value is not None
    }
    if args.layers:
        return ModelSpec(args.layers, **overrides), None
    chosen = preset(args.model or "seed-linear")
    return chosen.spec.with_(**overrides), chosen.data


def load_npz(path: str) -> Dataset:
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("it holds one array, not named arrays")
        with archive:
            arrays = {name: archive[name].astype(np.float64) for name in ("x", "y") if name in archive.files}
    except (OSError, EOFError, ValueError, TypeError) as err:
        raise ValueError(f"cannot read {path} as a .npz of numeric arrays: {err}") from None
    missing = {"x", "y"} - set(arrays)
    if missing:
        raise ValueError(f"{path} lacks the array(s) {', '.join(sorted(missing))}; it needs x and y")
    return Dataset(arrays["x"], arrays["y"])


def choose_data(args, spec: ModelSpec, preset_data: Dataset | None) -> Dataset:
    if args.data and args.samples:
        raise UsageError("give either --data or --samples, not both")
    if args.data:
        return load_npz(args.data)
    if args.samples is not None or preset_data is None:
        return synthetic_data(spec, 64 if args.samples is None else args.samples)
    return preset_data


def run_train(args) -> int:
    if args.log_every < 1:
        raise UsageError(f"--log-every must be >= 1, got {args.log_every}")
    spec, preset_data = build_spec(args)
    data = choose_data(args, spec, preset_data)
    data.check_fits(spec)
    params_init = init_params(spec)
    result = backends.train(spec, data, args.backend, args.variant, args.device, params_init)
    variant = backends.get(args.backend, args.variant).variant
    if args.json:
        print(json.dumps({
            "backend": args.backend, "variant": variant, "device": args.device, "dtype": spec.dtype,
            "spec": {"layers": list(spec.layers), "bias": spec.bias, "activation": spec.activation,
                     "lr": spec.lr, "epochs": spec.epochs, "seed": spec.seed, "init": spec.init},
            "params_init": {k: v.tolist() for k, v in params_init.items()},
            "params": {k: v.tolist() for k, v in result.params.items()},
            "losses": result.losses.tolist(),
        }))
    else:
        print_report(spec, data, result, args.log_every)
    return 0


def print_report(spec: ModelSpec, data: Dataset, result: backends.TrainResult, log_every: int) -> None:
    """The notebook's printout: logged losses, final parameters, prediction and true y."""
    for epoch in range(0, spec.epochs, log_every):
        print(f"Epoch {epoch}, Loss: {result.losses[epoch]:.4f}")
    print("\nFinal Params:" if spec.bias else "\nFinal Weights:")
    weights, biases = [], []
    for layer in range(1, spec.n_layers + 1):
        W = result.params[f"W{layer}"]
        weights.append(W)
        line = f"W{layer}: {W}"
        if spec.bias:
            b = result.params[f"b{layer}"]
            biases.append(b)
            line += f" | b{layer}: {b[0] if b.size == 1 else b}"  # the notebook's biases are scalars
        print(line)
    prediction = forward(data.x.astype(spec.dtype), weights, biases, spec.activation)[-1]
    print("\nPrediction:\n", prediction)
    print("\ny True:\n", data.y)


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


def shared_options() -> tuple[Parser, Parser]:
    """The options every report command shares: where the saved runs are, and where to write."""
    results = Parser(add_help=False)
    results.add_argument("--results", metavar="DIR",
                         help="the saved runs (default: results/ of the checkout holding the current directory, "
                              "else ./results)")
    output = Parser(add_help=False)
    output.add_argument("--output", metavar="FILE", help="write there instead of the default")
    output.add_argument("--force", action="store_true", help="replace --output FILE if it exists")
    return results, output


def add_report_parsers(commands) -> None:
    results, output = shared_options()
    p = commands.add_parser("compare", parents=[results, output], epilog=report.COLUMNS,
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            help="saved runs' backends side by side, per workload, a column group per run")
    p.add_argument("runs", nargs="*", metavar="RUN",
                   help="run number, id or JSON path; several are shown side by side (default: the latest complete run)")
    p.add_argument("--format", choices=("table", "markdown", "csv"), default="table", help="(default table)")
    p.add_argument("--normalize", choices=regress.NORMALIZE,
                   help="show each time relative to its own run's NumPy backend or matmul calibration "
                        "(needed for runs of different machines)")
    p.add_argument("--plot", action="store_true", help="also draw each run's figures, as `plot` does")
    p.set_defaults(run=run_compare)
    p = commands.add_parser("plot", parents=[results], help="draw saved runs' figures under <results>/plots/<run>/")
    p.add_argument("runs", nargs="*", metavar="RUN",
                   help="run number, id or JSON path; each gets its figures (default: the latest complete run)")
    p.set_defaults(run=run_compare, plot=True, format=None, output=None, normalize=None)
    p = commands.add_parser("check", parents=[results],
                            help="flag benchmarks that slowed significantly against a baseline run")
    p.add_argument("--baseline", required=True, metavar="RUN", help="run number, id or JSON path")
    p.add_argument("--against", metavar="RUN", help="the run to check (default: the latest complete run)")
    p.add_argument("--threshold", default="5%", help="slow-down that counts, e.g. 5%% (default) or 0.05")
    p.add_argument("--alpha", type=float, default=0.01,
                   help="significance level of the Mann-Whitney U test, between 0 and 1 (default 0.01)")
    p.add_argument("--normalize", choices=regress.NORMALIZE,
                   help="compare times relative to the NumPy backend or the matmul calibration of the same run")
    p.set_defaults(run=run_check)


def add_page_parser(commands) -> None:
    results, output = shared_options()
    p = commands.add_parser("report", parents=[results, output], help="write one self-contained HTML page of saved runs")
    p.add_argument("runs", nargs="*", metavar="RUN",
                   help="run number, id or JSON path; several are shown side by side (default: the latest complete run)")
    p.set_defaults(run=run_page)


def run_page(args) -> int:
    """Write the page of the chosen runs beside the history of every saved run; nothing is written when anything is wrong."""
    results = store.results_dir(args.results)
    output = Path(args.output) if args.output else None
    if output is not None:
        store.check_output(output, results, args.force)
    chosen, runs = report.load(args.runs or [None], results)
    frame = report.load_runs(store.run_files(results) + [Path(path) for path in chosen["path"].unique()], results)
    text = page.build(frame, list(dict.fromkeys(runs)), report.load_comparisons(results))
    if output is None:
        output = page.default_output(results, runs)  # derived from the runs: replaced on every call
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
    results = store.results_dir(args.results)
    output = Path(args.output) if args.output else None
    if output is not None:
        store.check_output(output, results, args.force)
    frame, runs = report.load(args.runs or [None], results)
    runs = list(dict.fromkeys(runs))
    firsts = frame.drop_duplicates("run").set_index("run").loc[runs]
    several_machines = firsts["machine"].nunique() > 1
    if several_machines and args.normalize is None and args.format is not None:
        # Absolute times of two machines side by side mix the machines' speed with the code's.
        raise UsageError(f"the runs come from different machines ({', '.join(firsts['machine'].unique())}); "
                         f"show each time relative to its own run with --normalize {'|'.join(regress.NORMALIZE)}")
    tables = {}
    for run in runs:
        tables[report.run_label(run, several_machines)] = table = report.comparison(frame, run, args.normalize)
        if table.empty:
            raise ValueError(f"run {run} holds no training benchmarks")
    if args.format is not None:
        text = report.render(tables, args.format, args.normalize)
        if args.format != "csv":
            text = _compare_header(firsts, tables, args.normalize) + f"\n{text}"
        if output is not None:
            store.write_output(output, text)
            print(f"wrote {output}")
        else:
            print(text, end="")
    for run, table in zip(runs, tables.values()) if args.plot else ():
        folder = results / "plots" / Path(run).with_suffix("").name if Path(run).is_absolute() else results / "plots" / run
        store.check_writable(folder)
        for path in plots.plot(table, frame[frame["run"] == run], folder):
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
    frame, [baseline, current] = report.load([args.baseline, args.against], results)
    if baseline == current:
        raise ValueError(f"--baseline and --against both name run {current}; name two different runs")
    table = regress.check(frame, baseline, current, threshold, args.alpha, args.normalize)
    unit = "relative to " + args.normalize if args.normalize else "seconds"
    print(f"baseline {baseline}, current {current}: medians in {unit}, threshold {threshold:.0%}, alpha {args.alpha}")
    for run in (baseline, current):
        if status := frame.loc[frame["run"] == run, "status"].iloc[0]:
            print(f"note: run {run} is {status}")
    print("setup changes: " + (", ".join(regress.setup_changes(frame, baseline, current)) or "none"))
    for side, names in regress.unshared(frame, baseline, current).items():
        if names:
            print(f"only in {side} ({len(names)}, not compared): {', '.join(names)}")
    print(table.to_string(index=False, formatters={
        "baseline": "{:.4g}".format, "current": "{:.4g}".format, "ratio": "{:.3f}".format, "p_value": "{:.2g}".format}))
    regressed = table[table["verdict"] == "REGRESSION"]
    print(f"{len(regressed)} regression(s), {int((table['verdict'] == 'improvement').sum())} improvement(s) "
          f"among {len(table)} benchmarks in both runs")
    return 1 if len(regressed) else 0


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="backprop-bench", description="Train one tiny network with several frameworks, and compare.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    add_train_parser(commands)
    commands.add_parser("backends", help="list the backends, their variants and devices").set_defaults(run=run_backends)
    add_report_parsers(commands)
    add_page_parser(commands)
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


if __name__ == "__main__":
    sys.exit(main())
