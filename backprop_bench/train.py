"""`backprop-bench train`: one training, reported as the notebook printed it (or as JSON), timed.

The time comes from `backprop_bench.timing.Training`, the object the benchmarks time
with: the first training of the process, from set-up to result (compiling included,
wherever the backend compiles), and a second, steady-state one, whose result is the
one reported.
"""

from __future__ import annotations

import argparse
import json
import os
import zipfile
import zlib

import numpy as np

from backprop_bench import backends
from backprop_bench.backends.numpy_backend import forward
from backprop_bench.errors import UserError
from backprop_bench.formatting import seconds_text
from backprop_bench.model import (
    ACTIVATIONS,
    DTYPES,
    INITS,
    PRESETS,
    Dataset,
    ModelSpec,
    check_memory,
    default_init,
    preset,
    synthetic_data,
)
from backprop_bench.timing import Training

ACCEPTED = "a .npz of 2-D numeric arrays x and y, a row per sample (np.savez(FILE, x=x, y=y))"
DEFAULT_SAMPLES = 64


def parse_layers(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--layers takes widths like 1,16,1, got {text!r}") from None


def variant_help() -> str:
    """Every backend's variants, the default first; computed only when help is shown (it imports the frameworks)."""
    listed = []
    for name, reason in backends.available().items():
        listed.append(f"{name}: {', '.join(backends.variants(name))}" if reason is None else f"{name}: not installed")
    return f"{'; '.join(listed)} (default: the backend's first)"


def add_parser(commands) -> None:
    p = commands.add_parser("train", help="run one training and print the notebook's report, its time (or JSON)")
    p.add_argument("--backend", default="numpy", help=f"one of {', '.join(backends.BACKENDS)} (default numpy)")
    p.add_argument("--variant", help=variant_help)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    model = p.add_argument_group("model (a preset, with any setting changed by the flags below)")
    model.add_argument("--model", help=f"a preset: {', '.join(PRESETS)} (default seed-linear)")
    model.add_argument("--layers", type=parse_layers,
                       help="widths from input to output, e.g. 1,16,16,1 (default: the preset's, "
                            "with --data the data's input and output widths)")
    model.add_argument("--bias", action=argparse.BooleanOptionalAction, help="biases on or off (default on)")
    model.add_argument("--activation", help=f"hidden activation: {', '.join(ACTIVATIONS)} (default identity)")
    model.add_argument("--init", help=f"initial weights: {', '.join(INITS)} (default: the preset's, notebook; "
                                      f"with --layers and no --model, he for relu, else xavier)")
    model.add_argument("--epochs", type=int, help="epochs of full-batch gradient descent (default 1000)")
    model.add_argument("--lr", type=float, help="learning rate (default 0.01)")
    model.add_argument("--seed", type=int, help="seed of the initial weights and synthetic data (default 42)")
    model.add_argument("--dtype", help=f"{' or '.join(DTYPES)} (default float64)")
    data = p.add_argument_group("data (default: the preset's; with --layers and no --model, synthetic)")
    data.add_argument("--samples", type=int,
                      help=f"train on N seeded synthetic samples (default {DEFAULT_SAMPLES} with --layers)")
    data.add_argument("--data", metavar="FILE", help=ACCEPTED)
    out = p.add_argument_group("output")
    out.add_argument("--log-every", type=int, default=100, metavar="N", help="print the loss every N epochs (100)")
    out.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    p.set_defaults(run=run_train)


def own_network(args) -> bool:
    """--layers without --model: a network of your own, with an init and data made for it."""
    return bool(args.layers) and not args.model


def build_spec(args, widths: tuple[int, int] | None) -> ModelSpec:
    """The preset's spec with every flag given applied; `widths` are the input and output widths of --data."""
    chosen = ModelSpec(args.layers) if own_network(args) else preset(args.model or "seed-linear").spec
    layers = args.layers or chosen.layers
    if widths and not args.layers:
        layers = (widths[0], *layers[1:-1], widths[1])
    changes = {
        key: value
        for key, value in (
            ("bias", args.bias), ("activation", args.activation), ("init", args.init), ("epochs", args.epochs),
            ("lr", args.lr), ("seed", args.seed), ("dtype", args.dtype),
        )
        if value is not None
    }
    if own_network(args):
        changes.setdefault("init", default_init(changes.get("activation", chosen.activation)))
    return chosen.with_(layers=layers, **changes)


def npz_headers(path: str) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """The shape and dtype of x and y in a .npz, read from its headers without loading the arrays."""
    if not os.path.isfile(path):  # a folder, a device such as /dev/zero, a pipe: never a .npz
        what = "not a regular file" if os.path.exists(path) else "no such file"
        raise UserError(f"cannot read {path}: {what}; --data takes {ACCEPTED}")
    try:
        with zipfile.ZipFile(path) as archive:
            missing = [name for name in ("x", "y") if f"{name}.npy" not in archive.namelist()]
            if missing:
                raise UserError(f"{path} lacks the array(s) {', '.join(missing)}; --data takes {ACCEPTED}")
            headers = {name: array_header(archive, name, path) for name in ("x", "y")}
    except zipfile.BadZipFile:  # text, CSV, a lone .npy, /dev/zero, a truncated archive
        raise UserError(f"cannot read {path}: not a .npz, or a truncated one; --data takes {ACCEPTED}; "
                         f"for CSV or text, np.loadtxt it first") from None
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror or err}") from None
    for name, (shape, dtype) in headers.items():
        if dtype.kind not in "biuf":  # datetime64, timedelta64, strings, objects: not numbers
            raise UserError(f"{path}: {name} holds {dtype} values, not numbers; --data takes {ACCEPTED}")
        if len(shape) != 2:
            raise UserError(f"{path}: {name} has shape {shape}; --data takes {ACCEPTED}")
    return headers


def array_header(archive: zipfile.ZipFile, name: str, path: str) -> tuple[tuple[int, ...], np.dtype]:
    try:
        with archive.open(f"{name}.npy") as member:
            version = np.lib.format.read_magic(member)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(member)
    except (ValueError, EOFError, zlib.error, zipfile.BadZipFile) as err:
        raise UserError(f"cannot read {name} in {path}: {err}; --data takes {ACCEPTED}") from None
    return shape, dtype


def load_npz(path: str) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return Dataset(archive["x"].astype(np.float64), archive["y"].astype(np.float64))
    except (OSError, EOFError, ValueError, zlib.error, zipfile.BadZipFile) as err:
        raise UserError(f"cannot read {path}: {err}; it looks truncated or damaged") from None


def choose_data(args, spec: ModelSpec, headers: dict | None) -> Dataset:
    """The data the flags ask for, read or drawn only once the training is known to fit in memory."""
    if args.data:
        samples, make = headers["x"][0][0], lambda: load_npz(args.data)
    elif args.samples is not None or own_network(args):
        samples = DEFAULT_SAMPLES if args.samples is None else args.samples
        make = lambda: synthetic_data(spec, samples)  # noqa: E731
    else:
        preset_data = preset(args.model or "seed-linear").data
        samples, make = len(preset_data.x), lambda: preset_data
    check_memory(spec, samples)
    data = make()
    try:
        data.check_fits(spec)
    except ValueError as err:
        raise UserError(f"{err}; --layers sets the widths, --data or --samples the data") from None
    return data


def run_train(args) -> int:
    if args.log_every < 1:
        raise UserError(f"--log-every must be >= 1, got {args.log_every}")
    if args.data and args.samples is not None:
        raise UserError("give either --data or --samples, not both")
    headers = npz_headers(args.data) if args.data else None
    widths = (headers["x"][0][1], headers["y"][0][1]) if headers else None
    spec = build_spec(args, widths)
    data = choose_data(args, spec, headers)
    training = Training(spec, data, args.backend, args.variant, args.device)
    first_call_s, _ = training.time_first()
    steady_s, trained = training.time_once()
    result = training.fetch(trained)
    try:
        backends.check_finite(result)
        error = None
    except backends.TrainingDiverged as diverged:
        error = diverged
    finite = len(result.losses) if error is None else int(np.argmin(np.isfinite(result.losses)))
    timing = {"time_per_epoch_s": steady_s / spec.epochs, "first_call_s": first_call_s}
    about = {"backend": args.backend, "variant": training.trainer.variant, "device": args.device,
             "dtype": spec.dtype, "samples": len(data.x)}
    if args.json:
        print(json.dumps({
            **about,
            "spec": {"layers": list(spec.layers), "bias": spec.bias, "activation": spec.activation,
                     "lr": spec.lr, "epochs": spec.epochs, "seed": spec.seed, "init": spec.init},
            "params_init": {k: v.tolist() for k, v in training.params.items()},
            "params": None if error else {k: v.tolist() for k, v in result.params.items()},
            "losses": result.losses[:finite].tolist(),
            **timing,
            "error": str(error) if error else None,
        }))
    else:
        print(header(args, spec, about, widths))
        logged = set(range(0, finite, args.log_every)) | ({finite - 1} if error and finite else set())
        for epoch in sorted(logged):  # a diverged run: every logged epoch before it, and the last finite one
            print(f"Epoch {epoch}, Loss: {loss_text(result.losses[epoch])}")
        if error is None:
            print_report(spec, data, result)
            print(f"\nFinal loss: {loss_text(result.losses[-1])} (epoch {spec.epochs - 1})")
            print(f"Time: {seconds_text(timing['time_per_epoch_s'])} per epoch (steady state), first training "
                  f"{seconds_text(first_call_s)} (set-up and compilation included)")
    if error:
        raise error
    return 0


def loss_text(loss: float) -> str:
    """4 decimals, as the notebook printed them; in exponent form when that would be a long string of digits."""
    return f"{loss:.4f}" if abs(loss) < 1e9 else f"{loss:.4e}"


def header(args, spec: ModelSpec, about: dict, widths: tuple[int, int] | None) -> str:
    """One line naming what ran: backend, variant, device, dtype, network and data."""
    layers = "-".join(map(str, spec.layers)) + (" (input and output widths from --data)" if widths and not args.layers
                                                else "")
    init = spec.init + (" (the default for --layers)" if own_network(args) and args.init is None else "")
    return (f"{about['backend']} {about['variant']} on {about['device']}, {spec.dtype}: layers {layers}, "
            f"{spec.activation}, {'bias' if spec.bias else 'no bias'}, init {init}, lr {spec.lr}, "
            f"{spec.epochs} epochs, {about['samples']} samples")


SHOWN = 20  # numbers an array may hold and still print whole


def shown(array: np.ndarray):
    """`array` itself where it is small; else '(3, 128) float32 array: mean 0.012, std 0.21, min -0.61, max 0.64'."""
    if array.size <= SHOWN:
        return array
    return (f"{array.shape} {array.dtype} array: mean {array.mean():.3g}, std {array.std():.3g}, "
            f"min {array.min():.3g}, max {array.max():.3g} (every number: --json)")


def print_report(spec: ModelSpec, data: Dataset, result: backends.TrainResult) -> None:
    """The notebook's printout after the losses: final parameters, prediction and true y.

    The notebook's own arrays, at most SHOWN numbers each, print whole; a larger one
    prints as one line of its shape and spread (`--json` holds every number), so that a
    wide network's report is not pages of matrices.
    """
    print("\nFinal Params:" if spec.bias else "\nFinal Weights:")
    weights, biases = [], []
    for layer in range(1, spec.n_layers + 1):
        W = result.params[f"W{layer}"]
        weights.append(W)
        line = f"W{layer}: {shown(W)}"
        if spec.bias:
            b = result.params[f"b{layer}"]
            biases.append(b)
            line += f" | b{layer}: {b[0] if b.size == 1 else shown(b)}"  # the notebook's biases are scalars
        print(line)
    prediction = forward(data.x.astype(spec.dtype), weights, biases, spec.activation)[-1]
    print("\nPrediction:\n", shown(prediction))
    print("\ny True:\n", shown(data.y))
